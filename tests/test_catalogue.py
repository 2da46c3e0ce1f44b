"""The catalogue is true by construction: every ref resolves, every claim marker names a listed artefact,
every implemented artefact has a claim test, and the generated claims.json and README table are current."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from convzoo.catalogue import CLAIMS_PATH, claims_json, get_paper, papers, resolve
from convzoo.catalogue.scan import ClaimSyntaxError, scan
from convzoo.errors import ConvzooError

ROOT = Path(__file__).resolve().parents[1]
REGEN = "run `python -m convzoo.catalogue` to regenerate"
LISTED = {(p.seed, a.name): a for p in papers() for a in p.artefacts}
WITH_REF = [(p.seed, a) for p in papers() for a in p.artefacts if a.ref]


@pytest.fixture(scope="module")
def live():
    """The claim markers as the tests hold them now (claims.json may lag behind)."""
    return scan(ROOT)


def test_all_57_papers_listed_once():
    ps = papers()
    assert [p.seed for p in ps] == list(range(1, 58))
    assert len({p.key for p in ps}) == 57
    assert all(p.title and 1990 < p.year < 2030 for p in ps)
    assert all(p.artefacts for p in ps), "every paper lists its artefacts, done or planned"
    names = [(p.seed, a.name) for p in ps for a in p.artefacts]
    assert len(names) == len(set(names)), "an artefact is listed twice in one paper"


@pytest.mark.parametrize("seed", [3, 32, 40, 41, 43])
def test_first_five_papers_are_proven(seed):
    p = get_paper(seed)
    assert p.done, f"paper {seed} has no proven artefact"


@pytest.mark.parametrize("seed,art", WITH_REF, ids=[f"{s}-{a.name}" for s, a in WITH_REF])
def test_every_ref_resolves(seed, art):
    resolve(art.ref)
    if art.ref.startswith("model:"):
        from convzoo import get_card

        assert get_card(art.ref.split(":", 1)[1]).paper == seed


def test_bad_ref_is_a_clear_error():
    with pytest.raises(ConvzooError):
        resolve("model:no_such_model")
    with pytest.raises(ConvzooError):
        resolve("layer:convzoo.layers.nothing:X")


def test_every_claim_names_a_listed_artefact(live):
    assert live, "no claim markers found under tests/"
    unknown = sorted({(c["paper"], c["artefact"]) for c in live} - set(LISTED))
    where = {(c["paper"], c["artefact"]): c["proofs"][0] for c in live}
    assert not unknown, ("claim markers name artefacts that papers.toml does not list for that paper "
                         "(add them there, or fix the marker): "
                         + "; ".join(f"paper {s} '{n}' in {where[s, n]}" for s, n in unknown))


def test_every_implemented_artefact_has_a_claim(live):
    proven = {(c["paper"], c["artefact"]) for c in live if not c["pin"] and c["proofs"]}
    bare = [f"paper {s} {a.name} ({a.ref})" for s, a in WITH_REF if (s, a.name) not in proven]
    assert not bare, ("artefacts listed as implemented (ref set) without a claim test "
                      f"(@pytest.mark.claim; pins do not count): {bare}")


def test_claims_json_is_up_to_date():
    assert CLAIMS_PATH.is_file(), f"{CLAIMS_PATH.name} is missing: {REGEN}"
    assert CLAIMS_PATH.read_text() == claims_json(ROOT), f"{CLAIMS_PATH.name} is stale: {REGEN}"


def test_readme_table_is_generated_from_the_catalogue():
    from convzoo.catalogue import README_BEGIN, README_END, markdown_table

    text = (ROOT / "README.md").read_text()
    table = text.split(README_BEGIN, 1)[1].split(README_END, 1)[0].strip()
    assert table == markdown_table().strip(), f"the README's papers table is stale: {REGEN}"


def test_status_is_derived_from_claims_and_pins_never_count():
    from convzoo.catalogue import Artefact, Claim

    pin = Claim("measured on our code", ("tests/x.py::test_a",), pin=True)
    real = Claim("equals Table 2", ("tests/x.py::test_b",))
    assert Artefact("model", "m", ref="model:m", claims=(pin,)).status == "planned"
    assert Artefact("model", "m", ref="", claims=(real,)).status == "planned"
    done = Artefact("model", "m", ref="model:m", claims=(pin, real))
    assert done.status == "done" and done.proofs == ("tests/x.py::test_b",) and done.pins == (pin,)


def _scan_one(tmp_path, source, name="test_x.py"):
    (tmp_path / "tests").mkdir(exist_ok=True)
    (tmp_path / "tests" / name).write_text(textwrap.dedent(source))
    return scan(tmp_path)


def test_scan_reads_every_place_a_claim_may_stand(tmp_path):
    claims = _scan_one(tmp_path, '''
        import pytest
        pytestmark = [pytest.mark.paper(1), pytest.mark.claim(paper=1, artefact="m", claim="whole module")]
        C = "not a literal"

        @pytest.mark.claim(paper=1, artefact="m", claim="count")
        @pytest.mark.claim(paper=1, artefact="n", claim="count", pin=True)
        @pytest.mark.parametrize("k", [1, 2])
        def test_a(k):
            pass

        @pytest.mark.parametrize("k", [1, pytest.param(2, marks=[pytest.mark.claim(paper=1, artefact="m",
                                                                                   claim="one case")])])
        def test_b(k):
            pass

        class TestC:
            pytestmark = pytest.mark.claim(paper=2, artefact="p", claim="class")

            def test_d(self):
                pass

        CASES = [pytest.param(3, marks=pytest.mark.claim(paper=1, artefact="q", claim="named list")), 4]

        @pytest.mark.parametrize("k", CASES)
        def test_e(k):
            pass
    ''')
    got = {(c["paper"], c["artefact"], c["claim"], c["pin"]): c["proofs"] for c in claims}
    f = "tests/test_x.py"
    assert got == {
        (1, "m", "whole module", False): [f"{f}::TestC::test_d", f"{f}::test_a", f"{f}::test_b", f"{f}::test_e"],
        (1, "m", "count", False): [f"{f}::test_a"],
        (1, "n", "count", True): [f"{f}::test_a"],
        (1, "m", "one case", False): [f"{f}::test_b"],
        (2, "p", "class", False): [f"{f}::TestC::test_d"],
        (1, "q", "named list", False): [f"{f}::test_e"],
    }


@pytest.mark.parametrize("source,message", [
    ('import pytest\n@pytest.mark.claim(paper=1, artefact="m", claim=C)\ndef test_a(): pass\n', "literal"),
    ('import pytest\n@pytest.mark.claim(1, "m", "c")\ndef test_a(): pass\n', "keywords only"),
    ('import pytest\n@pytest.mark.claim(paper=1, claim="c")\ndef test_a(): pass\n', "artefact="),
    ('import pytest\n@pytest.mark.claim(paper=1, artefact="m", claim="c", proof="x")\ndef test_a(): pass\n',
     "unknown claim keyword"),
    ('import pytest\nM = pytest.mark.claim(paper=1, artefact="m", claim="c")\n', "must decorate a test"),
])
def test_scan_refuses_what_it_cannot_read(tmp_path, source, message):
    with pytest.raises(ClaimSyntaxError, match=message):
        _scan_one(tmp_path, source)


def test_a_claim_test_that_skips_or_xfails_fails(tmp_path):
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "test_claims.py").write_text(textwrap.dedent('''
        import pytest

        @pytest.mark.claim(paper=43, artefact="m", claim="c")
        def test_skips():
            pytest.skip("reference missing")

        @pytest.mark.claim(paper=43, artefact="m", claim="c")
        @pytest.mark.xfail(reason="known bad")
        def test_xfails():
            assert False

        def test_plain_skip_stays_a_skip():
            pytest.skip("fine")
    '''))
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                          "-W", "ignore::pytest.PytestUnknownMarkWarning", str(tmp_path)],
                         check=False, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "2 failed, 1 skipped" in out.stdout, out.stdout[-2000:]
    assert "claim test skipped: reference missing" in out.stdout
    assert "claim test xfailed: known bad" in out.stdout


def test_papers_cli_shows_claims_and_their_tests(capsys):
    from convzoo.cli import main

    art = next(a for a in get_paper(43).artefacts if a.claims)
    main(["papers", "43"])
    out = capsys.readouterr().out
    assert f"claim: {art.claims[0].claim}" in out and f"test: {art.claims[0].proofs[0]}" in out
    main(["papers", "43", "--json"])
    doc = json.loads(capsys.readouterr().out)
    listed = next(a for a in doc["artefacts"] if a["name"] == art.name)
    assert listed["claims"][0]["proofs"] == list(art.claims[0].proofs) and listed["pins"] == []
