"""The paper recipes hold the papers' numbers: each expected value below is written from the fact sheet
(../shared/papers, which quotes the paper or the official training code) with its source, and compared
with the recipe file as loaded. That they *run* as written is tests/engine/test_every_recipe.py.

Recipes whose values are proven in their family's tests are not repeated here: rotnet_*_paper
(tests/models/test_rotnet.py), ssd300_voc_paper / ssd300_coco_paper (tests/tasks/test_detection.py),
replknet_31b_imagenet_paper (tests/models/test_replknet.py), convnext_dcls_tiny_imagenet_paper
(tests/models/test_dcls.py), eca_*_imagenet_paper (tests/models/test_ecanet.py), inception_v4_imagenet_paper
(tests/models/test_inception.py), lsnet_t_distill_imagenet_paper (tests/models/test_lsnet.py).
"""

from __future__ import annotations

import pytest

from convzoo.engine import load_recipe

# (dotted key, the paper's value); "~" prefixed keys compare after a closed-form conversion in the test
PAPER = {
    # G1a Paper 37: official imagenet.py / train.sh: SGD momentum 0.9, lr 0.1, wd 1e-4, batch 256,
    # 100 epochs, x0.1 at epochs 30/60/90, RandomResizedCrop 224 + flip
    "resnet50_ibn_a_imagenet_paper": {
        "optimizer.name": "sgd", "optimizer.lr": 0.1, "optimizer.weight_decay": 1e-4,
        "optimizer.kwargs.momentum": 0.9, "batch_size": 256, "epochs": 100, "schedule.name": "multistep",
        "schedule.kwargs.milestones": [30, 60, 90], "schedule.kwargs.gamma": 0.1, "data.kwargs.size": 224,
        "model.name": "resnet50_ibn_a",
    },
    # G1a Paper 53: VoVNet.pytorch README, the pytorch/examples protocol: SGD, 90 epochs, lr x0.1 every
    # 30 epochs, batch 256, 224 px (pytorch/examples defaults: lr 0.1, momentum 0.9, wd 1e-4)
    "vovnet39_imagenet_paper": {
        "optimizer.name": "sgd", "optimizer.lr": 0.1, "optimizer.weight_decay": 1e-4,
        "optimizer.kwargs.momentum": 0.9, "batch_size": 256, "epochs": 90, "schedule.name": "step",
        "schedule.kwargs.step_size": 30, "schedule.kwargs.gamma": 0.1, "data.kwargs.size": 224,
        "model.name": "vovnet39",
    },
    # G1a Paper 32: official cifar/main.py (the Caffe solver): Adadelta lr 0.1, rho 0.9, eps 1e-3, wd 1e-3;
    # MultiStepLR x0.1 at 100, 190, 306, 390, 440, 540; 540-700 epochs; batch 64-100; crop 32 pad 4 + flip
    "simplenet_cifar10_paper": {
        "optimizer.name": "adadelta", "optimizer.lr": 0.1, "optimizer.kwargs.rho": 0.9, "optimizer.kwargs.eps": 1e-3,
        "optimizer.weight_decay": 1e-3, "schedule.name": "multistep",
        "schedule.kwargs.milestones": [100, 190, 306, 390, 440, 540], "schedule.kwargs.gamma": 0.1,
        "data.kwargs.augment": "crop_flip", "data.name": "cifar10",
    },
    # G1a Papers 11 + 13: official Image/README.md + main.py: AdamW lr 4e-3 at total batch 4096, wd 0.05,
    # 300 epochs, 20 warm-up, cosine to 1e-6, rand-m9-mstd0.5-inc1, label smoothing 0.1, random erasing
    # 0.25, bicubic; UniRepLKNet-A: drop-path 0.0, mixup 0.3, cutmix 0.3
    "unireplknet_a_imagenet_paper": {
        "optimizer.name": "adamw", "optimizer.lr": 4e-3, "optimizer.weight_decay": 0.05, "epochs": 300,
        "schedule.name": "cosine", "schedule.warmup_epochs": 20, "schedule.kwargs.eta_min": 1e-6,
        "task.kwargs.label_smoothing": 0.1, "model.kwargs.drop_path_rate": 0.0,
        "batch_transform.kwargs.mixup_alpha": 0.3, "batch_transform.kwargs.cutmix_alpha": 0.3,
        "~global_batch": 4096, "~randaugment_magnitude": 9, "~erasing_p": 0.25,
    },
    # G1a Paper 18: official main.py: AdamW lr 1e-3, batch 2048, wd 0.025 (LSNet-T/S), 300 epochs, cosine,
    # 5 warm-up, min lr 1e-5, rand-m9-mstd0.5-inc1, mixup 0.8, cutmix 1.0, label smoothing 0.1, erasing 0.25
    "lsnet_t_imagenet_paper": {
        "optimizer.name": "adamw", "optimizer.lr": 1e-3, "optimizer.weight_decay": 0.025, "epochs": 300,
        "schedule.name": "cosine", "schedule.warmup_epochs": 5, "schedule.kwargs.eta_min": 1e-5,
        "task.kwargs.label_smoothing": 0.1, "batch_transform.kwargs.mixup_alpha": 0.8,
        "batch_transform.kwargs.cutmix_alpha": 1.0, "~global_batch": 2048, "~randaugment_magnitude": 9,
        "~erasing_p": 0.25,
    },
    # G1a Paper 21: official hydra configs: AdamW lr 2.5e-3, 20 warm-up epochs, cosine to 1e-6, 300 epochs,
    # wd 0.03, label smoothing 0.2, batch 2048, 256 px, RandAugment magnitude 7, erasing 0.25, CutMix 1.0 /
    # MixUp 0.2 chosen per batch
    "spartan_imagenet_paper": {
        "optimizer.name": "adamw", "optimizer.lr": 2.5e-3, "optimizer.weight_decay": 0.03, "epochs": 300,
        "schedule.name": "cosine", "schedule.warmup_epochs": 20, "schedule.kwargs.eta_min": 1e-6,
        "task.kwargs.label_smoothing": 0.2, "data.kwargs.size": 256, "batch_transform.kwargs.mixup_alpha": 0.2,
        "batch_transform.kwargs.cutmix_alpha": 1.0, "~global_batch": 2048, "~randaugment_magnitude": 7,
        "~erasing_p": 0.25,
    },
    # G2 Paper 40: official README table / main.py: Adam lr 1e-3, batch 128, 10,000 steps, SVM C = 1,
    # TF input_data's 5,000-image validation hold-out
    "cnn_svm_mnist_paper": {
        "optimizer.name": "adam", "optimizer.lr": 1e-3, "batch_size": 128, "task.kwargs.loss": "l2svm",
        "task.kwargs.svm_c": 1.0, "data.kwargs.val_size": 5000, "~steps_within_an_epoch_of_10k": True,
    },
    # G2 Paper 56: sandwich rule with N = 2 random children; exponential decay with a constant ending
    # (about 5 % of the initial lr)
    "bignas_imagenet_paper": {
        "method.name": "bignas", "method.kwargs.num_random": 2, "method.kwargs.lr_floor": 0.05,
        "schedule.name": "exponential",
    },
    # G3 Paper 41 Sec. 3.1-3.2: 17 x 17 LR sub-images, Gaussian blur + sub-sampling, Y channel; lr 0.01
    # decreased to 0.0001 when the improvement stalls; the last layer at 1/10 of the lr
    "espcn_x3_imagenet_paper": {
        "optimizer.lr": 0.01, "data.kwargs.patch": 17, "data.kwargs.degradation": "gaussian",
        "data.kwargs.colour": "y", "data.kwargs.scale": 3, "schedule.name": "plateau",
        "~final_lr": 1e-4, "~last_layer_lr_mult": 0.1,
    },
}
MNIST_TRAIN = 60_000  # the MNIST training set (LeCun et al.); TF's input_data holds 5,000 of it out


