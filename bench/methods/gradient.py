"""Plain gradients: VanillaGrad and Gradient×Input."""

from __future__ import annotations

from torch import Tensor

from bench.methods.base import input_gradient, register_method


@register_method("grad", linear=True)
def grad(model, x: Tensor, target: Tensor, *, x_range, generator, chunk_size) -> Tensor:
    """VanillaGrad: the input gradient of the target score."""
    return input_gradient(model, x, target, chunk_size)


@register_method("grad_x_input", linear=True)
def grad_x_input(model, x: Tensor, target: Tensor, *, x_range, generator, chunk_size) -> Tensor:
    """Gradient × Input: x ⊙ ∇ₓ f_t(x)."""
    return x * input_gradient(model, x, target, chunk_size)
