"""The ImageNet recipes of papers 11, 13, 18, 21 and 39 name the official training's per-iteration schedule,
MixUp / CutMix and per-sample augmentation (RandAugment, random erasing), and their data set builds that
augmentation on a small ImageFolder tree written here. That the recipes take real optimizer steps as
written is tests/engine/test_every_recipe.py (with every other recipe).
"""

from __future__ import annotations

import pytest
from fixture_files import write_tree

from convzoo.engine import load_recipe
from convzoo.engine.build import build_data


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet_like")
    for split, n in (("train", 16), ("val", 2), ("test", 2)):
        write_tree(root, split, {"n01": n, "n02": n})
    return root


def _values(root, cfg):
    return {"data.root": str(root), "data.kwargs.size": 32, "data.num_workers": 0}


@pytest.mark.parametrize("name", [
    pytest.param("unireplknet_a_imagenet_paper",
                 marks=pytest.mark.claim(paper=13, artefact="unireplknet_in1k", claim=("the ImageNet recipe names per-iteration warm-up/cosine, MixUp/CutMix and RandAugment + random erasing, "
                     "and its data set builds them (the steps are taken in tests/engine/test_every_recipe.py)"))),
    pytest.param("replknet_31b_imagenet_paper",
                 marks=pytest.mark.claim(paper=11, artefact="replknet_31b_in1k", claim=("the ImageNet recipe names per-iteration warm-up/cosine, MixUp/CutMix and RandAugment + random erasing, "
                     "and its data set builds them (the steps are taken in tests/engine/test_every_recipe.py)"))),
    pytest.param("lsnet_t_imagenet_paper", marks=pytest.mark.claim(paper=18, artefact="lsnet_in1k", claim=("the ImageNet recipe names per-iteration warm-up/cosine, MixUp/CutMix and RandAugment + random erasing, "
                     "and its data set builds them (the steps are taken in tests/engine/test_every_recipe.py)"))),
    pytest.param("spartan_imagenet_paper", marks=pytest.mark.claim(paper=21, artefact="spartan_in1k", claim=("the ImageNet recipe names per-iteration warm-up/cosine, MixUp/CutMix and RandAugment + random erasing, "
                     "and its data set builds them (the steps are taken in tests/engine/test_every_recipe.py)"))),
    pytest.param("convnext_dcls_tiny_imagenet_paper",
                 marks=pytest.mark.claim(paper=39, artefact="convnext_dcls_tiny_imagenet_paper", claim=("the ImageNet recipe names per-iteration warm-up/cosine, MixUp/CutMix and RandAugment + random erasing, "
                     "and its data set builds them (the steps are taken in tests/engine/test_every_recipe.py)"))),
])
def test_paper_recipe_builds_its_schedule_and_augmentation(name, image_tree):
    cfg = load_recipe(name)
    assert cfg["schedule"]["interval"] == "step" and cfg["batch_transform"]["name"] == "mixup_cutmix"
    steps = [next(iter(s)) if isinstance(s, dict) else s for s in cfg["data"]["kwargs"]["augment"]]
    assert steps == ["RandomResizedCrop", "RandomHorizontalFlip", "RandAugment", "RandomErasing"]
    values = _values(image_tree, cfg)
    train_set = build_data(load_recipe(name, values=values), "train")
    assert train_set.info.extra["augment"] == steps and train_set[0][0].shape == (3, 32, 32)
