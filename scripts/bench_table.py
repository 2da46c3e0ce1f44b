"""The README's Performance tables, measured again on this machine by one command.

Runs ``convzoo.bench`` for the README's configurations (ours against timm's peer in every mode, the peer's
deploy re-parameterised and BN-folded as ours is; our structural re-parameterisation; ESPCN x3 at 1080p on
one thread) and prints Markdown: an environment line, then the rows. Full-size models on a CPU: about
20-40 minutes on 2 cores; take figures only from a run the table marks "trusted" (CPU time / wall >= 0.9 x
threads: nothing else was running).

    python scripts/bench_table.py                      # everything, 2 threads, 5 rounds
    python scripts/bench_table.py --only vovnet39a --rounds 3
    python scripts/bench_table.py --json bench.json    # also keep every full result
"""

from __future__ import annotations

import argparse
import json

from convzoo.bench import COMPARE_HEADER, DEPLOY_HEADER, bench, compare_markdown, deploy_markdown, environment

ALL_MODES = ("eager", "channels_last", "compile", "deploy", "deploy_compile", "bf16")
# ours vs timm: the README's rows (eca_resnet50_paper = paper 43's plain ECA-ResNet-50, see convzoo.bench)
COMPARE = (
    {"model": "eca_resnet50", "compare": "timm:eca_resnet50_paper", "batch": 16},
    {"model": "vovnet39a", "compare": "timm:vovnet39a", "batch": 8},
    {"model": "ese_vovnet19b_dw", "compare": "timm:ese_vovnet19b_dw", "batch": 8},
    {"model": "inception_v4", "compare": "timm:inception_v4", "batch": 8, "size": 299},
    # attention / hybrid backbones (issue 10): where timm reaches 21-49% of the machine's peak
    {"model": "halonet_h1", "compare": "timm:halonet_h1", "batch": 8, "size": 256},
    {"model": "convit_tiny", "compare": "timm:convit_tiny", "batch": 16, "size": 224},
    {"model": "crossvit_tiny_240", "compare": "timm:crossvit_tiny_240", "batch": 16, "size": 240},
    {"model": "volo_d1_224", "compare": "timm:volo_d1_224", "batch": 8, "size": 224},
    {"model": "nasnetalarge", "compare": "timm:nasnetalarge", "batch": 4, "size": 331},
)
DEPLOY = (  # structural re-parameterisation, ours only
    {"model": "unireplknet_a", "batch": 8, "size": 224},
    {"model": "lsnet_t", "batch": 8, "size": 224},
)
ESPCN = {"model": "espcn_x3", "batch": 1, "size": "1920x1080", "threads": 1}
# sequences and video (issue 11): P3D-A against torchvision's R(2+1)D-18 (a relative, not the same network: the
# ratio is speed per clip of two video nets), and our multi-digit and LRCN nets alone, in every mode that applies
VIDEO_COMPARE = ({"model": "p3d_a_resnet50", "compare": "torchvision:r2plus1d_18", "batch": 2, "size": "16x112x112"},)
SPEED = (
    {"model": "multidigit_net", "batch": 32, "size": 54},
    {"model": "lrcn_activity", "batch": 2, "size": "16x227x227"},
    {"model": "espcn_x3_fusion3", "batch": 1, "size": "1080x1920"},
)
SPEED_MODES = ("eager", "channels_last", "compile", "bf16")
SPEED_HEADER = ("| model, setup | " + " | ".join(f"{m} items/s (batch-1 ms)" for m in SPEED_MODES)
                + " |\n|---|" + "---|" * len(SPEED_MODES))


def speed_markdown(res: dict) -> str:
    """One row: throughput and batch-1 latency per mode (frames/s = clips/s x frames per clip for video)."""
    size = "x".join(map(str, res["input_shape"][1:]))
    cells = []
    for m in SPEED_MODES:
        r = res["modes"].get(m, {})
        cells.append("skipped" if "skipped" in r or not r else f"{r['throughput']:.3g} ({r['latency_ms']:.3g})")
    trust = "trusted" if res["trust"]["ok"] else "not trusted"
    fpc = f", {res['frames_per_clip']} frames per clip" if res.get("frames_per_clip") else ""
    return f"| {res['model']}, batch {res['batch']}, {size}{fpc}, {res['threads']} threads, {trust} | " + " | ".join(cells) + " |"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", metavar="MODEL", help="only these models")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", metavar="FILE", help="write every full bench result here")
    args = ap.parse_args(argv)

    def wanted(cfg):
        return not args.only or cfg["model"] in args.only

    print(environment(), "\n", sep="")
    kept = []
    rows = []
    for cfg in filter(wanted, COMPARE):
        res = bench(**{"threads": args.threads, **cfg}, modes=ALL_MODES, rounds=args.rounds)
        kept.append(res)
        rows.append(compare_markdown(res))
        print(rows[-1], flush=True)
    if rows:
        print("\n" + COMPARE_HEADER + "\n" + "\n".join(rows) + "\n")
    rows = []
    for cfg in filter(wanted, DEPLOY):
        res = bench(**{"threads": args.threads, **cfg}, modes=("eager", "deploy"), rounds=args.rounds)
        kept.append(res)
        rows.append(deploy_markdown(res))
    if rows:
        print(DEPLOY_HEADER + "\n" + "\n".join(rows) + "\n")
    rows = []
    for cfg in filter(wanted, VIDEO_COMPARE):
        res = bench(**{"threads": args.threads, **cfg}, modes=("eager", "channels_last", "bf16"), rounds=args.rounds)
        kept.append(res)
        rows.append(compare_markdown(res))
    if rows:
        print(COMPARE_HEADER + "\n" + "\n".join(rows) + "\n")
    rows = []
    for cfg in filter(wanted, SPEED):
        res = bench(**{"threads": args.threads, **cfg}, modes=SPEED_MODES, rounds=args.rounds)
        kept.append(res)
        rows.append(speed_markdown(res))
        print(rows[-1], flush=True)
    if rows:
        print("\n" + SPEED_HEADER + "\n" + "\n".join(rows) + "\n")
    if wanted(ESPCN):
        res = bench(**ESPCN, modes=("eager",), rounds=args.rounds)
        kept.append(res)
        print(f"ESPCN x3: a {'x'.join(map(str, res['input_shape'][1:]))} Y frame to "
              f"{'x'.join(map(str, res['output_size']))} in {res['modes']['eager']['latency_ms']:.3g} ms on "
              f"{res['threads']} CPU thread ({'trusted' if res['trust']['ok'] else 'not trusted'}; "
              f"`convzoo bench espcn_x3 --size 1920x1080 --threads 1`)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(kept, f, indent=1)


if __name__ == "__main__":
    main()
