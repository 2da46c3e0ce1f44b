import os

# OpenMP threads that spin while they wait for work steal the cores from the other xdist worker (and
# from anything else on a shared machine): set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_configure(config):
    config.addinivalue_line("markers", "paper(n): the seed paper this test proves")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
