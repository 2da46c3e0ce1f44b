"""The paper catalogue: the 57 seed papers, their artefacts, and the tests that prove each claim.

``papers.toml`` is data: papers and their artefacts (kind, name, ref, note). Claims live next to the
tests that prove them, as ``@pytest.mark.claim(paper=, artefact=, claim=[, pin=True])`` markers (see
``scan.py``); ``python -m convzoo.catalogue`` scans them statically into ``claims.json``, which this module
reads, so ``convzoo papers`` works in an installed package without the tests.

An artefact is *done* when it has a ``ref`` (what it resolves to in the package) and at least one claim
that is not a pin (a regression pin, a value measured on our own code, proves no fidelity); otherwise
it is *planned*. Status is derived, never typed by hand, and ``tests/test_catalogue.py`` fails when a ref
does not resolve, a claim names an unknown artefact, a done artefact has no claim or ``claims.json`` is
stale; ``tests/conftest.py`` fails a claim test that skips or xfails. So the table printed by
``convzoo papers`` is true by construction.

Refs:
  ``model:NAME``              a registered model name
  ``layer:module.path:Attr``  an importable class or function (also ``method:``/``tool:``)
  ``task:NAME``               a registered task
  ``data:NAME``               a registered data set
  ``recipe:NAME``             a recipe file in convzoo/recipes
"""

from __future__ import annotations

import importlib
import json
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from convzoo.errors import ConvzooError, UnknownNameError

PATH = Path(__file__).with_name("papers.toml")
CLAIMS_PATH = Path(__file__).with_name("claims.json")


@dataclass(frozen=True)
class Claim:
    claim: str
    proofs: tuple[str, ...]
    pin: bool = False


@dataclass(frozen=True)
class Artefact:
    kind: str
    name: str
    ref: str = ""
    note: str = ""
    claims: tuple[Claim, ...] = ()

    @property
    def status(self) -> str:
        return "done" if self.ref and any(c.proofs and not c.pin for c in self.claims) else "planned"

    @property
    def proofs(self) -> tuple[str, ...]:
        """The tests that prove this artefact's fidelity claims (pins excluded), each once."""
        return tuple(dict.fromkeys(p for c in self.claims if not c.pin for p in c.proofs))

    @property
    def pins(self) -> tuple[Claim, ...]:
        return tuple(c for c in self.claims if c.pin)


@dataclass(frozen=True)
class Paper:
    seed: int
    key: str
    title: str
    year: int
    sheet: str = ""
    group: str = ""
    arxiv: str = ""
    artefacts: tuple[Artefact, ...] = field(default_factory=tuple)

    @property
    def done(self) -> list[Artefact]:
        return [a for a in self.artefacts if a.status == "done"]

    @property
    def planned(self) -> list[Artefact]:
        return [a for a in self.artefacts if a.status == "planned"]

    @property
    def proofs(self) -> tuple[str, ...]:
        """The distinct tests that prove a (non-pin) claim of this paper."""
        return tuple(dict.fromkeys(p for a in self.artefacts for p in a.proofs))

    @property
    def status(self) -> str:
        if not self.done:
            return "planned"
        return "done" if not self.planned else "partial"

    def as_dict(self) -> dict:
        return {
            "seed": self.seed, "key": self.key, "title": self.title, "year": self.year, "arxiv": self.arxiv,
            "sheet": self.sheet, "group": self.group, "status": self.status,
            "artefacts": [{"kind": a.kind, "name": a.name, "ref": a.ref, "status": a.status, "note": a.note,
                           "claims": [{"claim": c.claim, "proofs": list(c.proofs)} for c in a.claims if not c.pin],
                           "pins": [{"claim": c.claim, "proofs": list(c.proofs)} for c in a.pins]}
                          for a in self.artefacts],
        }


def load_claims(path: Path = CLAIMS_PATH) -> list[dict]:
    """The claims as ``python -m convzoo.catalogue`` last scanned them from the tests."""
    if not path.is_file():
        return []
    return json.loads(path.read_text())["claims"]


