"""AdaptGrad's inherent noise: the probability mass of the smoothing noise that leaves the input range.

Aᵢ = 1 − ½erf((x_max − xᵢ)/(√2σᵢ)) + ½erf((x_min − xᵢ)/(√2σᵢ)) (Zhou et al., Eq. 9–10), averaged
over the elements of each input. σ is what the method declares (``Method.input_noise``):
SmoothGrad's α·(x_max − x_min) (or its absolute σ), AdaptGrad's per-element σᵢ of Eq. 13 or of the
released code, FusionGrad's input σ α·(x_max − x_min) (not its weight σ); 0 for methods that add no
input noise (NoiseGrad's noise is on the weights).

Reference values, x uniform on [−2.12, 2.64] (the paper's Figure 3 setting): SmoothGrad α = 0.2 →
0.159577 (= α√(2/π)); AdaptGrad c = 0.95 → 0.013353 with Eq. 13's z = √2·erfinv((1+c)/2), 0.027067
with the released z = √2·erfinv(c). The paper prints 0.01424, which neither rule gives.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from bench.metrics.base import MetricContext, register_metric


def out_of_bounds_mass(x: Tensor, sigma: Tensor, x_range: tuple[Tensor, Tensor]) -> Tensor:
    """Per-element Aᵢ, broadcasting ``sigma`` to ``x``; σᵢ = 0 means no noise, so Aᵢ = [xᵢ ∉ range]."""
    lo = x_range[0].to(x.device, torch.float64).view(1, -1, 1, 1)
    hi = x_range[1].to(x.device, torch.float64).view(1, -1, 1, 1)
    x, sigma = x.double(), sigma.double().expand_as(x)
    safe = torch.where(sigma > 0, sigma, torch.ones_like(sigma)) * math.sqrt(2)
    a = 1 - 0.5 * torch.erf((hi - x) / safe) + 0.5 * torch.erf((lo - x) / safe)
    return torch.where(sigma > 0, a, ((x > hi) | (x < lo)).double())


def method_sigma(method: Any, x: Tensor, x_range: tuple[Tensor, Tensor]) -> Tensor:
    """The σ of the input noise the method declares at ``x`` (``Method.input_noise``), broadcastable
    to ``x``; 0 for a method that adds none."""
    if not callable(getattr(method, "input_noise", None)):
        raise TypeError("inherent_noise needs the job's method as a bench Method (bench.methods.create_method), "
                        f"got {type(method).__name__}")
    sigma = method.input_noise(x, x_range)
    return torch.zeros((1, 1, 1, 1), device=x.device, dtype=x.dtype) if sigma is None else sigma


@register_metric("inherent_noise", direction="lower", category="faithfulness",
                 description="Mean probability that the method's input noise leaves [x_min, x_max] (AdaptGrad Eq. 9)")
def inherent_noise(ctx: MetricContext) -> Tensor:
    a = out_of_bounds_mass(ctx.x, method_sigma(ctx.method, ctx.x, ctx.x_range), ctx.x_range)
    return a.reshape(len(a), -1).mean(dim=1)
