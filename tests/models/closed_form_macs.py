"""Closed-form MACs of ResNet and MobileNetV2, written from the papers' layer tables (test helper).

Used as the EXPECTED side of the MAC tests of the attention papers built on these networks (paper 43
ECA-Net, paper 10 ELA): the conv and fully connected multiply-accumulates of the plain network at a
square input, summed layer by layer, plus the caller's attention layers. Nothing here imports convzoo.

- ResNet (He et al. 2016, arXiv 1512.03385, Table 1) in torchvision's layout: 7x7/2 stem conv, 3x3/2
  max-pool, stride on the first block of stages 2-4 (on the 3x3 conv of the bottleneck, "v1.5"),
  1x1 conv projection shortcut where the shape changes, global pool, FC.
- MobileNetV2 (Sandler et al. 2018, arXiv 1801.04381, Table 2): 3x3/2 stem conv to 32, the
  inverted-residual table (t, c, n, s), 1x1 conv to 1280, global pool, FC.

A conv with k x k kernel, ``cin / groups`` inputs per output and an (h, w) output costs
``cout * h * w * k * k * cin / groups`` MACs; the FC ``cin * cout``. Norms, activations, pooling and
elementwise products are not multiply-accumulates of a layer and are not counted (as torchvision's
published GFLOPS and ``torch.utils.flop_counter`` do not count them).
"""

from __future__ import annotations


def conv_macs(cin: int, cout: int, k: int, h: int, w: int, groups: int = 1) -> int:
    return cout * h * w * k * k * cin // groups


def resnet(block: str, layers, size: int = 224, num_classes: int = 1000):
    """(total MACs, blocks) with one record per residual block: stage, index, ``planes`` (the 3x3 width),
    ``out`` (the block's output channels) and the block's output (h, w)."""
    h = (size + 1) // 2  # 7x7/2 stem conv
    total = conv_macs(3, 64, 7, h, h)
    h = (h + 1) // 2  # 3x3/2 max-pool
    expansion = 1 if block == "basic" else 4
    cin, blocks = 64, []
    for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            h_out, out = (h + 1) // 2 if stride == 2 else h, planes * expansion
            if block == "basic":
                total += conv_macs(cin, planes, 3, h_out, h_out) + conv_macs(planes, planes, 3, h_out, h_out)
            else:
                total += (conv_macs(cin, planes, 1, h, h) + conv_macs(planes, planes, 3, h_out, h_out)
                          + conv_macs(planes, out, 1, h_out, h_out))
            if stride != 1 or cin != out:
                total += conv_macs(cin, out, 1, h_out, h_out)  # projection shortcut
            blocks.append({"stage": stage, "index": i, "planes": planes, "out": out, "h": h_out, "w": h_out})
            cin, h = out, h_out
    return total + cin * num_classes, blocks


MOBILENETV2_TABLE = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                     (6, 160, 3, 2), (6, 320, 1, 1))  # t, c, n, s of Sandler et al. Table 2


def mobilenetv2(size: int = 224, num_classes: int = 1000):
    """(total MACs, blocks) with one record per inverted-residual block: ``hidden`` (the expanded width,
    t * cin), ``out`` channels and the block's output (h, w)."""
    h = (size + 1) // 2
    total, cin, blocks = conv_macs(3, 32, 3, h, h), 32, []
    for t, c, n, s in MOBILENETV2_TABLE:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden, h_out = cin * t, (h + 1) // 2 if stride == 2 else h
            if t != 1:
                total += conv_macs(cin, hidden, 1, h, h)  # 1x1 expansion
            total += conv_macs(hidden, hidden, 3, h_out, h_out, groups=hidden)  # 3x3 depth-wise
            total += conv_macs(hidden, c, 1, h_out, h_out)  # 1x1 linear projection
            blocks.append({"hidden": hidden, "out": c, "h": h_out, "w": h_out})
            cin, h = c, h_out
    total += conv_macs(cin, 1280, 1, h, h)
    return total + 1280 * num_classes, blocks
