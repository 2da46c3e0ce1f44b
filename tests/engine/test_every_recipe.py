"""Every packaged recipe runs as written: its optimizer, parameter groups, schedule, accumulation,
per-sample augmentation and batch transform take real optimizer steps through the engine.

Each recipe is loaded from its file and trained with ``train()`` for one shortened epoch
(``limit_train_batches`` = two accumulated optimizer steps, ``limit_eval_batches`` = 1). Only what a CPU
test cannot hold is changed: the data's place (fixture files in the set's real on-disk format, written
by tests/fixture_files.py, for the sets that cannot be downloaded here), ImageNet-size inputs (the card's
small test size), the batch (at most 4), ``epochs`` (1), workers (0) and fp16 autocast (not on a CPU).
The model, method, optimizer, schedule, accumulation, augmentation and batch transform are the recipe's.

What must hold after the run, for every recipe: the batches seen and the optimizer steps taken are the
ones the limits ask for; the trained weights moved; every parameter group carries the recipe's
optimizer settings (its ``optimizer.kwargs``, its lr multipliers and weight decays: the recipe's value,
a group's own value, or 0 for the no-decay rule); and the per-sample augmentation the data set built is
the list the recipe names. The fidelity of a paper recipe's *values* (the paper's lr, batch, epochs) is
proven where each family writes the paper's numbers (e.g. tests/models/test_rotnet.py,
tests/tasks/test_detection.py, tests/engine/test_paper_recipe_values.py).
"""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from fixture_captioned import write_flickr
from fixture_captions import write_coco_captions
from fixture_files import (
    write_cifar10,
    write_coco_folder,
    write_deepforest_files,
    write_jpeg,
    write_mnist,
    write_tree,
    write_voc_xml,
)
from fixture_svhn import write_svhn_folder
from fixture_video import write_video_tree
from safetensors.torch import load_file

import convzoo
from convzoo.engine import list_recipes, load_recipe, train
from convzoo.engine.build import build_data
from convzoo.engine.checkpoint import load_state

# which optimizer each torch class is, told by a setting only it keeps in its param groups
OPTIMIZER_KEY = {"sgd": "nesterov", "adam": "amsgrad", "adamw": "amsgrad", "adadelta": "rho", "rmsprop": "centered", "kar2": "betas",
                 "kar3": "betas"}


# --- fixture data in each set's real format ---------------------------------------------------------
def _voc(root):
    """VOC2007 + VOC2012 folders with the paper's image sets (trainval / test), four images each."""
    for year in ("VOC2007", "VOC2012"):
        ids = [f"{year[-2:]}{i:04d}" for i in range(4)]
        for i, stem in enumerate(ids):
            write_jpeg(root / year / "JPEGImages" / f"{stem}.jpg", 60 + 4 * i, 50)
            write_voc_xml(root / year / "Annotations" / f"{stem}.xml", 60 + 4 * i, 50,
                          [("dog", (5, 5, 30 + i, 40), 0), ("cat", (32, 10, 58, 45), 0)])
        (root / year / "ImageSets" / "Main").mkdir(parents=True)
        for name in ("trainval", "test"):
            (root / year / "ImageSets" / "Main" / f"{name}.txt").write_text("\n".join(ids) + "\n")


def _coco(root):
    """COCO val2017 fixture; train2017 holds its images twice (four entries, so a batch of 2 fits twice)."""
    write_coco_folder(root)
    ann = json.loads((root / "annotations" / "instances_val2017.json").read_text())
    twice = {**ann, "images": ann["images"] + [{**im, "id": im["id"] + 100} for im in ann["images"]],
             "annotations": ann["annotations"] + [{**a, "id": a["id"] + 100, "image_id": a["image_id"] + 100}
                                                  for a in ann["annotations"]]}
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps(twice))
    shutil.copytree(root / "val2017", root / "train2017")


def _imagefolder(root):
    for split, n in (("train", 16), ("val", 2), ("test", 2)):
        write_tree(root, split, {c: n for c in ("n01", "n02", "n03", "n04")}, seed=len(split))


WRITERS = {
    "imagefolder": _imagefolder,
    "cifar10": write_cifar10,
    "mnist": write_mnist,
    "fashion_mnist": write_mnist,  # the IDX files the Debian package ships (gzipped there; both are read)
    "voc": _voc,
    "coco": _coco,
    "deepforest": write_deepforest_files,
    "svhn_multidigit": write_svhn_folder,  # format 1: PNGs + digitStruct.mat (HDF5)
    "coco_captions": write_coco_captions,
    "flickr8k": write_flickr,  # Karpathy's dataset_flickr8k.json + images
    "video_folder": write_video_tree,  # <split>/<class>/<video>/frame_*.jpg
}


