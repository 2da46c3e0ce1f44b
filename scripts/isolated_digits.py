"""How well the 3,000 train digits of ``numbers`` can be read alone (a bound for recipe ``multidigit_numbers``, paper 47).

Recorded result, not asserted. Usage (2-4 CPU-minutes per call; run the two side by side on two cores):

    OMP_NUM_THREADS=1 python scripts/isolated_digits.py {affine|affine_elastic} [steps=1500]

Trains a small CNN (six 5 x 5 conv layers, width 16-32, BatchNorm, the multi-digit net's alternating max pools,
FC 256) for ``steps`` batches on the 3,000 train digits of OpenCV's digits.png (the split of
convzoo.data.opencv_digits, upsampled 20 -> 32 px), each batch under torchvision's RandomAffine (15 deg, 15 deg
shear, 10 % scale and shift) and optionally ElasticTransform (alpha 20, sigma 4); Adam 1e-3, wd 1e-4, cosine
over the steps, batch 64, seed 0. Prints the error on the 1,000 held-out test digits: the same digits the
multi-digit test numbers are made of, read one at a time with no neighbours and no photo behind them.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2 as T
from torch import nn

from convzoo.data.opencv_digits import _folder, _load, opencv_digits_split

AUGMENT = {"affine": [T.RandomAffine(degrees=15, shear=(-15, 15, 0, 0), scale=(0.9, 1.1), translate=(0.1, 0.1))]}
AUGMENT["affine_elastic"] = AUGMENT["affine"] + [T.ElasticTransform(alpha=20.0, sigma=4.0)]


def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 5, padding=2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.MaxPool2d(2, stride, padding=1)]


def main(mode: str, steps: int = 1500) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    images, labels = _load(_folder(None))
    split = opencv_digits_split()

    def part(name):  # (N, 1, 32, 32) in [0, 1], (N,)
        x = torch.from_numpy(images[split[name]]).float()[:, None] / 255.0
        return F.interpolate(x, size=32, mode="bilinear", align_corners=False), torch.from_numpy(labels[split[name]]).long()

    (xtr, ytr), (xte, yte) = part("train"), part("test")
    net = nn.Sequential(*block(1, 16, 2), *block(16, 16, 1), *block(16, 24, 2), *block(24, 24, 1), *block(24, 32, 2),
                        *block(32, 32, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 256), nn.ReLU(),
                        nn.Linear(256, 10))
    augment = T.Compose(AUGMENT[mode])
    opt = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-4)
    start = time.time()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = 1e-3 * 0.5 * (1 + np.cos(np.pi * step / steps))
        idx = torch.randint(0, len(xtr), (64,))
        x = torch.stack([augment(img) for img in xtr[idx]])  # a new draw per digit
        loss = F.cross_entropy(net(x), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        err = (net(xte).argmax(1) != yte).float().mean().item()
    print(f"{mode}: {steps} steps in {time.time() - start:.0f} s, test error on the 1,000 isolated test digits {100 * err:.2f} %")


if __name__ == "__main__":
    main(sys.argv[1], *(int(v) for v in sys.argv[2:3]))
