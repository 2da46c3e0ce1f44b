"""Per-sample augmentation written in a recipe as a list of torchvision.transforms.v2 steps."""

from __future__ import annotations

import itertools

import pytest
import torch
from torchvision.transforms import v2

from convzoo.data import build_dataset
from convzoo.data.transforms import build_transform, resolve_augment
from convzoo.errors import ConvzooError


def test_list_of_v2_steps_builds_in_order_with_erasing_after_normalisation():
    steps = resolve_augment("x", [{"RandomResizedCrop": {"size": 16, "interpolation": "bicubic"}},
                                  "RandomHorizontalFlip", {"RandAugment": {"num_ops": 2, "magnitude": 9}},
                                  {"RandomErasing": {"p": 1.0, "value": 0}}], "none")
    assert [n for n, _ in steps] == ["RandomResizedCrop", "RandomHorizontalFlip", "RandAugment", "RandomErasing"]
    assert steps[0][1].interpolation == v2.InterpolationMode.BICUBIC
    tf = build_transform(in_chans=3, channels=3, size=16, native_size=(32, 32), augment=steps,
                         mean=(0.5,) * 3, std=(0.25,) * 3)
    names = [type(t).__name__ for t in tf.transforms]
    # the crop resizes (no separate Resize), normalisation comes before the erasing (as timm places it)
    assert names == ["RandomResizedCrop", "RandomHorizontalFlip", "RandAugment", "ToNormalizedFloat",
                     "RandomErasing"]
    x = tf(torch.full((3, 32, 32), 255, dtype=torch.uint8))
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32
    assert (x == 0).any() and (x == 2.0).any()  # an erased rectangle in a normalised white image


def test_digits_take_a_recipe_list_on_the_train_split_only():
    aug = [{"RandomAffine": {"degrees": 30}}, {"RandomErasing": {"p": 1.0}}]
    train = build_dataset("digits", "train", size=16, augment=aug)
    test = build_dataset("digits", "test", size=16, augment=aug)
    assert train.info.extra["augment"] == ["RandomAffine", "RandomErasing"]
    assert test.info.extra["augment"] == "none"
    torch.manual_seed(0)
    a = train[0][0]
    torch.manual_seed(1)
    assert not torch.equal(a, train[0][0]) and torch.equal(test[0][0], test[0][0])


def test_bad_steps_are_one_line_errors():
    with pytest.raises(ConvzooError, match=r"unknown augment step 'RandomErase'; did you mean RandomErasing"):
        resolve_augment("digits", ["RandomErase"], "none")
    with pytest.raises(ConvzooError, match=r"augment step RandomAffine rejects"):
        resolve_augment("digits", [{"RandomAffine": {"degree": 3}}], "none")


def test_grouped_jitter_draws_one_distortion_per_group_and_keeps_targets(tiny_jitter_batch):
    """``GroupedJitter``: zero settings are the identity; one affine map and one elastic field per group
    (identical images stay identical inside a group and differ across groups); the channel permutation
    only reorders each image's channels; the engine's ``jitter`` batch transform leaves targets alone."""
    from convzoo.data.transforms import GroupedJitter
    from convzoo.engine.build import build_batch_transform
    from convzoo.engine.recipe import load_recipe

    x, y = tiny_jitter_batch
    ident = GroupedJitter(degrees=0, shear=0, scale=0, alpha=0, channel_permutation=False)
    assert torch.equal(ident(x), x)
    torch.manual_seed(0)
    same = x[:1].expand(8, -1, -1, -1).contiguous()
    out = GroupedJitter(group=4, channel_permutation=False)(same)
    assert torch.equal(out[0], out[3]) and torch.equal(out[4], out[7]) and not torch.allclose(out[0], out[4])
    assert not torch.allclose(out[0], same[0])
    perm = GroupedJitter(degrees=0, shear=0, scale=0, alpha=0)(x)
    for a, b in zip(perm, x):
        assert any(torch.equal(a, b[list(p)]) for p in itertools.permutations(range(3)))
    cfg = load_recipe("multidigit_numbers", values={"batch_transform": {"name": "jitter", "kwargs": {"group": 2}}})
    fn = build_batch_transform(cfg, None)
    jx, jy = fn((x, y))
    assert jx.shape == x.shape and jy is y
    bad = load_recipe("multidigit_numbers", values={"batch_transform": {"name": "jitter", "kwargs": {"sigmaa": 2}}})
    with pytest.raises(ConvzooError, match="takes kwargs"):
        build_batch_transform(bad, None)
    with pytest.raises(ConvzooError, match="group >= 1"):
        GroupedJitter(group=0)


@pytest.fixture
def tiny_jitter_batch():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(8, 3, 24, 24, generator=g)
    y = torch.randint(0, 10, (8, 6), generator=g)
    return x, y