@pytest.fixture(scope="module")
def data_roots(tmp_path_factory):
    roots = {}
    for name, write in WRITERS.items():
        roots[name] = tmp_path_factory.mktemp(name)
        write(roots[name])
    return roots


def smoke_values(cfg: dict, roots: dict) -> dict:
    """The few settings a CPU test changes (see the module docstring); all else is the recipe's."""
    data, acc = cfg["data"], cfg["accumulate"]
    values = {"epochs": 1, "batch_size": min(cfg["batch_size"], 4), "eval_batch_size": min(cfg["eval_batch_size"], 2),
              "data.num_workers": 0,
              "limit_train_batches": 2 * acc, "limit_eval_batches": 1}
    if data["name"] in roots:
        values["data.root"] = str(roots[data["name"]])
    if data["kwargs"].get("val_size"):  # a hold-out sized for the real set, larger than the fixture
        values["data.kwargs.val_size"] = 8
    if data["kwargs"].get("train_size"):  # a subset sized for the real set, larger than the fixture
        values["data.kwargs.train_size"] = 16
    if data["name"] in ("voc", "coco", "deepforest"):
        values["batch_size"] = 2
    if data["name"] == "imagefolder":  # ImageNet-size inputs: the card's small test size
        values["data.kwargs.size"] = convzoo.get_card(cfg["model"]["name"]).test_size[0]
    if data["name"] == "deepforest":
        values["data.kwargs.size"] = values["data.kwargs.tile"] = 100
    if data["name"] == "svhn_multidigit":  # no extra/ in the fixture
        values["data.kwargs.extra"] = False
    if data["name"] == "flickr8k":  # 224 px is slow on a CPU; the recipe's model takes any size
        values["data.kwargs.size"] = 32
    if data["name"] == "video_folder":  # 16-frame clips of 160-227 px are slow on a CPU: the card's small clip
        frames, side = convzoo.get_card(cfg["model"]["name"]).test_size[:2]
        values.update({"data.kwargs.resize": side, "data.kwargs.crop": side, "data.kwargs.clip_len": frames,
                       "data.kwargs.eval_clips": 2, "batch_size": 2})  # 6 fixture videos: 3 batches of 2
    if cfg["precision"] == "16-mixed":
        values["precision"] = "32-true"
    if "pretext" in cfg["method"]["kwargs"]:  # a frozen probe starts from random weights here
        values["method.kwargs.pretext"] = None
    if convzoo.get_card(cfg["model"]["name"]).params and convzoo.get_card(cfg["model"]["name"]).params > 300e6:
        # the Axial Transformer's ImageNet configurations (341M / 606M): the same model at width 32 (not GBs of Adam state)
        values["model.kwargs.embed_dim"], values["model.kwargs.num_heads"] = 32, 2
        for part in ("exterior", "outer", "inner"):
            values[f"model.kwargs.num_{part}_layers"] = 2  # one row / column pair each
    if "teacher_kwargs" in cfg["method"]["kwargs"]:  # a teacher of random weights (none can be fetched here)
        values["method.kwargs.teacher_kwargs"] = {}
    return values


class Watch:
    def on_train_start(self, method, **_):
        self.before = {k: v.detach().clone() for k, v in method.export_model().state_dict().items()}
        self.batches = 0

    def on_train_batch_end(self, step, **_):
        self.batches = step + 1


def _augment_steps(cfg: dict) -> list | None:
    augment = cfg["data"]["kwargs"].get("augment")
    return [next(iter(s)) if isinstance(s, dict) else s for s in augment] if isinstance(augment, list) else None


