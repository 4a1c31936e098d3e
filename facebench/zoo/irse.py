"""IR-50/100 and IR-SE-50/100 (InsightFace_Pytorch / face.evoLVe ``Backbone``).

Same stem, stages and head as :class:`~facebench.zoo.iresnet.IResNet`; the block differs from
arcface_torch's: no BN between conv1 and PReLU, an optional squeeze-excitation (reduction 16), and
a parameter-free ``MaxPool2d(1, stride)`` shortcut whenever the channel count is unchanged.
Keys use arcface_torch-style names; :mod:`facebench.zoo.weights` maps the reference layout.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torch.nn import functional as F

from facebench.zoo.iresnet import IResNet, conv1x1_bn, conv3x3

STAGES: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3),
                                                 152: (3, 8, 36, 3)}


class SEModule(nn.Module):
    """Squeeze-excitation: avg-pool -> 1x1 conv (C/r) -> ReLU -> 1x1 conv (C) -> sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1))))
        return x * torch.sigmoid(gate)


class IRBlock(nn.Module):
    """``bottleneck_IR(_SE)``: BN-conv3x3-PReLU-conv3x3(stride)-BN [-SE], plus shortcut."""

    def __init__(self, cin: int, cout: int, stride: int, se: bool = False) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = conv3x3(cin, cout)
        self.prelu = nn.PReLU(cout)
        self.conv2 = conv3x3(cout, cout, stride)
        self.bn2 = nn.BatchNorm2d(cout)
        self.se = SEModule(cout) if se else None
        self.downsample = nn.MaxPool2d(1, stride) if cin == cout else conv1x1_bn(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.prelu(self.conv1(self.bn1(x)))))
        if self.se is not None:
            out = self.se(out)
        return out + self.downsample(x)


def ir(depth: int, embedding_size: int = 512, se: bool = False, **kw: object) -> IResNet:
    """``IR_{depth}`` or (``se=True``) ``IR_SE_{depth}``."""
    block = partial(IRBlock, se=se)
    return IResNet(STAGES[depth], embedding_size, block=block, family="ir", **kw)  # type: ignore[arg-type]
