"""SP(β) and friends: swap every ReLU in any module tree for another activation."""

from __future__ import annotations

from torch import nn

ACTIVATIONS = ("relu", "softplus:<beta>", "gelu", "leaky_relu")


def make_activation(spec: str) -> nn.Module:
    """``"relu" | "softplus:<β>" | "gelu" | "leaky_relu"`` → a fresh module."""
    name, _, arg = spec.partition(":")
    if name == "relu" and not arg:
        return nn.ReLU()
    if name == "softplus":
        try:
            beta = float(arg)
        except ValueError:
            raise ValueError(f"activation '{spec}': softplus needs a β, e.g. 'softplus:10'") from None
        if beta <= 0:
            raise ValueError(f"activation '{spec}': β must be > 0")
        return nn.Softplus(beta=beta)  # PyTorch's default threshold 20, as SPEC.md states
    if name == "gelu" and not arg:
        return nn.GELU()
    if name == "leaky_relu":
        return nn.LeakyReLU(float(arg) if arg else 0.01)
    raise ValueError(f"unknown activation '{spec}'; use one of {', '.join(ACTIVATIONS)}")


def set_activation(model: nn.Module, spec: str, replace: tuple[type, ...] = (nn.ReLU,)) -> nn.Module:
    """Replace, in place, every module of a type in ``replace`` with ``make_activation(spec)``."""
    for name, child in list(model.named_children()):
        if isinstance(child, replace):
            setattr(model, name, make_activation(spec))
        else:
            set_activation(child, spec, replace)
    return model