def check_run_as_written(name: str, roots: dict, tmp_path) -> None:
    cfg = load_recipe(name)
    values = smoke_values(cfg, roots)
    watch = Watch()
    torch.manual_seed(0)
    res = train(name, values=values, out_dir=tmp_path, run_name="r", progress=False, callbacks=[watch])
    assert res.epochs == 1 and watch.batches == values["limit_train_batches"]
    assert math.isfinite(res.history[0]["train_loss"])
    # the weights moved
    after = load_file(str(res.run_dir / "last.safetensors"))
    moved = [k for k, v in watch.before.items() if v.is_floating_point() and k in after
             and not torch.equal(after[k].to(v.dtype), v)]
    assert moved, "no weight changed"
    # the recipe's optimizer, groups and settings
    state = load_state(res.run_dir / "state.pt")
    opt = cfg["optimizer"]
    groups = state["optimizers"][0]["param_groups"]
    if cfg["schedule"]["interval"] == "step":  # the per-step schedule counted the accumulated optimizer steps
        assert state["schedules"][0]["inner"]["last_epoch"] == values["limit_train_batches"] // cfg["accumulate"]
    assert all(OPTIMIZER_KEY[opt["name"]] in g for g in groups)
    for key, value in opt["kwargs"].items():
        for g in groups:
            assert g[key] == (tuple(value) if isinstance(value, list) else value), (key, g[key], value)
    own = opt["param_groups"]
    assert {g.get("lr_mult", 1.0) for g in groups} <= {1.0} | {pg.get("lr_mult", 1.0) for pg in own}
    decays = {opt["weight_decay"], 0.0} | {pg["weight_decay"] for pg in own if pg.get("weight_decay") is not None}
    assert {g["weight_decay"] for g in groups} <= decays
    base = [g["lr"] / g.get("lr_mult", 1.0) for g in groups if g.get("lr_mult", 1.0) > 0]
    assert max(base) == pytest.approx(min(base), rel=1e-9)  # every group: one base lr times its multiplier
    # the per-sample augmentation the recipe names
    steps = _augment_steps(cfg)
    if steps is not None:
        assert build_data(load_recipe(name, values=values), "train").info.extra["augment"] == steps


