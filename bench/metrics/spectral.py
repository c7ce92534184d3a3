"""Expected frequency (EF) of a saliency map's radial power spectrum, and the explanation gap.

As in the complexity–faithfulness authors' code: rank-normalise the 2-D map, take the power
spectrum |fftshift(fft2(M))|² with DC kept and no window, average it over integer radial bins
around (H//2, W//2), normalise to a distribution p over K bins and weight by f = linspace(0, 1, K).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

from bench.metrics.base import MetricContext, channel_sum, register_metric

CITATION = "Mehrpanah et al., On the Complexity-Faithfulness Trade-off of Gradient-Based Explanations (ICCV 2025)"


def average_ranks(v: Tensor) -> Tensor:
    """Row-wise 1-based average ranks of ``B×n`` values (``scipy.stats.rankdata``, 'average')."""
    s, _ = v.sort(dim=1)
    below = torch.searchsorted(s, v, side="left")
    upto = torch.searchsorted(s, v, side="right")
    return (below + upto + 1).to(v.dtype) / 2


@lru_cache(maxsize=16)
def _radial_bins(h: int, w: int, device: str) -> tuple[Tensor, int]:
    u = torch.arange(h, device=device).view(-1, 1) - h // 2
    v = torch.arange(w, device=device).view(1, -1) - w // 2
    r = torch.sqrt((u * u + v * v).double()).floor().long().flatten()
    return r, int(r.max()) + 1


def radial_spectrum(maps: Tensor) -> Tensor:
    """Normalised radial power spectrum ``p`` (``B×K``) of raw ``B×C×H×W`` maps (steps 1–3)."""
    m2 = channel_sum(maps).double()
    b, h, w = m2.shape
    ranks = average_ranks(m2.reshape(b, -1)).reshape(b, h, w) / (h * w)
    power = torch.fft.fftshift(torch.fft.fft2(ranks), dim=(-2, -1)).abs().square().reshape(b, -1)
    r, k = _radial_bins(h, w, str(maps.device))
    sums = torch.zeros(b, k, dtype=power.dtype, device=power.device).index_add_(1, r, power)
    counts = torch.bincount(r, minlength=k).to(power.dtype)
    radial = sums / counts
    return radial / radial.sum(dim=1, keepdim=True)


def expected_frequency(maps: Tensor) -> Tensor:
    """EF of each raw map in a ``B×C×H×W`` batch → ``B`` values (float64), SPEC.md steps 1–4."""
    p = radial_spectrum(maps)
    k = p.shape[1]
    f = torch.linspace(0, 1, k, dtype=p.dtype, device=p.device)
    return (p * f).sum(dim=1) / k


@register_metric("ef", direction="lower", category="complexity", citation=CITATION,
                 description="Expected frequency of the map's radial power spectrum (lower = simpler)")
def ef(ctx: MetricContext) -> Tensor:
    ctx.side["spectrum"] = radial_spectrum(ctx.maps)
    return expected_frequency(ctx.maps)


@register_metric("delta_ef", direction="lower", category="faithfulness", citation=CITATION,
                 description="Explanation gap |EF(method) − EF(grad)| on the same model and inputs")
def delta_ef(ctx: MetricContext) -> Tensor:
    return (expected_frequency(ctx.maps) - expected_frequency(ctx.reference_maps("grad"))).abs()
