"""MobileFaceNet (Chen et al., 2018) and insightface's wider "mbf", with arcface_torch key names.

One class covers both: ``scale=1`` with ``blocks=(1, 4, 6, 2)`` is the paper's network (conv3x3,
depthwise conv3x3, bottlenecks t=2/4, GDConv 7x7, linear 1x1 conv to the embedding);
``scale=2`` is arcface_torch's ``get_mbf`` (channels doubled, expansion widths unchanged).
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBlock(nn.Module):
    """conv (no bias) -> BN [-> PReLU]; arcface_torch ``ConvBlock``/``LinearBlock`` keys."""

    def __init__(self, cin: int, cout: int, k: int = 1, s: int = 1, p: int = 0, groups: int = 1,
                 act: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, p, groups=groups, bias=False),
                                   nn.BatchNorm2d(cout)]
        if act:
            layers.append(nn.PReLU(cout))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DepthWise(nn.Module):
    """Inverted bottleneck: 1x1 expand to ``width`` -> depthwise 3x3 -> linear 1x1 project."""

    def __init__(self, cin: int, cout: int, width: int, stride: int, residual: bool) -> None:
        super().__init__()
        self.residual = residual
        self.layers = nn.Sequential(
            ConvBlock(cin, width),
            ConvBlock(width, width, 3, stride, 1, groups=width),
            ConvBlock(width, cout, act=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x) if self.residual else self.layers(x)


class Residual(nn.Module):
    """``n`` stride-1 residual bottlenecks of ``c`` channels."""

    def __init__(self, c: int, n: int, width: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(*[DepthWise(c, c, width, 1, True) for _ in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class GDC(nn.Module):
    """Global depthwise conv 7x7 -> flatten -> linear (no bias) -> BatchNorm1d."""

    def __init__(self, embedding_size: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            ConvBlock(512, 512, 7, groups=512, act=False),
            nn.Flatten(),
            nn.Linear(512, embedding_size, bias=False),
            nn.BatchNorm1d(embedding_size),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class MobileFaceNet(nn.Module):
    """112x112 RGB -> ``embedding_size``-d embedding (not normalized)."""

    family = "mobilefacenet"

    def __init__(self, embedding_size: int = 128, blocks: tuple[int, int, int, int] = (1, 4, 6, 2),
                 scale: int = 1) -> None:
        super().__init__()
        c1, c2 = 64 * scale, 128 * scale
        stem2 = (ConvBlock(c1, c1, 3, 1, 1, groups=64) if blocks[0] == 1
                 else Residual(c1, blocks[0], 128))
        self.layers = nn.ModuleList([
            ConvBlock(3, c1, 3, 2, 1),
            stem2,
            DepthWise(c1, c1, 128, 2, False),
            Residual(c1, blocks[1], 128),
            DepthWise(c1, c2, 256, 2, False),
            Residual(c2, blocks[2], 256),
            DepthWise(c2, c2, 512, 2, False),
            Residual(c2, blocks[3], 256),
        ])
        self.conv_sep = ConvBlock(c2, 512)
        self.features = GDC(embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.features(self.conv_sep(x))