SMALL = [
    pytest.param("bignas_digits", marks=pytest.mark.claim(paper=56, artefact="bignas_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("cnn_softmax_digits",
                 marks=pytest.mark.claim(paper=40, artefact="cnn_softmax_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("cnn_svm_digits", marks=pytest.mark.claim(paper=40, artefact="cnn_svm_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("cnn_svm_mnist_paper",
                 marks=pytest.mark.claim(paper=40, artefact="cnn_svm_mnist_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("convnext_dcls_digits",
                 marks=pytest.mark.claim(paper=39, artefact="convnext_dcls_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("eca_resnet18_digits",
                 marks=pytest.mark.claim(paper=43, artefact="eca_resnet18_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("ela_resnet18_digits",
                 marks=pytest.mark.claim(paper=10, artefact="ela_resnet18_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("espcn_x2_photos", marks=pytest.mark.claim(paper=41, artefact="espcn_x2_photos", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("espcn_x3_imagenet_paper",
                 marks=pytest.mark.claim(paper=41, artefact="espcn_x3_imagenet_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("espcn_x3_photos", marks=pytest.mark.claim(paper=41, artefact="espcn_x3_photos", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("espcn_x4_photos", marks=pytest.mark.claim(paper=41, artefact="espcn_x4_photos", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("espcn_x2_mixed", marks=pytest.mark.claim(paper=41, artefact="espcn_x2_mixed", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("espcn_x3_mixed", marks=pytest.mark.claim(paper=41, artefact="espcn_x3_mixed", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("espcn_x4_mixed", marks=pytest.mark.claim(paper=41, artefact="espcn_x4_mixed", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("unireplknet_ucr", marks=pytest.mark.claim(paper=13, artefact="unireplknet_ucr", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("ibnnet_digits", marks=pytest.mark.claim(paper=37, artefact="ibnnet_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("inception_v4_digits",
                 marks=pytest.mark.claim(paper=33, artefact="inception_v4_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("lsnet_digits", marks=pytest.mark.claim(paper=18, artefact="lsnet_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("pulsedl_pulses", marks=pytest.mark.claim(paper=3, artefact="pulsedl_pulses", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("rotnet_nin4_digits",
                 marks=pytest.mark.claim(paper=20, artefact="rotnet_nin4_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("rotnet_probe_digits",
                 marks=pytest.mark.claim(paper=20, artefact="rotnet_probe_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("rotnet_nin4_cifar10_paper",
                 marks=pytest.mark.claim(paper=20, artefact="rotnet_nin4_cifar10_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("rotnet_probe_cifar10_paper",
                 marks=pytest.mark.claim(paper=20, artefact="rotnet_probe_cifar10_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("simplenet_digits", marks=pytest.mark.claim(paper=32, artefact="simplenet_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("simplenet_cifar10_paper",
                 marks=pytest.mark.claim(paper=32, artefact="simplenet_cifar10_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("spartan_digits", marks=pytest.mark.claim(paper=21, artefact="spartan_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("ssd_deepforest", marks=pytest.mark.claim(paper=27, artefact="ssd_deepforest", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("ssd_scenes", marks=pytest.mark.claim(paper=27, artefact="ssd_scenes", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("unireplknet_digits",
                 marks=pytest.mark.claim(paper=13, artefact="unireplknet_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("vovnet_digits", marks=pytest.mark.claim(paper=53, artefact="vovnet_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    # Fashion-MNIST rows of docs/fashion_mnist.md (scripts/fashion_table.py)
    pytest.param("bignas_fashion", marks=pytest.mark.claim(paper=56, artefact="bignas_fashion", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("cnn_svm_fashion", marks=pytest.mark.claim(paper=40, artefact="cnn_svm_fashion", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("convnext_dcls_fashion", marks=pytest.mark.claim(paper=39, artefact="convnext_dcls_fashion", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("eca_resnet18_fashion", marks=pytest.mark.claim(paper=43, artefact="eca_resnet18_fashion", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("ela_resnet18_fashion", marks=pytest.mark.claim(paper=10, artefact="ela_resnet18_fashion", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("ibnnet_fashion", marks=pytest.mark.claim(paper=37, artefact="ibnnet_fashion", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("inception_v4_fashion", marks=pytest.mark.claim(paper=33, artefact="inception_v4_fashion", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("lsnet_fashion", marks=pytest.mark.claim(paper=18, artefact="lsnet_fashion", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("replknet_fashion", marks=pytest.mark.claim(paper=11, artefact="replknet_fashion", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("simplenet_fashion", marks=pytest.mark.claim(paper=32, artefact="simplenet_fashion", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("spartan_fashion", marks=pytest.mark.claim(paper=21, artefact="spartan_fashion", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("unireplknet_fashion", marks=pytest.mark.claim(paper=13, artefact="unireplknet_fashion", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("vovnet_fashion", marks=pytest.mark.claim(paper=53, artefact="vovnet_fashion", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    # attention, hybrid and non-Euclidean backbones (issue 10)
    pytest.param("axial_digits", marks=pytest.mark.claim(paper=46, artefact="axial_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("convit_fashion", marks=pytest.mark.claim(paper=36, artefact="convit_fashion", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("crossvit_fashion", marks=pytest.mark.claim(paper=28, artefact="crossvit_fashion", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("halonet_fashion", marks=pytest.mark.claim(paper=23, artefact="halonet_fashion", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("nasnet_a_cifar10_paper", marks=pytest.mark.claim(paper=14, artefact="nasnet_a_cifar10_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("nasnet_digits", marks=pytest.mark.claim(paper=14, artefact="nasnet_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("poincare_resnet20_cifar10_paper", marks=pytest.mark.claim(paper=54, artefact="poincare_resnet20_cifar10_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("poincare_resnet_digits", marks=pytest.mark.claim(paper=54, artefact="poincare_resnet_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("sgconv_lra_image_paper", marks=pytest.mark.claim(paper=52, artefact="sgconv_lra_image_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("sgconv_pigcvp", marks=pytest.mark.claim(paper=52, artefact="sgconv_pigcvp", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("terminator_cifar10_paper", marks=pytest.mark.claim(paper=34, artefact="terminator_cifar10_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("terminator_digits", marks=pytest.mark.claim(paper=34, artefact="terminator_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("ts_resnet_pigcvp", marks=pytest.mark.claim(paper=52, artefact="ts_resnet_pigcvp", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("volo_fashion", marks=pytest.mark.claim(paper=51, artefact="volo_fashion", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    # sequences, video, retrieval and frozen features (issue 11); SGConv's 2-D model (issue 10)
    pytest.param("multidigit_numbers", marks=pytest.mark.claim(paper=47, artefact="multidigit_numbers", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("lrcn_caption_photos", marks=pytest.mark.claim(paper=42, artefact="lrcn_caption_photos", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("lrcn_moving_digits", marks=pytest.mark.claim(paper=42, artefact="lrcn_moving_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("lrcn_single_frame_moving_digits", marks=pytest.mark.claim(paper=42, artefact="lrcn_single_frame_moving_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("p3d_moving_digits", marks=pytest.mark.claim(paper=49, artefact="p3d_moving_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("p3d_frame2d_moving_digits", marks=pytest.mark.claim(paper=49, artefact="p3d_frame2d_moving_digits", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("image_text_photos", marks=pytest.mark.claim(paper=5, artefact="image_text_photos", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("image_text_flickr_paper", marks=pytest.mark.claim(paper=5, artefact="image_text_flickr_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("espcn_x3_video", marks=pytest.mark.claim(paper=41, artefact="espcn_x3_video", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("espcn_x3_video_fusion", marks=pytest.mark.claim(paper=41, artefact="espcn_x3_video_fusion", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("sgconv_convnext_fashion", marks=pytest.mark.claim(paper=52, artefact="sgconv_convnext_fashion", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
]


@pytest.mark.parametrize("name", SMALL)
def test_small_recipe_runs_as_written(name, data_roots, tmp_path):
    check_run_as_written(name, data_roots, tmp_path)


FULL = [
    pytest.param("bignas_imagenet_paper",
                 marks=pytest.mark.claim(paper=56, artefact="bignas_imagenet_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("convnext_dcls_tiny_imagenet_paper",
                 marks=pytest.mark.claim(paper=39, artefact="convnext_dcls_tiny_imagenet_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("eca_mobilenetv2_imagenet_paper",
                 marks=pytest.mark.claim(paper=43, artefact="eca_mobilenetv2_imagenet_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("lsnet_t_distill_imagenet_paper",
                 marks=pytest.mark.claim(paper=18, artefact="lsnet_t_distill_imagenet_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("eca_resnet50_imagenet_paper",
                 marks=pytest.mark.claim(paper=43, artefact="eca_resnet50_imagenet_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("inception_v4_imagenet_paper",
                 marks=pytest.mark.claim(paper=33, artefact="inception_v4_imagenet_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("lsnet_t_imagenet_paper", marks=pytest.mark.claim(paper=18, artefact="lsnet_in1k", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("replknet_31b_imagenet_paper",
                 marks=pytest.mark.claim(paper=11, artefact="replknet_31b_in1k", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("resnet50_ibn_a_imagenet_paper",
                 marks=pytest.mark.claim(paper=37, artefact="ibnnet_in1k", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("spartan_imagenet_paper", marks=pytest.mark.claim(paper=21, artefact="spartan_in1k", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("ssd300_coco_paper", marks=pytest.mark.claim(paper=27, artefact="ssd300_coco_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("ssd300_voc_paper", marks=pytest.mark.claim(paper=27, artefact="ssd300_voc_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("unireplknet_a_imagenet_paper",
                 marks=pytest.mark.claim(paper=13, artefact="unireplknet_in1k", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("vovnet39_imagenet_paper",
                 marks=pytest.mark.claim(paper=53, artefact="vovnet39_imagenet_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("axial_transformer_imagenet32_paper", marks=pytest.mark.claim(paper=46, artefact="axial_transformer_imagenet32_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("convit_tiny_imagenet_paper", marks=pytest.mark.claim(paper=36, artefact="convit_tiny_imagenet_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("crossvit_tiny_imagenet_paper", marks=pytest.mark.claim(paper=28, artefact="crossvit_tiny_imagenet_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("halonet_h1_imagenet_paper", marks=pytest.mark.claim(paper=23, artefact="halonet_h1_imagenet_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("nasnet_a_large_imagenet_paper", marks=pytest.mark.claim(paper=14, artefact="nasnet_a_large_imagenet_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("nasnet_a_mobile_imagenet_paper", marks=pytest.mark.claim(paper=14, artefact="nasnet_a_mobile_imagenet_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("volo_d1_imagenet_paper", marks=pytest.mark.claim(paper=51, artefact="volo_d1_imagenet_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("volo_d1_384_finetune_paper", marks=pytest.mark.claim(paper=51, artefact="volo_d1_384_finetune_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    # issue 11
    pytest.param("multidigit_svhn_paper", marks=pytest.mark.claim(paper=47, artefact="multidigit_svhn_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("lrcn_caption_coco_paper", marks=pytest.mark.claim(paper=42, artefact="lrcn_caption_coco_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("lrcn_ucf101_paper", marks=pytest.mark.claim(paper=42, artefact="lrcn_ucf101_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
    pytest.param("p3d_resnet199_sports1m_paper", marks=pytest.mark.claim(paper=49, artefact="p3d_resnet199_sports1m_paper", claim="runs as written: its optimizer, groups, schedule, accumulation and augmentation take steps")),
]


@pytest.mark.slow
@pytest.mark.parametrize("name", FULL)
def test_full_size_recipe_runs_as_written(name, data_roots, tmp_path):
    check_run_as_written(name, data_roots, tmp_path)


def test_every_packaged_recipe_is_run_here():
    """A new recipe joins SMALL or FULL above, with its claim."""
    listed = [p.values[0] for p in SMALL + FULL]
    assert len(listed) == len(set(listed)) and set(listed) == set(list_recipes())
