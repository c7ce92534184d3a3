"""SP(β) and friends: swap every ReLU in any module tree for another activation.

What "replace" means (SPEC.md, "SP(β)"): by default only ReLU modules (``nn.ReLU`` and
subclasses, which is what timm builds for ``act_layer="relu"``, ``inplace=True`` included) are
swapped. A model's other activations — ConvNeXt's and ViT's GELU, EfficientNet's SiLU — are left
as they are, because SP(β) is a smoothing *of ReLU*; ask for ``replace="all"`` to swap every
element-wise activation too (then ``softplus:β`` runs everywhere). Gates (the sigmoid of a
squeeze-excite block) are never activations to swap.

A module swap cannot reach a ``F.relu`` called inside a ``forward``; :func:`functional_relu_calls`
runs a forward with ``F.relu``/``torch.relu`` counted, so a test can prove none is called.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("relu", "softplus:<beta>", "gelu", "leaky_relu")
REPLACE = ("relu", "all")


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


def act_layer(spec: str) -> Callable[..., nn.Module]:
    """A timm ``act_layer=``: timm calls it as ``act_layer(inplace=True)``, which SoftPlus lacks."""

    def factory(*_: Any, **__: Any) -> nn.Module:
        return make_activation(spec)

    factory.__name__ = spec.replace(":", "_").replace(".", "_")
    return factory


@functools.cache
def all_activation_types() -> tuple[type, ...]:
    """The element-wise activation module types (torch's and, where installed, timm's)."""
    types: list[type] = [nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU,
                         nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish, nn.Softplus]
    try:  # timm's own activation classes are plain nn.Modules (its GELU is not an nn.GELU)
        from timm.layers import activations as ta
        from timm.layers import activations_me as tme

        types += [ta.Swish, ta.Mish, ta.HardSwish, ta.HardMish, ta.PReLU, ta.GELU, ta.GELUTanh, ta.QuickGELU,
                  tme.SwishMe, tme.MishMe, tme.HardSwishMe, tme.HardMishMe]
    except ImportError:
        pass
    return tuple(types)


def replace_types(replace: str | tuple[type, ...]) -> tuple[type, ...]:
    if isinstance(replace, tuple):
        return replace
    if replace == "relu":
        return (nn.ReLU,)
    if replace == "all":
        return all_activation_types()
    raise ValueError(f"replace='{replace}': use 'relu' (ReLU modules only) or 'all' (every activation)")


def set_activation(model: nn.Module, spec: str, replace: str | tuple[type, ...] = "relu") -> nn.Module:
    """Replace, in place, every activation module ``replace`` selects with ``make_activation(spec)``.

    ``replace``: ``"relu"`` (default), ``"all"``, or a tuple of module types.
    """
    types = replace_types(replace)
    for name, child in list(model.named_children()):
        if isinstance(child, types):
            setattr(model, name, make_activation(spec))
        else:
            set_activation(child, spec, types)
    return model


def remaining(model: nn.Module, types: tuple[type, ...] = (nn.ReLU,)) -> list[str]:
    """Names of the submodules still of one of ``types`` (empty after a complete swap)."""
    return [n for n, m in model.named_modules() if isinstance(m, types)]


@contextlib.contextmanager
def _counting(calls: list[str]) -> Iterator[None]:
    originals = {(F, "relu"): F.relu, (F, "relu_"): F.relu_, (torch, "relu"): torch.relu,
                 (torch, "relu_"): torch.relu_, (torch.Tensor, "relu"): torch.Tensor.relu,
                 (torch.Tensor, "relu_"): torch.Tensor.relu_}

    def wrap(owner: Any, attr: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            calls.append(f"{owner.__name__}.{attr}")
            return fn(*args, **kwargs)

        return counted

    try:
        for (owner, attr), fn in originals.items():
            setattr(owner, attr, wrap(owner, attr, fn))
        yield
    finally:
        for (owner, attr), fn in originals.items():
            setattr(owner, attr, fn)


def functional_relu_calls(model: nn.Module, x: torch.Tensor) -> list[str]:
    """Run ``model(x)`` counting functional ReLU calls (``F.relu``, ``torch.relu``, ``Tensor.relu``, in place too).

    ``nn.ReLU.forward`` itself calls ``F.relu``, so a model that still holds ReLU modules counts
    too: an empty list proves no ReLU, module or functional, ran.
    """
    calls: list[str] = []
    with _counting(calls), torch.no_grad():
        model.eval()(x)
    return calls
