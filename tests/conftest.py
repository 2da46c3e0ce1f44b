import os

# OpenMP threads that spin while they wait for work steal the cores from the other xdist worker (and
# from anything else on a shared machine): set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_configure(config):
    config.addinivalue_line("markers", "paper(n): the seed paper this test proves")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that proves a catalogue claim must pass: its skip or xfail is a failure, not a pass."""
    outcome = yield
    report = outcome.get_result()
    claims = list(item.iter_markers("claim"))
    if not claims or not (report.skipped or hasattr(report, "wasxfail")):
        return
    if hasattr(report, "wasxfail"):
        what, reason = "xfailed", report.wasxfail or "marked xfail"
        del report.wasxfail
    else:
        what = "skipped"
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
    proves = "; ".join(f"paper {m.kwargs.get('paper')} {m.kwargs.get('artefact')}: {m.kwargs.get('claim')}"
                       for m in claims)
    report.outcome = "failed"
    report.longrepr = (f"claim test {what}: {reason}\n  {item.nodeid} proves {proves}\n"
                       "  a claim's proof must run and pass (install the dev extra, or drop the claim)")