def _get(cfg: dict, dotted: str):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg


def _augment(cfg: dict, name: str) -> dict:
    for step in cfg["data"]["kwargs"]["augment"]:
        if isinstance(step, dict) and name in step:
            return step[name]
    raise AssertionError(f"{cfg['name']}: no {name} in data.kwargs.augment")


def _derived(cfg: dict, key: str):
    """The closed forms behind the '~' keys."""
    if key == "~global_batch":  # images per optimizer step
        return cfg["batch_size"] * cfg["accumulate"]
    if key == "~randaugment_magnitude":
        return _augment(cfg, "RandAugment")["magnitude"]
    if key == "~erasing_p":
        return _augment(cfg, "RandomErasing")["p"]
    if key == "~steps_within_an_epoch_of_10k":  # optimizer steps = epochs x (training images // batch)
        per_epoch = (MNIST_TRAIN - cfg["data"]["kwargs"]["val_size"]) // cfg["batch_size"]
        return abs(cfg["epochs"] * per_epoch - 10_000) <= per_epoch
    if key == "~final_lr":  # the plateau factor takes lr 0.01 to the paper's 0.0001 in one reduction
        return cfg["optimizer"]["lr"] * cfg["schedule"]["kwargs"]["factor"]
    if key == "~last_layer_lr_mult":
        (group,) = [g for g in cfg["optimizer"]["param_groups"] if g["match"].startswith("upsample")]
        return group["lr_mult"]
    raise KeyError(key)


