import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_configure(config):
    config.addinivalue_line("markers", "paper(n): the seed paper this test proves")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