def claims_json(root: Path) -> str:
    """The text of ``claims.json`` for the tests under ``root/tests`` (a static scan; pytest is not run)."""
    from convzoo.catalogue.scan import scan

    doc = {"generated_by": "python -m convzoo.catalogue (from @pytest.mark.claim markers in tests/)",
           "claims": scan(root)}
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def write_claims(root: Path, path: Path = CLAIMS_PATH) -> bool:
    """Regenerate ``claims.json``; returns whether it changed."""
    text = claims_json(root)
    changed = not path.is_file() or path.read_text() != text
    if changed:
        path.write_text(text)
        papers.cache_clear()
    return changed


@lru_cache(maxsize=1)
def papers() -> tuple[Paper, ...]:
    with open(PATH, "rb") as f:
        raw = tomllib.load(f)
    by_artefact: dict[tuple[int, str], list[Claim]] = {}
    for c in load_claims():
        by_artefact.setdefault((c["paper"], c["artefact"]), []).append(
            Claim(c["claim"], tuple(c["proofs"]), bool(c.get("pin", False))))
    out = []
    for p in raw["paper"]:
        arts = tuple(
            Artefact(kind=a["kind"], name=a["name"], ref=a.get("ref", ""), note=a.get("note", ""),
                     claims=tuple(by_artefact.get((p["seed"], a["name"]), ())))
            for a in p.get("artefact", []))
        out.append(Paper(seed=p["seed"], key=p["key"], title=p["title"], year=p["year"], sheet=p.get("sheet", ""),
                         group=p.get("group", ""), arxiv=p.get("arxiv", ""), artefacts=arts))
    return tuple(sorted(out, key=lambda p: p.seed))


def get_paper(which: int | str) -> Paper:
    for p in papers():
        if str(p.seed) == str(which) or p.key == str(which).lower():
            return p
    raise UnknownNameError("paper", str(which), [p.key for p in papers()])


def resolve(ref: str):
    """Resolve an artefact ref to the object it names; raises ConvzooError when it does not."""
    kind, _, target = ref.partition(":")
    if kind == "model":
        from convzoo.registry import get_card

        return get_card(target)
    if kind == "task":
        import convzoo.tasks  # noqa: F401 (importing the package registers every task)
        from convzoo.tasks.base import _TASKS

        if target not in _TASKS:
            raise ConvzooError(f"task '{target}' is not registered")
        return _TASKS[target]
    if kind == "data":
        from convzoo.data import list_datasets

        if target not in list_datasets():
            raise ConvzooError(f"data set '{target}' is not registered")
        return target
    if kind == "recipe":
        path = Path(__file__).parents[1] / "recipes" / f"{target}.yaml"
        if not path.is_file():
            raise ConvzooError(f"recipe '{target}' not found at {path}")
        return path
    if kind in ("layer", "method", "tool"):
        module, _, attr = target.partition(":")
        try:
            obj = importlib.import_module(module)
            for part in attr.split(".") if attr else []:
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as e:
            raise ConvzooError(f"{ref} does not resolve: {e}") from None
        return obj
    raise ConvzooError(f"bad artefact ref '{ref}' (expected model:, layer:, method:, tool:, task:, data: or recipe:)")


README_BEGIN = "<!-- papers-table:begin (generated by `python -m convzoo.catalogue`) -->"
README_END = "<!-- papers-table:end -->"


def markdown_table() -> str:
    """The README's table of papers, generated from the catalogue."""
    rows = ["| # | paper | year | status | done / planned artefacts | proofs |", "|---|---|---|---|---|---|"]
    for p in papers():
        done = ", ".join(f"`{a.name}`" for a in p.done) or "-"
        rows.append(f"| {p.seed} | {p.title} | {p.year} | {p.status} | {done} / {len(p.planned)} planned "
                    f"| {len(p.proofs)} |")
    return "\n".join(rows)


def update_readme(path: Path) -> bool:
    """Rewrite the generated table in ``path``; returns whether the file changed."""
    text = path.read_text()
    head, _, rest = text.partition(README_BEGIN)
    _, _, tail = rest.partition(README_END)
    new = f"{head}{README_BEGIN}\n{markdown_table()}\n{README_END}{tail}"
    if new != text:
        path.write_text(new)
    return new != text
