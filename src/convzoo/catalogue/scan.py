"""Read the catalogue's claims from the tests: a static scan of ``@pytest.mark.claim(...)`` markers.

A claim lives next to the test that proves it::

    @pytest.mark.claim(paper=43, artefact="eca_resnet50", claim="parameter count equals Table 2")
    def test_eca_resnet50_params(): ...

Keywords (literals only, so the scan needs neither pytest nor the test's imports):
  ``paper``     the seed number (int)
  ``artefact``  the artefact's name in ``papers.toml`` (str)
  ``claim``     what the test proves, one line (str)
  ``pin``       optional, ``True`` for a pure regression pin (a value measured on our own code); pins are
                listed apart and never count as fidelity proofs

Where a marker may stand:
  * on a test function or method (several markers on one test are several claims);
  * in a class's or module's ``pytestmark`` (every test of the class/module proves it);
  * on one case: ``pytest.param(..., marks=pytest.mark.claim(...))`` inside ``@pytest.mark.parametrize``,
    or in a module-level list literal that the decorator names (``CASES = [pytest.param(...), ...]``).

The proof id is ``file::function`` (or ``file::Class::function``): a parametrized test's claim is proven
by all of its cases (or, for a claim on a ``pytest.param``, by that case; its id is still the function's).
Tests parametrized over many artefacts (the model contract over every registered model) carry one
function-level marker per artefact they prove, so the set of proven artefacts is explicit and static.

``scan(root)`` returns the claims; ``python -m convzoo.catalogue`` writes them to ``claims.json``, which
the installed package reads (``tests/test_catalogue.py`` fails when it is stale).
"""

from __future__ import annotations

import ast
from pathlib import Path

KEYS = ("paper", "artefact", "claim", "pin")


class ClaimSyntaxError(ValueError):
    pass


def _is_claim_call(node: ast.AST) -> bool:
    """``pytest.mark.claim(...)`` or ``mark.claim(...)``."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute) or node.func.attr != "claim":
        return False
    owner = node.func.value
    return (isinstance(owner, ast.Attribute) and owner.attr == "mark") or (
        isinstance(owner, ast.Name) and owner.id == "mark")


def _claims_in(node: ast.AST | None, where: str) -> list[dict]:
    out = []
    for sub in ast.walk(node) if node is not None else ():
        if _is_claim_call(sub):
            out.append(_parse(sub, where))
    return out


def _parse(call: ast.Call, where: str) -> dict:
    at = f"{where}:{call.lineno}"
    if call.args:
        raise ClaimSyntaxError(f"{at}: claim markers take keywords only (paper=, artefact=, claim=, pin=)")
    kw = {}
    for k in call.keywords:
        if k.arg not in KEYS:
            raise ClaimSyntaxError(f"{at}: unknown claim keyword {k.arg!r} (expected {', '.join(KEYS)})")
        try:
            kw[k.arg] = ast.literal_eval(k.value)
        except ValueError:
            raise ClaimSyntaxError(f"{at}: claim keyword {k.arg}= must be a literal") from None
    if not isinstance(kw.get("paper"), int) or isinstance(kw.get("paper"), bool):
        raise ClaimSyntaxError(f"{at}: claim needs paper=<seed number>")
    for key in ("artefact", "claim"):
        if not isinstance(kw.get(key), str) or not kw[key].strip():
            raise ClaimSyntaxError(f"{at}: claim needs a non-empty {key}=")
    if not isinstance(kw.get("pin", False), bool):
        raise ClaimSyntaxError(f"{at}: pin= must be True or False")
    return {"paper": kw["paper"], "artefact": kw["artefact"], "claim": kw["claim"], "pin": kw.get("pin", False)}


def _pytestmark(body: list[ast.stmt]) -> ast.AST | None:
    for stmt in body:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                                for t in stmt.targets):
            return stmt.value
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == "pytestmark":
            return stmt.value
    return None


def _is_test(node: ast.stmt) -> bool:
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")


def scan_file(path: Path, rel: str) -> list[tuple[dict, str]]:
    """(claim, proof id) for every claim marker in one test file."""
    tree = ast.parse(path.read_text(), filename=rel)
    found: list[tuple[dict, str]] = []
    seen: set[int] = set()  # ids of claim calls that were attributed to a test

    def take(node, where, proof):
        for sub in ast.walk(node) if node is not None else ():
            if _is_claim_call(sub):
                seen.add(id(sub))
        for c in _claims_in(node, where):
            found.append((c, proof))

    # module-level lists of pytest.param(...) that a parametrize decorator names (``SMALL = [...]``)
    lists = {t.id: stmt.value for stmt in tree.body if isinstance(stmt, ast.Assign)
             and isinstance(stmt.value, ast.List | ast.Tuple) for t in stmt.targets if isinstance(t, ast.Name)}

    def take_decorator(dec, proof):
        take(dec, rel, proof)
        for name in {n.id for n in ast.walk(dec) if isinstance(n, ast.Name) and n.id in lists}:
            take(lists[name], rel, proof)

    module_marks = _pytestmark(tree.body)
    for node in tree.body:
        if _is_test(node):
            proof = f"{rel}::{node.name}"
            take(module_marks, rel, proof)
            for dec in node.decorator_list:
                take_decorator(dec, proof)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            class_marks = _pytestmark(node.body)
            for item in node.body:
                if _is_test(item):
                    proof = f"{rel}::{node.name}::{item.name}"
                    take(module_marks, rel, proof)
                    take(class_marks, rel, proof)
                    for dec in [*node.decorator_list, *item.decorator_list]:
                        take_decorator(dec, proof)
    stray = [n for n in ast.walk(tree) if _is_claim_call(n) and id(n) not in seen]
    if stray:
        raise ClaimSyntaxError(f"{rel}:{stray[0].lineno}: a claim marker must decorate a test function "
                               "(or sit in its pytest.param / pytestmark), or the catalogue cannot see it")
    return found


def scan(root: Path) -> list[dict]:
    """All claims under ``root/tests``: one entry per (paper, artefact, claim, pin) with its sorted proof ids,
    ordered by paper, artefact and first appearance."""
    root = Path(root)
    merged: dict[tuple, dict] = {}
    order: dict[tuple, int] = {}
    for path in sorted((root / "tests").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if not (path.name.startswith("test_") or path.name.endswith("_test.py")):
            calls = [n for n in ast.walk(ast.parse(path.read_text(), filename=rel)) if _is_claim_call(n)]
            if calls:
                raise ClaimSyntaxError(f"{rel}:{calls[0].lineno}: claim markers belong in test modules "
                                       "(test_*.py), where pytest collects them")
            continue
        for c, proof in scan_file(path, rel):
            key = (c["paper"], c["artefact"], c["claim"], c["pin"])
            entry = merged.setdefault(key, {**c, "proofs": []})
            order.setdefault(key, len(order))
            if proof not in entry["proofs"]:
                entry["proofs"].append(proof)
    out = []
    for key in sorted(merged, key=lambda k: (k[0], k[1], order[k])):
        entry = merged[key]
        entry["proofs"] = sorted(entry["proofs"])
        out.append(entry)
    return out
