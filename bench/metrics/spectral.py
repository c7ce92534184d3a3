"""Expected frequency (EF) of a saliency map's radial power spectrum, and the explanation gap.

As in the complexity–faithfulness authors' code: rank-normalise the 2-D map, take the power
spectrum |fftshift(fft2(M))|² with DC kept and no window, average it over integer radial bins
around (H//2, W//2), normalise to a distribution p over K bins and weight by f = linspace(0, 1, K).
"""

from __future__ import annotations

from functools import lru_cache

import pyarrow as pa
import torch
from torch import Tensor

from bench.metrics.base import MetricContext, SideTable, channel_sum, register_metric

# The job's mean radial power spectrum, for the board's spectrum plots (results/<suite>/_spectra/).
SPECTRA = SideTable("spectra", pa.schema([("job_id", pa.string()), ("bin", pa.int64()),
                                          ("frequency", pa.float64()), ("power", pa.float64())]))


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


def _spectrum(ctx: MetricContext) -> Tensor:
    """The batch's radial spectra ``B×K``, computed once per job (EF and the tail slope share them)."""
    p = ctx.cache.get("spectrum")
    if p is None or p.shape[0] != len(ctx.maps):
        p = ctx.cache["spectrum"] = radial_spectrum(ctx.maps)
    return p


@register_metric("ef", direction="lower", category="complexity", side_tables=(SPECTRA,),
                 description="Expected frequency of the map's radial power spectrum (lower = simpler)")
def ef(ctx: MetricContext) -> Tensor:
    p = _spectrum(ctx).mean(0).cpu()
    ctx.emit(SPECTRA.name, {"bin": range(len(p)),
                            "frequency": torch.linspace(0, 1, len(p), dtype=torch.float64).numpy(),
                            "power": p.numpy()})
    return expected_frequency(ctx.maps)


@register_metric("delta_ef", direction="lower", category="faithfulness", aggregate="abs_mean",
                 description="Explanation gap |mean EF(method) − mean EF(grad)| on the same model and inputs")
def delta_ef(ctx: MetricContext) -> Tensor:
    """The signed per-image differences EF(M(x)) − EF(∇f(x)); the job value is |their mean| (the
    declared ``abs_mean``): the difference of the mean EFs, as the authors' tables take it
    (``interactive/plots.py:pivot_expliners``). The mean of per-image |differences| would be biased
    upward by per-image noise; the CI resamples the signed differences and takes |mean| of each."""
    return expected_frequency(ctx.maps) - expected_frequency(ctx.reference_maps("grad"))


def tail_slope(p: Tensor, full_bins: int | None = None) -> Tensor:
    """Least-squares slope of log pₖ against log k over the upper half of the full radial bins.

    The fit takes bins k = ⌊R/2⌋ … R−1 with R = ``full_bins``: the annuli that lie wholly inside the
    map's frequency square (R = min(H, W) // 2; default: every bin). The corner bins beyond hold a few
    frequencies each, whose power can be exactly 0 for a rank image (an alternating sum of integer
    ranks), which made the slope swing with float rounding; full annuli of a 32×32 map hold ≥ 50. The
    slope does not depend on the frequency unit. A sample with no power in a fitted bin (a constant
    map) has no slope: NaN, which the metric declares as an exclusion.
    """
    r = p.shape[1] if full_bins is None else min(full_bins, p.shape[1])
    if r < 4:
        raise ValueError(f"spectrum_tail_slope needs at least 4 full radial bins (maps of 8×8 or more), got {r}")
    tail = p[:, r // 2 : r]
    lf = torch.log(torch.arange(r // 2, r, dtype=p.dtype, device=p.device))
    lp = torch.log(tail.clamp_min(torch.finfo(p.dtype).tiny))
    lf_c = lf - lf.mean()
    slope = ((lp - lp.mean(dim=1, keepdim=True)) * lf_c).sum(dim=1) / lf_c.square().sum()
    return torch.where((tail > 0).all(dim=1), slope, torch.full_like(slope, float("nan")))


@register_metric("spectrum_tail_slope", direction="lower", category="complexity", excludes=True,
                 description="Log-log slope of the radial power spectrum's upper half (more negative = smoother)")
def spectrum_tail_slope(ctx: MetricContext) -> Tensor:
    """Decay rate of the map's high frequencies: ``tail_slope(radial_spectrum(maps), min(H, W) // 2)``.

    With p the normalised radial spectrum of EF, the per-sample least-squares slope of log pₖ on
    log k over the upper half of the annuli wholly inside the frequency square. The zero-frequency
    bin is never in the fit.
    """
    return tail_slope(_spectrum(ctx), min(ctx.maps.shape[-2:]) // 2)
