"""The catalogue is true by construction: every done artefact resolves, every proof exists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from convzoo.catalogue import get_paper, papers, resolve
from convzoo.errors import ConvzooError

ROOT = Path(__file__).resolve().parents[1]
DONE = [(p.seed, a) for p in papers() for a in p.artefacts if a.status == "done"]


def test_all_57_papers_listed_once():
    ps = papers()
    assert [p.seed for p in ps] == list(range(1, 58))
    assert len({p.key for p in ps}) == 57
    assert all(p.title and 1990 < p.year < 2030 for p in ps)
    assert all(p.artefacts for p in ps), "every paper lists its artefacts, done or planned"


@pytest.mark.parametrize("seed", [3, 32, 40, 41, 43])
def test_first_five_papers_are_proven(seed):
    p = get_paper(seed)
    assert p.done, f"paper {seed} has no proven artefact"


@pytest.mark.parametrize("seed,art", DONE, ids=[f"{s}-{a.name}" for s, a in DONE])
def test_done_artefact_resolves(seed, art):
    resolve(art.ref)
    if art.ref.startswith("model:"):
        from convzoo import get_card

        assert get_card(art.ref.split(":", 1)[1]).paper == seed


def test_bad_ref_is_a_clear_error():
    with pytest.raises(ConvzooError):
        resolve("model:no_such_model")
    with pytest.raises(ConvzooError):
        resolve("layer:convzoo.layers.nothing:X")


def test_every_proof_node_id_exists():
    proofs = sorted({nid for _, a in DONE for nid in a.proofs})
    assert proofs
    files = sorted({nid.split("::")[0] for nid in proofs})
    missing_files = [f for f in files if not (ROOT / f).is_file()]
    assert not missing_files, missing_files
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:xdist",
                          "-p", "no:cacheprovider", *files], cwd=ROOT, capture_output=True, text=True)
    collected = {line.strip() for line in out.stdout.splitlines() if "::" in line}
    missing = [nid for nid in proofs if nid not in collected]
    assert not missing, f"proofs that do not exist: {missing[:10]}"


def test_readme_table_is_generated_from_the_catalogue():
    from convzoo.catalogue import README_BEGIN, README_END, markdown_table

    text = (ROOT / "README.md").read_text()
    table = text.split(README_BEGIN, 1)[1].split(README_END, 1)[0].strip()
    assert table == markdown_table().strip(), "run `python -m convzoo.catalogue` to regenerate the README table"
