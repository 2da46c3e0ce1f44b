"""Export: ONNX (checked with onnxruntime) and torch.export programs, with what a deployment needs to know.

``export_onnx`` traces the model in eval mode with a dynamic batch axis, stores ``metadata`` (class names,
mean/std, input size, model name, convzoo version: :func:`export_metadata`) as the ONNX model's
``metadata_props`` (onnxruntime reads them back as ``session.get_modelmeta().custom_metadata_map``), then,
with ``check``, runs onnxruntime on the example input and reports the largest absolute difference from
PyTorch. ``export_program`` saves a ``torch.export`` program (``.pt2``) with the same metadata as the extra
file ``convzoo.json``. Both write through a temporary file: a failed export leaves no file behind.

:func:`export_path` decides where a file goes: into a folder (the run folder by default) under the name
``<model>[-<run>].onnx`` / ``.pt2``, or to an explicit file path; never over an existing file unless forced.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from convzoo.errors import ConvzooError

SUFFIX = {"onnx": ".onnx", "torch-export": ".pt2"}
PROGRAM_METADATA = "convzoo.json"  # the extra file of a .pt2 program holding export_metadata()


def export_metadata(card, info=None, input_size=None, **more) -> dict[str, str]:
    """String key/values for a deployment: model, convzoo version, task, input size (C, H, W), mean/std and
    class names (from the run's data facts when given, else the card's preprocessing), and ``more``.

    Lists are JSON text; mean/std are left out when the data are not normalised (e.g. super-resolution)."""
    import convzoo

    chans = info.in_chans if info is not None else card.in_chans
    size = tuple(input_size or (info.input_size if info is not None and info.input_size else card.input_size))
    meta = {"model": card.name, "convzoo_version": convzoo.__version__, "task": card.task,
            "input_size": json.dumps([chans, *size])}
    extra = info.extra if info is not None else {}
    if info is None:
        meta |= {"mean": json.dumps(list(card.mean)), "std": json.dumps(list(card.std))}
    elif "mean" in extra and "std" in extra:
        meta |= {"mean": json.dumps(list(extra["mean"])), "std": json.dumps(list(extra["std"]))}
    if info is not None and info.class_names:
        meta["class_names"] = json.dumps(list(info.class_names))
    meta |= {k: v if isinstance(v, str) else json.dumps(v) for k, v in more.items() if v is not None}
    return meta


def export_path(out, *, fmt: str, tag: str, default_dir, force: bool = False) -> Path:
    """Where an export goes: ``out`` ending in .onnx/.pt2 is the file; any other ``out`` is a folder (created);
    without ``out``, ``default_dir``. Files in a folder are named ``<tag>.onnx`` / ``<tag>.pt2``. An existing
    file is a one-line error unless ``force``."""
    suffix = SUFFIX[fmt]
    if out is not None and Path(out).suffix.lower() in SUFFIX.values():
        path = Path(out).expanduser()
        if path.suffix.lower() != suffix:
            raise ConvzooError(f"--out {out} does not match --format {fmt}, which writes {suffix} files")
        if path.is_dir():
            raise ConvzooError(f"--out {out} is a folder; name a new file or another folder")
    else:
        folder = Path(out if out is not None else default_dir).expanduser()
        if folder.exists() and not folder.is_dir():
            raise ConvzooError(f"--out {folder} is a file, not a folder; name a folder or a {suffix} file")
        path = folder / f"{tag}{suffix}"
    if path.exists() and not force:
        raise ConvzooError(f"{path} exists; pass --force to overwrite it")
    return path


def _temporary(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")  # keeps the suffix torch checks


def export_onnx(model: nn.Module, example: torch.Tensor, path, *, check: bool = True, opset: int = 17,
                metadata: dict[str, str] | None = None) -> dict:
    import onnx

    path = Path(path)
    tmp = _temporary(path)
    model = model.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(tmp), input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=opset,
                              dynamo=False)
        if metadata:
            proto = onnx.load(str(tmp))
            onnx.helper.set_model_props(proto, {str(k): str(v) for k, v in metadata.items()})
            onnx.save(proto, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    report = {"path": str(path), "bytes": path.stat().st_size, "opset": opset}
    if check:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (out,) = sess.run(None, {"input": example.numpy()})
        with torch.no_grad():
            ref = model(example).numpy()
        report["max_abs_diff"] = float(abs(out - ref).max())
    return report


def read_onnx_metadata(path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, as onnxruntime reads them."""
    import onnxruntime as ort

    return dict(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                .get_modelmeta().custom_metadata_map)


def export_program(model: nn.Module, example: torch.Tensor, path, *, check: bool = True,
                   metadata: dict[str, str] | None = None) -> dict:
    """torch.export an ExportedProgram to ``path`` (.pt2) and, with ``check``, compare outputs."""
    path = Path(path)
    model = model.eval()
    try:
        program = torch.export.export(model, (example,))
    except Exception as e:  # noqa: BLE001 - torch.export raises many types; one line for people
        raise ConvzooError(f"torch.export failed for this model: {str(e).splitlines()[0]}") from None
    tmp = _temporary(path)
    try:
        torch.export.save(program, str(tmp), extra_files={PROGRAM_METADATA: json.dumps(metadata or {})})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    report = {"path": str(path), "bytes": path.stat().st_size}
    if check:
        loaded = torch.export.load(str(path))
        with torch.no_grad():
            report["max_abs_diff"] = float((loaded.module()(example) - model(example)).abs().max())
    return report
