"""The method contract and the batched input-gradient every method is built on.

A method is ``method(model, x, target, *, x_range, generator) -> Tensor`` with the shape of ``x``,
on ``x``'s device, float32. ``model`` maps ``B×C×H×W`` to ``B×K`` scores (the runner has already
applied the job's ``output`` choice, logit or log-softmax); ``target`` holds ``B`` class indices;
``x_range`` is the per-channel ``(x_min, x_max)`` of the dataset's normalised input space.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from bench.models.build import prepare_model  # noqa: F401  (re-exported: bench.methods.prepare_model)
from bench.registry import checked_factory, methods

# Per-device rows per forward/backward pass, chosen by measurement (benchmarks/methods_vs_captum.py
# --chunk-sizes; moderate chunks beat large ones on a 2-core CPU). The memory format a model runs
# in is prepared with it by bench.models.build.prepare_model (re-exported here).
DEFAULT_CHUNK_SIZE = {"cpu": 64, "cuda": 4096}


def default_chunk_size(device: torch.device) -> int:
    return DEFAULT_CHUNK_SIZE.get(device.type, 256)


@dataclass(frozen=True)
class Method:
    """A registered explanation function with its parameters bound."""

    name: str
    fn: Callable[..., Tensor]
    params: dict[str, Any] = field(default_factory=dict)
    # Composition needs to know: a stochastic method draws from the generator (so an outer
    # smoothing must call it once per outer sample to keep the draw order of the Python loop);
    # a linear one is a linear functional of the model's scores (so the mean of its maps over
    # model copies is its map of the copies' mean score: NoiseGrad batches copies that way).
    stochastic: bool = False
    linear: bool = False

    def __call__(self, model: nn.Module, x: Tensor, target: Tensor, *,
                 x_range: tuple[Tensor, Tensor] | None = None,
                 generator: torch.Generator | None = None, chunk_size: int | None = None) -> Tensor:
        if x_range is None:
            x_range = (x.amin(dim=(0, 2, 3)), x.amax(dim=(0, 2, 3)))
        x_range = (x_range[0].to(x.device, x.dtype), x_range[1].to(x.device, x.dtype))
        chunk = chunk_size or default_chunk_size(x.device)
        with torch.enable_grad():
            return self.fn(model, x, target, x_range=x_range, generator=generator, chunk_size=chunk,
                           **self.params)


_CONTEXT_ARGS = {"model", "x", "target", "x_range", "generator", "chunk_size"}


def register_method(name: str, *, defaults: dict[str, Any] | None = None, description: str = "",
                    citation: str = "", stochastic: bool = False, linear: bool = False):
    """Register ``fn(model, x, target, *, x_range, generator, chunk_size, **params)`` under ``name``.

    ``stochastic``: the method draws from the generator. ``linear``: its map is a linear functional
    of the model's score function (gradients, Grad×Input, IG; not Grad-CAM or guided backprop).
    """

    def decorator(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        factory = checked_factory("method", name, fn, _CONTEXT_ARGS,
                                  lambda params: Method(name, fn, params, stochastic=stochastic, linear=linear))
        desc = description or (inspect.getdoc(fn) or "").split("\n")[0]
        methods.register(name, description=desc, citation=citation, defaults=defaults,
                         stochastic=stochastic, linear=linear)(factory)
        return fn

    return decorator


def create_method(name: str, **params: Any) -> Method:
    """``create_method("adaptgrad", c=0.99)``: the one way to get a method by name."""
    return methods.create(name, **params)


def input_gradient(model: nn.Module, x: Tensor, target: Tensor, chunk_size: int) -> Tensor:
    """∇ₓ f_target(x) for every row of ``x``, ``chunk_size`` rows per forward/backward pass.

    Rows are independent (the model is in eval mode), so the gradient of the summed target scores
    of a chunk is each row's own gradient: one backward pass per chunk.
    """
    out = torch.empty_like(x)
    for s in range(0, len(x), chunk_size):
        xc = x[s : s + chunk_size].detach().requires_grad_(True)
        score = model(xc).gather(1, target[s : s + chunk_size, None]).sum()
        (out[s : s + chunk_size],) = torch.autograd.grad(score, xc)
    return out


def resolve_base(base: str | Method, base_params: dict[str, Any] | None = None) -> Method:
    if isinstance(base, Method):
        return base
    return create_method(base, **(base_params or {}))
