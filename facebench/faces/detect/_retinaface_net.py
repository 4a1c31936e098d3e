"""RetinaFace network with a MobileNet-0.25 backbone (PyTorch), keyed like the shared weights.

Architecture after Deng et al., "RetinaFace" (CVPR 2020): a width-0.25 MobileNetV1 whose
stride-8/16/32 stages feed a 3-level FPN (64 channels), an SSH context module per level, and 1×1
heads with two anchors per cell for face/background logits, box offsets and five landmark offsets.

Activations are plain ReLU, as in biubug6/Face-Detector-1MB-with-landmark (the "mobilenet0.25"
model there), not the LeakyReLU(0.1) of biubug6/Pytorch_Retinaface: the shared weights' batch-norm
statistics prove it (channels that a ReLU zeroes in training have running mean and variance
exactly 0 in the next layer, impossible under LeakyReLU), and with LeakyReLU the landmarks are off
by about half an inter-ocular distance. See :mod:`._priors` for the matching anchor sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ANCHORS_PER_CELL = 2


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, act: bool = True) -> nn.Sequential:
    """Conv (no bias) → BatchNorm → optional ReLU; keys ``.0`` conv, ``.1`` BN."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _depthwise_separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    """3×3 depthwise + 1×1 pointwise, each with BN and ReLU (keys .0/.1 and .3/.4)."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, 1, 0, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class MobileNetV1x025(nn.Module):
    """Width-0.25 MobileNetV1 trunk returning stride-8, -16 and -32 features (64/128/256 ch)."""

    def __init__(self) -> None:
        super().__init__()
        dw = _depthwise_separable
        self.stage1 = nn.Sequential(
            _conv_bn(3, 8, stride=2),
            dw(8, 16, 1),
            dw(16, 32, 2),
            dw(32, 32, 1),
            dw(32, 64, 2),
            dw(64, 64, 1),
        )
        self.stage2 = nn.Sequential(dw(64, 128, 2), *(dw(128, 128, 1) for _ in range(5)))
        self.stage3 = nn.Sequential(dw(128, 256, 2), dw(256, 256, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c3 = self.stage1(x)
        c4 = self.stage2(c3)
        return c3, c4, self.stage3(c4)


class FPN(nn.Module):
    """Top-down feature pyramid: lateral 1×1 convs, nearest upsampling, 3×3 merge convs."""

    def __init__(self, in_channels: tuple[int, int, int], out: int) -> None:
        super().__init__()
        self.output1 = _conv_bn(in_channels[0], out, k=1)
        self.output2 = _conv_bn(in_channels[1], out, k=1)
        self.output3 = _conv_bn(in_channels[2], out, k=1)
        self.merge1 = _conv_bn(out, out)
        self.merge2 = _conv_bn(out, out)

    def forward(
        self, feats: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p3, p4, p5 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        p4 = self.merge2(p4 + F.interpolate(p5, size=p4.shape[-2:], mode="nearest"))
        p3 = self.merge1(p3 + F.interpolate(p4, size=p3.shape[-2:], mode="nearest"))
        return p3, p4, p5


class SSH(nn.Module):
    """Single-stage headless context module: parallel 3×3, 5×5 and 7×7 receptive fields."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv3X3 = _conv_bn(cin, cout // 2, act=False)
        self.conv5X5_1 = _conv_bn(cin, cout // 4)
        self.conv5X5_2 = _conv_bn(cout // 4, cout // 4, act=False)
        self.conv7X7_2 = _conv_bn(cout // 4, cout // 4)
        self.conv7x7_3 = _conv_bn(cout // 4, cout // 4, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mid = self.conv5X5_1(x)
        branches = (self.conv3X3(x), self.conv5X5_2(mid), self.conv7x7_3(self.conv7X7_2(mid)))
        return F.relu(torch.cat(branches, dim=1))


class _Head(nn.Module):
    """1×1 conv predicting ``per_anchor`` values for each anchor of each cell."""

    def __init__(self, cin: int, per_anchor: int) -> None:
        super().__init__()
        self.per_anchor = per_anchor
        self.conv1x1 = nn.Conv2d(cin, ANCHORS_PER_CELL * per_anchor, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, self.per_anchor)


class RetinaFaceNet(nn.Module):
    """Full network: ``(B, 3, H, W)`` mean-subtracted BGR → (box offsets, face prob, landmarks).

    Outputs are ``(B, N, 4)``, ``(B, N)`` and ``(B, N, 10)`` over the N priors of the input size.
    """

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        self.body = MobileNetV1x025()
        self.fpn = FPN((64, 128, 256), channels)
        self.ssh1 = SSH(channels, channels)
        self.ssh2 = SSH(channels, channels)
        self.ssh3 = SSH(channels, channels)
        self.ClassHead = nn.ModuleList(_Head(channels, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(_Head(channels, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(_Head(channels, 10) for _ in range(3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p3, p4, p5 = self.fpn(self.body(x))
        feats = (self.ssh1(p3), self.ssh2(p4), self.ssh3(p5))
        loc = torch.cat([h(f) for h, f in zip(self.BboxHead, feats, strict=True)], dim=1)
        logits = torch.cat([h(f) for h, f in zip(self.ClassHead, feats, strict=True)], dim=1)
        landmarks = torch.cat([h(f) for h, f in zip(self.LandmarkHead, feats, strict=True)], dim=1)
        return loc, logits.softmax(dim=-1)[..., 1], landmarks
