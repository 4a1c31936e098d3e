"""IResNet-18/34/50/100/200 in insightface arcface_torch's layout and key names.

The stem (conv3x3-BN-PReLU at 112x112), the four stride-2 stages and the "E" head
(BN2d -> dropout -> flatten -> FC 512*7*7 -> BN1d) are shared with the IR/IR-SE family
(:mod:`facebench.zoo.irse`), which plugs a different residual block into :class:`IResNet`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

STAGES: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 200: (6, 26, 60, 6),
}
WIDTHS = (64, 128, 256, 512)


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


def conv1x1_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class IBasicBlock(nn.Module):
    """BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN, plus identity or conv1x1-BN."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = conv3x3(cin, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.prelu = nn.PReLU(cout)
        self.conv2 = conv3x3(cout, cout, stride)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = conv1x1_bn(cin, cout, stride) if stride != 1 or cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    """112x112 RGB -> ``embedding_size``-d embedding (not normalized)."""

    def __init__(self, layers: tuple[int, ...], embedding_size: int = 512, dropout: float = 0.0,
                 block: Callable[[int, int, int], nn.Module] = IBasicBlock,
                 family: str = "iresnet") -> None:
        super().__init__()
        self.family = family
        self.stage_sizes = tuple(layers)
        self.conv1 = conv3x3(3, 64)
        self.bn1 = nn.BatchNorm2d(64)
        self.prelu = nn.PReLU(64)
        cin = 64
        for i, (n, width) in enumerate(zip(layers, WIDTHS, strict=True), start=1):
            blocks = [block(cin if j == 0 else width, width, 2 if j == 0 else 1) for j in range(n)]
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
            cin = width
        self.bn2 = nn.BatchNorm2d(512)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(512 * 7 * 7, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


def iresnet(depth: int, embedding_size: int = 512, **kw: object) -> IResNet:
    """arcface_torch ``iresnet{depth}``."""
    return IResNet(STAGES[depth], embedding_size, **kw)  # type: ignore[arg-type]
