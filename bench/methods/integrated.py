"""Integrated Gradients, right Riemann sum, all steps batched."""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

from bench.methods.base import input_gradient, register_method
from bench.methods.params import PositiveInt

Baseline = Literal["zero", "black", "white"]
BASELINES = get_args(Baseline)


def baseline_for(x: Tensor, baseline: str, x_range: tuple[Tensor, Tensor]) -> Tensor:
    if baseline == "zero":
        return torch.zeros_like(x)
    if baseline in ("black", "white"):  # per-channel x_min / x_max of the normalised space
        bound = x_range[0] if baseline == "black" else x_range[1]
        return bound.view(1, -1, 1, 1).expand_as(x).clone()
    raise ValueError(f"integrated_gradients: baseline must be one of {BASELINES}, got '{baseline}'")


@register_method("integrated_gradients", defaults={"steps": 32, "baseline": "zero"}, linear=True)
def integrated_gradients(model, x: Tensor, target: Tensor, *, x_range, generator, chunk_size,
                         steps: PositiveInt = 32, baseline: Baseline = "zero") -> Tensor:
    """Integrated Gradients: (x−x₀) ⊙ mean_k ∇f(x₀ + k/m·(x−x₀)), right Riemann sum."""
    x0 = baseline_for(x, baseline, x_range)
    alphas = torch.arange(1, steps + 1, device=x.device, dtype=x.dtype) / steps
    total = torch.zeros_like(x)
    per_chunk = max(1, chunk_size // len(x))  # steps per pass through the model
    for s in range(0, steps, per_chunk):
        a = alphas[s : s + per_chunk].view(-1, 1, 1, 1, 1)
        path = (x0 + a * (x - x0)).reshape(-1, *x.shape[1:])
        g = input_gradient(model, path, target.repeat(len(a)), chunk_size)
        total += g.view(len(a), *x.shape).sum(0)
    return (x - x0) * total / steps
