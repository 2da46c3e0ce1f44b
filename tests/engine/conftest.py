import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tinyzoo


@pytest.fixture(scope="module")
def tiny():
    """The tiny data set and model, registered while a test module runs (out of the contract tests)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only fight over the shared cores
    tinyzoo.register()
    yield tinyzoo
    tinyzoo.unregister()
    torch.set_num_threads(threads)


@pytest.fixture
def recipe_file(tmp_path):
    """Write a recipe mapping to ``tmp_path/<name>.yaml`` and return the path."""

    def write(recipe: dict, name: str = "tiny") -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(recipe, sort_keys=False))
        return path

    return write