@pytest.mark.parametrize("name", [
    pytest.param("resnet50_ibn_a_imagenet_paper", marks=pytest.mark.claim(
        paper=37, artefact="ibnnet_in1k", claim="the recipe holds the official imagenet.py / train.sh numbers "
        "(SGD 0.1, momentum 0.9, wd 1e-4, batch 256, 100 epochs, x0.1 at 30/60/90)")),
    pytest.param("vovnet39_imagenet_paper", marks=pytest.mark.claim(
        paper=53, artefact="vovnet39_imagenet_paper", claim="the recipe holds the VoVNet.pytorch README protocol "
        "(SGD 0.1, momentum 0.9, wd 1e-4, batch 256, 90 epochs, x0.1 every 30)")),
    pytest.param("simplenet_cifar10_paper", marks=pytest.mark.claim(
        paper=32, artefact="simplenet_cifar10_paper", claim="the recipe holds the official cifar/main.py solver "
        "(Adadelta 0.1, rho 0.9, eps 1e-3, wd 1e-3, x0.1 at 100/190/306/390/440/540, crop + flip)")),
    pytest.param("unireplknet_a_imagenet_paper", marks=pytest.mark.claim(
        paper=13, artefact="unireplknet_in1k", claim="the recipe holds the official Image/README.md numbers for "
        "UniRepLKNet-A (AdamW 4e-3 at 4096, wd 0.05, 300 epochs, 20 warm-up, min lr 1e-6, RandAugment m9, "
        "erasing 0.25, label smoothing 0.1, mixup/cutmix 0.3/0.3, drop-path 0)")),
    pytest.param("lsnet_t_imagenet_paper", marks=pytest.mark.claim(
        paper=18, artefact="lsnet_in1k", claim="the recipe holds the official main.py numbers (AdamW 1e-3, batch "
        "2048, wd 0.025, 300 epochs, 5 warm-up, min lr 1e-5, RandAugment m9, mixup 0.8, cutmix 1.0, "
        "label smoothing 0.1, erasing 0.25)")),
    pytest.param("spartan_imagenet_paper", marks=pytest.mark.claim(
        paper=21, artefact="spartan_in1k", claim="the recipe holds the official hydra configs (AdamW 2.5e-3, wd "
        "0.03, 20 warm-up, min lr 1e-6, 300 epochs, batch 2048, 256 px, RandAugment m7, erasing 0.25, label "
        "smoothing 0.2, mixup 0.2 / cutmix 1.0)")),
    pytest.param("cnn_svm_mnist_paper", marks=pytest.mark.claim(
        paper=40, artefact="cnn_svm_mnist_paper", claim="the recipe holds the official README table (Adam 1e-3, "
        "batch 128, 10,000 steps on TF's 55,000-image split, C = 1)")),
    pytest.param("bignas_imagenet_paper", marks=pytest.mark.claim(
        paper=56, artefact="bignas_imagenet_paper", claim="the recipe holds the paper's training rules (sandwich "
        "with N = 2 random children, exponential decay with a constant ending at 5 % of the initial lr)")),
    pytest.param("espcn_x3_imagenet_paper", marks=pytest.mark.claim(
        paper=41, artefact="espcn_x3_imagenet_paper", claim="the recipe holds Sec. 3.1-3.2 (17 x 17 LR Y patches, "
        "Gaussian blur + sub-sampling, lr 0.01 -> 0.0001 on a stall, last layer at 1/10 of the lr)")),
])
def test_paper_recipe_holds_the_papers_values(name):
    cfg = load_recipe(name)
    for key, expected in PAPER[name].items():
        got = _derived(cfg, key) if key.startswith("~") else _get(cfg, key)
        assert got == pytest.approx(expected) if isinstance(expected, float) else got == expected, (name, key, got)
