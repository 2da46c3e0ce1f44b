"""Export: ONNX (checked with onnxruntime) and torch.export programs.

``export_onnx`` traces the model in eval mode with a dynamic batch axis, then, with ``check``,
runs onnxruntime on the example input and reports the largest absolute difference from PyTorch.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn as nn

from convzoo.errors import ConvzooError


def export_onnx(model: nn.Module, example: torch.Tensor, path, *, check: bool = True, opset: int = 17) -> dict:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=opset,
                          dynamo=False)
    report = {"path": str(path), "bytes": path.stat().st_size, "opset": opset}
    if check:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (out,) = sess.run(None, {"input": example.numpy()})
        with torch.no_grad():
            ref = model(example).numpy()
        report["max_abs_diff"] = float(abs(out - ref).max())
    return report


def export_program(model: nn.Module, example: torch.Tensor, path, *, check: bool = True) -> dict:
    """torch.export an ExportedProgram to ``path`` (.pt2) and, with ``check``, compare outputs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    try:
        program = torch.export.export(model, (example,))
    except Exception as e:  # torch.export raises many types; one line for people
        raise ConvzooError(f"torch.export failed for this model: {str(e).splitlines()[0]}") from None
    torch.export.save(program, str(path))
    report = {"path": str(path), "bytes": path.stat().st_size}
    if check:
        loaded = torch.export.load(str(path))
        with torch.no_grad():
            report["max_abs_diff"] = float((loaded.module()(example) - model(example)).abs().max())
    return report
