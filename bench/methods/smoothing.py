"""Gaussian smoothing of any base method: SmoothGrad and AdaptGrad.

All N noise samples of a chunk go through the base method as one batch of ``k·B`` rows; noise is
drawn one sample at a time from the job's generator, so the result equals the Python loop
``mean_i base(x + ε_i)`` with the same generator, whatever the chunk size. A stochastic base
(NoiseGrad: S-NG, A-NG) draws from the same generator, so it gets one noise sample per call: the
loop's draw order ε₁, base draws, ε₂, … is kept and the base batches its own samples.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor

from bench.methods.base import Method, base_noise, base_of, register_method, resolve_base
from bench.methods.params import NonNegative, OpenUnit, PositiveInt

Rule = Literal["eq13", "released"]


def smoothgrad_sigma(x: Tensor, x_range: tuple[Tensor, Tensor], alpha: float | None,
                     sigma: float | None) -> Tensor:
    """σ = α·(x_max − x_min) per channel, or an absolute σ; broadcastable to ``x``."""
    if sigma is not None:
        return torch.full((1, 1, 1, 1), float(sigma), device=x.device, dtype=x.dtype)
    return (alpha * (x_range[1] - x_range[0])).view(1, -1, 1, 1)


def adaptgrad_z(c: float, rule: str) -> float:
    """Eq. 13: z = √2·erfinv((1+c)/2); the released code: z = √2·erfinv(c)."""
    if not 0 < c < 1:
        raise ValueError(f"adaptgrad: confidence level c must be in (0, 1), got {c}")
    p = {"eq13": (1 + c) / 2, "released": c}.get(rule)
    if p is None:
        raise ValueError(f"adaptgrad: rule must be 'eq13' or 'released', got '{rule}'")
    return math.sqrt(2) * torch.special.erfinv(torch.tensor(p, dtype=torch.float64)).item()


def adaptgrad_sigma(x: Tensor, x_range: tuple[Tensor, Tensor], c: float, rule: str = "eq13") -> Tensor:
    """Per-element σᵢ = min(|xᵢ − x_min|, |xᵢ − x_max|) / z."""
    lo, hi = x_range[0].view(1, -1, 1, 1), x_range[1].view(1, -1, 1, 1)
    return torch.minimum((x - lo).abs(), (x - hi).abs()) / adaptgrad_z(c, rule)


def smooth(base: Method, model, x: Tensor, target: Tensor, sigma: Tensor, n: int, x_range, generator,
           chunk_size: int) -> Tensor:
    """mean_{i=1..n} base(x + σ ⊙ ε_i), ε_i ~ N(0, I), k noise samples per batch."""
    total = torch.zeros_like(x)
    per_chunk = 1 if base.stochastic else max(1, chunk_size // len(x))
    for s in range(0, n, per_chunk):
        k = min(per_chunk, n - s)
        eps = torch.stack([torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                           for _ in range(k)])
        noisy = (x + sigma * eps).reshape(-1, *x.shape[1:])
        maps = base(model, noisy, target.repeat(k), x_range=x_range, generator=generator,
                    chunk_size=chunk_size)
        total += maps.view(k, *x.shape).sum(0)
    return total / n


def smoothgrad_noise(x: Tensor, x_range: tuple[Tensor, Tensor], *, alpha: float, sigma: float | None,
                     base: str | Method, base_params: dict[str, Any] | None) -> Tensor | None:
    """SmoothGrad's input σ (α·range or the absolute σ), with its base's if that adds noise too."""
    return base_noise(smoothgrad_sigma(x, x_range, alpha, sigma), base, base_params, x, x_range)


def adaptgrad_noise(x: Tensor, x_range: tuple[Tensor, Tensor], *, c: float, rule: str, base: str | Method,
                    base_params: dict[str, Any] | None) -> Tensor | None:
    """AdaptGrad's σᵢ of its rule (the released rule's clean (N+1)-th term is not counted), with its
    base's if that adds noise too."""
    return base_noise(adaptgrad_sigma(x, x_range, c, rule), base, base_params, x, x_range)


@register_method("smoothgrad", defaults={"n": 50, "alpha": 0.15, "base": "grad"}, stochastic=True,
                 input_noise=smoothgrad_noise, unsmoothed=base_of)
def smoothgrad(model, x: Tensor, target: Tensor, *, x_range, generator, chunk_size, n: PositiveInt = 50,
               alpha: NonNegative = 0.15, sigma: NonNegative | None = None, base: str | Method = "grad",
               base_params: dict[str, Any] | None = None) -> Tensor:
    """SmoothGrad: mean of the base map over N Gaussian perturbations, σ = α·(x_max−x_min)."""
    s = smoothgrad_sigma(x, x_range, alpha, sigma)
    return smooth(resolve_base(base, base_params), model, x, target, s, n, x_range, generator,
                  chunk_size)


@register_method("adaptgrad", defaults={"n": 50, "c": 0.95, "rule": "eq13", "base": "grad"}, stochastic=True,
                 input_noise=adaptgrad_noise, unsmoothed=base_of)
def adaptgrad(model, x: Tensor, target: Tensor, *, x_range, generator, chunk_size, n: PositiveInt = 50,
              c: OpenUnit = 0.95, rule: Rule = "eq13", base: str | Method = "grad",
              base_params: dict[str, Any] | None = None) -> Tensor:
    """AdaptGrad: per-pixel σ from confidence level c, so noise rarely leaves [x_min, x_max]."""
    b = resolve_base(base, base_params)
    sigma = adaptgrad_sigma(x, x_range, c, rule)
    smoothed = smooth(b, model, x, target, sigma, n, x_range, generator, chunk_size)
    if rule == "released":  # the released code averages the clean map in: N+1 terms
        clean = b(model, x, target, x_range=x_range, generator=generator, chunk_size=chunk_size)
        return (smoothed * n + clean) / (n + 1)
    return smoothed
