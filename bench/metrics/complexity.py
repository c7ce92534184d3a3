"""Sparseness (Gini index) and complexity (entropy), as Quantus 0.6 defines them, per sample."""

from __future__ import annotations

import torch
from torch import Tensor

from bench.metrics.base import MetricContext, channel_sum, register_metric


def gini(maps: Tensor, normalise: bool = True) -> Tensor:
    """Quantus ``Sparseness``: Gini of sort(|a| + 1e-7) over the flattened map, per sample.

    ``normalise``: divide each map by its max |value| first (Quantus' default ``normalise_by_max``,
    per sample; an all-zero map is left as is). Without it the +1e-7 makes the value depend on the
    map's scale."""
    a = maps.reshape(len(maps), -1).abs().double()
    if normalise:
        top = a.amax(dim=1, keepdim=True)
        a = a / torch.where(top > 0, top, torch.ones_like(top))
    a, _ = (a + 1e-7).sort(dim=1)
    n = a.shape[1]
    i = torch.arange(1, n + 1, dtype=a.dtype, device=a.device)
    return ((2 * i - n - 1) * a).sum(dim=1) / (n * a.sum(dim=1))


def entropy(maps: Tensor) -> Tensor:
    """Quantus ``Complexity``: −Σ p ln(p + 1e-12), p = |a| / Σ|a|, per sample."""
    a = maps.reshape(len(maps), -1).abs().double()
    p = a / a.sum(dim=1, keepdim=True)
    return -(p * torch.log(p + 1e-12)).sum(dim=1)


@register_metric("sparseness", direction="higher", category="complexity",
                 description="Gini index of |map| / max|map| (Quantus Sparseness at its defaults; higher = sparser)")
def sparseness(ctx: MetricContext) -> Tensor:
    return gini(ctx.maps)


@register_metric("sparseness_2d", direction="higher", category="complexity",
                 description="Gini index of |channel-sum map|, unnormalised (AdaptGrad's released Sparseness)")
def sparseness_2d(ctx: MetricContext) -> Tensor:
    """AdaptGrad's Sparseness exactly as released (``metrics/sparseness.py:gini`` on the saved signed
    channel sum): Gini of |Σ_c a| + 1e-7, **not** normalised by the max. SPEC.md says "normalised";
    the release is the tie-breaker for a metric that carries the paper's name, so this follows it.
    The +1e-7 therefore makes the value depend on the map's scale (tiny maps read less sparse):
    ``sparseness`` is the scale-free variant."""
    return gini(channel_sum(ctx.maps), normalise=False)


@register_metric("complexity", direction="lower", category="complexity",
                 description="Entropy of the |map| distribution (Quantus Complexity; lower = simpler)")
def complexity(ctx: MetricContext) -> Tensor:
    return entropy(ctx.maps)
