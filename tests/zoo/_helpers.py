"""Zoo test helpers: deterministic, non-trivial weights and inputs."""

from __future__ import annotations

import torch
from torch import nn


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Fill every float parameter and buffer with seeded values (BN stats included); eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif name.endswith(("running_mean", "bias")):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
            elif t.dim() <= 1:  # BN scale, PReLU slope
                t.copy_(torch.rand(t.shape, generator=gen) * 0.5 + 0.75)
            else:  # conv / linear weights, fan-in scaled
                t.copy_(torch.randn(t.shape, generator=gen) / t[0].numel() ** 0.5)
    return model.eval()


def face_batch(n: int = 2, seed: int = 1) -> torch.Tensor:
    """Preprocessed-range input, ``(n, 3, 112, 112)`` in [-1, 1]."""
    return torch.rand(n, 3, 112, 112, generator=torch.Generator().manual_seed(seed)) * 2 - 1
