"""Sparseness (Gini index) and complexity (entropy), as Quantus 0.6 defines them, per sample."""

from __future__ import annotations

import torch
from torch import Tensor

from bench.metrics.base import MetricContext, register_metric


def gini(maps: Tensor) -> Tensor:
    """Quantus ``Sparseness``: Gini of sort(|a| + 1e-7) over the flattened map, per sample."""
    a = maps.reshape(len(maps), -1).abs().double() + 1e-7
    a, _ = a.sort(dim=1)
    n = a.shape[1]
    i = torch.arange(1, n + 1, dtype=a.dtype, device=a.device)
    return ((2 * i - n - 1) * a).sum(dim=1) / (n * a.sum(dim=1))


def entropy(maps: Tensor) -> Tensor:
    """Quantus ``Complexity``: −Σ p ln(p + 1e-12), p = |a| / Σ|a|, per sample."""
    a = maps.reshape(len(maps), -1).abs().double()
    p = a / a.sum(dim=1, keepdim=True)
    return -(p * torch.log(p + 1e-12)).sum(dim=1)


@register_metric("sparseness", direction="higher", category="complexity",
                 description="Gini index of |map| (Quantus Sparseness; higher = sparser)")
def sparseness(ctx: MetricContext) -> Tensor:
    return gini(ctx.maps)


@register_metric("complexity", direction="lower", category="complexity",
                 description="Entropy of the |map| distribution (Quantus Complexity; lower = simpler)")
def complexity(ctx: MetricContext) -> Tensor:
    return entropy(ctx.maps)
