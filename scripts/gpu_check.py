"""The CUDA paths of every registered model, and the README's GPU bench rows, in one run on a GPU machine.

CI has no GPU, so this is a recorded check, not a test. For each registered model (up to ``--max-params``):
build it at seed 0, run the task's example input at the card's small test size on the CPU and on the GPU in
fp32 (TF32 off), and report the largest difference relative to the output's scale; then a bf16-autocast forward
and a fp32 backward on the GPU (finite?). Then ``convzoo.bench`` on the GPU for the configurations of
``--bench`` (ours against its peer in the same run). Writes JSON lines to ``--out`` and prints a summary.

    PYTHONPATH=src python scripts/gpu_check.py --out gpu.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
import traceback

import torch

BENCH = (  # model, peer, batch, size
    ("halonet_h1", "timm:halonet_h1", 64, 256),
    ("convit_tiny", "timm:convit_tiny", 128, 224),
    ("crossvit_tiny_240", "timm:crossvit_tiny_240", 128, 240),
    ("volo_d1_224", "timm:volo_d1_224", 64, 224),
    ("nasnetalarge", "timm:nasnetalarge", 32, 331),
)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def check_model(name: str, device: torch.device) -> dict:
    from convzoo.registry import create_model, get_card
    from convzoo.tasks import build_task

    card = get_card(name)
    task = build_task(card.task)
    torch.manual_seed(0)
    model = create_model(name).eval()
    g = torch.Generator().manual_seed(0)
    x = task.example_input(card, batch=2, generator=g)
    out: dict = {"model": name, "task": card.task}
    with torch.no_grad():
        ref = task.output_tensor(model(x))
        model = model.to(device)
        got = task.output_tensor(model(x.to(device)))
        out["fp32_rel_diff"] = _rel(got, ref)
        if x.is_floating_point():
            with torch.autocast(device.type, dtype=torch.bfloat16):
                bf = task.output_tensor(model(x.to(device)))
            out["bf16_finite"] = bool(torch.isfinite(bf).all())
            out["bf16_rel_diff"] = _rel(bf.float(), ref)
    model.train()
    y = task.output_tensor(model(x.to(device)))
    y.float().square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    out["grad_finite"] = all(bool(torch.isfinite(gr).all()) for gr in grads)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gpu.jsonl")
    ap.add_argument("--max-params", type=float, default=120e6)
    ap.add_argument("--budget", type=float, default=240.0, help="seconds for the model checks")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-models", action="store_true")
    ap.add_argument("--no-bench", action="store_true")
    ap.add_argument("--device", default="cuda", help="cuda (default); cpu only to try the script")
    ap.add_argument("--extra-bench", nargs="*", default=[], help="MODEL:PEER:BATCH:SIZE more bench rows")
    args = ap.parse_args(argv)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    from convzoo.bench import bench, compare_markdown, environment
    from convzoo.registry import get_card, list_models

    device = torch.device(args.device)
    t0 = time.time()
    with open(args.out, "w") as f:
        f.write(json.dumps({"environment": environment(), "gpu": torch.cuda.get_device_name() if device.type == "cuda" else "none"}) + "\n")
        bad = 0
        for name in ([] if args.skip_models else list_models()):
            if time.time() - t0 > args.budget:
                f.write(json.dumps({"model": name, "skipped": "time budget"}) + "\n")
                continue
            if (get_card(name).params or 0) > args.max_params:
                continue
            try:
                row = check_model(name, device)
                ok = row["fp32_rel_diff"] < 1e-3 and row.get("bf16_finite", True) and row["grad_finite"]
            except Exception as e:  # noqa: BLE001  (a record, not a test: keep going)
                row, ok = {"model": name, "error": f"{type(e).__name__}: {e}"[:300],
                           "where": traceback.format_exc().splitlines()[-3][:200]}, False
            row["ok"] = ok
            bad += not ok
            f.write(json.dumps(row) + "\n")
            f.flush()
            if device.type == "cuda":
                torch.cuda.empty_cache()
        print(f"model checks: {bad} not ok, {time.time() - t0:.0f} s", flush=True)
        rows = list(BENCH) + [tuple(s.split(":", 1)[0:1]) + tuple(s.split(":", 1)[1].rsplit(":", 2))
                              for s in args.extra_bench]
        for model, peer, batch, size in [] if args.no_bench else rows:
            try:
                res = bench(model, batch=int(batch), size=int(size) if str(size).isdigit() else size,
                            modes=("eager", "channels_last", "compile", "bf16"), compare=peer or None,
                            rounds=args.rounds, device=args.device)
                f.write(json.dumps({"bench": res}) + "\n")
                print(compare_markdown(res), flush=True)
            except Exception as e:  # noqa: BLE001
                print(f"bench {model}: {type(e).__name__}: {e}"[:300], flush=True)
            f.flush()
    print(f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
