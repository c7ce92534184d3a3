"""AdaptGrad's inherent noise: the probability mass of the smoothing noise that leaves the input range.

Aᵢ = 1 − ½erf((x_max − xᵢ)/(√2σᵢ)) + ½erf((x_min − xᵢ)/(√2σᵢ)) (Zhou et al., Eq. 9–10), averaged
over the elements of each input. σ is the method's own: SmoothGrad's α·(x_max − x_min) (or its
absolute σ), AdaptGrad's per-element σᵢ of Eq. 13 or of the released code; 0 for methods that add
no input noise.

Reference values, x uniform on [−2.12, 2.64] (the paper's Figure 3 setting): SmoothGrad α = 0.2 →
0.159577 (= α√(2/π)); AdaptGrad c = 0.95 → 0.013353 with Eq. 13's z = √2·erfinv((1+c)/2), 0.027067
with the released z = √2·erfinv(c). The paper prints 0.01424, which neither rule gives.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import Tensor

from bench.methods.smoothing import adaptgrad_sigma, smoothgrad_sigma
from bench.metrics.base import MetricContext, register_metric


def out_of_bounds_mass(x: Tensor, sigma: Tensor, x_range: tuple[Tensor, Tensor]) -> Tensor:
    """Per-element Aᵢ, broadcasting ``sigma`` to ``x``; σᵢ = 0 means no noise, so Aᵢ = [xᵢ ∉ range]."""
    lo = x_range[0].to(x.device, torch.float64).view(1, -1, 1, 1)
    hi = x_range[1].to(x.device, torch.float64).view(1, -1, 1, 1)
    x, sigma = x.double(), sigma.double().expand_as(x)
    safe = torch.where(sigma > 0, sigma, torch.ones_like(sigma)) * math.sqrt(2)
    a = 1 - 0.5 * torch.erf((hi - x) / safe) + 0.5 * torch.erf((lo - x) / safe)
    return torch.where(sigma > 0, a, ((x > hi) | (x < lo)).double())


def _params(method: Any) -> dict[str, Any]:
    """The method's bound parameters over its function's defaults."""
    sig = inspect.signature(method.fn)
    defaults = {n: p.default for n, p in sig.parameters.items() if p.default is not inspect.Parameter.empty}
    return {**defaults, **method.params}


def method_sigma(method: Any, x: Tensor, x_range: tuple[Tensor, Tensor]) -> Tensor:
    """The input-noise σ a method uses at ``x`` (broadcastable to ``x``); 0 for noise-free methods."""
    if not hasattr(method, "fn") or not hasattr(method, "params"):
        raise TypeError("inherent_noise needs the job's method as a bench Method (bench.methods.create_method), "
                        f"got {type(method).__name__}")
    p = _params(method)
    lo, hi = x_range[0].to(x.device, x.dtype), x_range[1].to(x.device, x.dtype)
    if method.name == "adaptgrad":
        return adaptgrad_sigma(x, (lo, hi), p["c"], p.get("rule", "eq13"))
    if "alpha" in p or "sigma" in p:  # SmoothGrad and methods built on its σ rule (FusionGrad's input noise)
        return smoothgrad_sigma(x, (lo, hi), p.get("alpha"), p.get("sigma"))
    return torch.zeros((1, 1, 1, 1), device=x.device, dtype=x.dtype)


@register_metric("inherent_noise", direction="lower", category="faithfulness",
                 description="Mean probability that the method's input noise leaves [x_min, x_max] (AdaptGrad Eq. 9)")
def inherent_noise(ctx: MetricContext) -> Tensor:
    a = out_of_bounds_mass(ctx.x, method_sigma(ctx.method, ctx.x, ctx.x_range), ctx.x_range)
    return a.reshape(len(a), -1).mean(dim=1)
