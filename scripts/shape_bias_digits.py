"""Shape bias of a large-kernel vs a small-kernel UniRepLKNet on cue-conflict digits (seed paper 11, Sec. 5).

Recorded result, not asserted (convzoo.analysis.shape_bias). Usage, one model per call (2 CPU-minutes each):

    OMP_NUM_THREADS=1 python scripts/shape_bias_digits.py {large|small} [size=48] [epochs=6] [seed=0]

Training images are "natural" digits in which both cues agree: the silhouette of a scikit-learn digit
(upsampled to size x size, > 0.5) filled with tiles of four other 8 x 8 digits of the same class (the
fixed train split of convzoo.data.digits, two stimuli per digit). Test stimuli conflict: the silhouette of each
held-out digit filled with tiles of held-out digits of another, random class. Both models are the same narrow
UniRepLKNet (widths 16-32-48-64, depths 1-1-2-1); "large" uses the kernel plan 3 / 13 / 13,13 / 13 (LarK blocks),
"small" uses 3 everywhere (SmaK blocks). AdamW 2e-3 one-cycle, wd 0.05, label smoothing 0.1, batch 32.
"""

import sys
import time

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from convzoo.analysis.shape_bias import cue_conflict, measure_shape_bias
from convzoo.data.digits import digits_split
from convzoo.models.unireplknet import UniRepLKNet

KERNELS = {"large": [[3], [13], [13, 13], [13]], "small": [[3], [3], [3, 3], [3]]}


def main(kind: str, size: int = 48, epochs: int = 6, seed: int = 0) -> None:
    torch.set_num_threads(1)
    d = load_digits()
    x, y = torch.tensor(d.images / 16.0, dtype=torch.float32), torch.tensor(d.target)
    split = digits_split()
    train_idx, test_idx = torch.tensor(split["train"]), torch.tensor(split["test"])
    g = torch.Generator().manual_seed(seed)

    def tiles_of(labels, pool, k=4):  # k random digits of each wanted class, from ``pool``
        return torch.stack([x[pool[y[pool] == c][torch.randint(int((y[pool] == c).sum()), (k,), generator=g)]]
                            for c in labels.tolist()])

    idx = train_idx.repeat(2)
    xtr, ytr = cue_conflict(x[idx], tiles_of(y[idx], train_idx), size), y[idx]
    mean, std = xtr.mean(), xtr.std()
    torch.manual_seed(seed)
    model = UniRepLKNet(in_chans=1, num_classes=10, dims=(16, 32, 48, 64), depths=(1, 1, 2, 1),
                        kernel_sizes=KERNELS[kind])
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    bs = 32
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=epochs * (len(xtr) // bs), pct_start=0.1)
    t0 = time.time()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr) - bs + 1, bs):
            b = perm[i:i + bs]
            loss = F.cross_entropy(model((xtr[b] - mean) / std), ytr[b], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    agree = cue_conflict(x[test_idx], tiles_of(y[test_idx], test_idx), size)
    with torch.no_grad():
        acc = float((model((agree - mean) / std).argmax(1) == y[test_idx]).float().mean())
    shape_lab = y[test_idx]
    texture_lab = (shape_lab + torch.randint(1, 10, (len(test_idx),), generator=g)) % 10
    stimuli = cue_conflict(x[test_idx], tiles_of(texture_lab, test_idx), size)
    r = measure_shape_bias(model, stimuli, shape_lab, texture_lab, transform=lambda t: (t - mean) / std)
    print(f"{kind} size {size} epochs {epochs} seed {seed}: cue-agreeing test accuracy {acc:.3f}; conflict "
          f"decisions shape {r.shape} texture {r.texture} other {r.other}; shape bias {r.value:.3f} "
          f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:]))
