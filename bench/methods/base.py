"""The method contract and the batched input-gradient every method is built on.

A method is ``method(model, x, target, *, x_range, generator) -> Tensor`` with the shape of ``x``,
on ``x``'s device, float32. ``model`` maps ``B×C×H×W`` to ``B×K`` scores (the runner has already
applied the job's ``output`` choice, logit or log-softmax); ``target`` holds ``B`` class indices;
``x_range`` is the per-channel ``(x_min, x_max)`` of the dataset's normalised input space.

``Method.__call__`` enforces the output contract (``check_maps``), the only place that does, so
the runner, submissions, metrics that re-explain and composite methods all get checked maps. A
method declares, at ``register_method``: ``stochastic``, ``linear``, ``input_noise`` (the σ of
the input noise it adds, read by ``inherent_noise`` and the plots) and ``control`` (a control, not
a competitor: the board shows it as a reference row and never ranks it); never guessed from names.
Parameter values are checked against the function's annotations when the method is created
(``bench.methods.params``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from bench.errors import MethodOutputError, UnknownNameError
from bench.methods.params import ParameterError, check_values, parameter_hints
from bench.models.build import prepare_model  # noqa: F401  (re-exported: bench.methods.prepare_model)
from bench.registry import checked_factory, methods

# Per-device rows per forward/backward pass, chosen by measurement (benchmarks/methods_vs_captum.py
# --chunk-sizes; moderate chunks beat large ones on a 2-core CPU). The memory format a model runs
# in is prepared with it by bench.models.build.prepare_model (re-exported here).
DEFAULT_CHUNK_SIZE = {"cpu": 64, "cuda": 4096}


def default_chunk_size(device: torch.device) -> int:
    return DEFAULT_CHUNK_SIZE.get(device.type, 256)


def check_maps(maps: Tensor, x: Tensor, method: str) -> None:
    """A method's output must be float32, the input's shape, on its device and finite: never a silent NaN."""
    if not isinstance(maps, Tensor):
        raise MethodOutputError(f"method '{method}' returned {type(maps).__name__}, not a Tensor")
    if maps.shape != x.shape:
        raise MethodOutputError(f"method '{method}' returned shape {tuple(maps.shape)}, "
                                f"expected the input's {tuple(x.shape)}")
    if maps.dtype != torch.float32:
        raise MethodOutputError(f"method '{method}' returned {maps.dtype}, expected torch.float32")
    if maps.device != x.device:
        raise MethodOutputError(f"method '{method}' returned a map on {maps.device}, input on {x.device}")
    if maps.numel() == 0:
        return
    # One min/max pass (a NaN reaches both ends, an infinity one), not four element-wise ops: it runs on
    # every chunk of a smoothing method's passes. Only a bad map pays for the count in the message.
    if not torch.isfinite(torch.stack(torch.aminmax(maps))).all().item():
        bad = (~torch.isfinite(maps)).sum().item()
        raise MethodOutputError(f"method '{method}' returned {bad} non-finite values (NaN/inf)")


def _range_for(x: Tensor, x_range: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor]:
    """The per-channel (x_min, x_max) on ``x``'s device and dtype; the batch's own if not given."""
    if x_range is None:
        x_range = (x.amin(dim=(0, 2, 3)), x.amax(dim=(0, 2, 3)))
    return x_range[0].to(x.device, x.dtype), x_range[1].to(x.device, x.dtype)


# ``input_noise(x, x_range, **params) -> Tensor | None``: the per-element σ of the Gaussian input
# noise the method adds at ``x`` (broadcastable to ``x``), or None if it adds none.
NoiseRule = Callable[..., Tensor | None]


@dataclass(frozen=True)
class Method:
    """A registered explanation function with its parameters bound.

    Calling it runs the function and validates its maps (``check_maps``): every map any caller
    gets (the runner, a metric re-explaining, a smoothing of this method) passed the contract.
    """

    name: str
    fn: Callable[..., Tensor]
    params: dict[str, Any] = field(default_factory=dict)
    # Composition needs to know: a stochastic method draws from the generator (so an outer
    # smoothing must call it once per outer sample to keep the draw order of the Python loop);
    # a linear one is a linear functional of the model's scores (so the mean of its maps over
    # model copies is its map of the copies' mean score: NoiseGrad batches copies that way).
    stochastic: bool = False
    linear: bool = False
    noise_rule: NoiseRule | None = None  # see ``input_noise``; None: the method adds no input noise
    label: str = ""  # the name errors use (registry alias, a job's label); ``name`` if empty
    # ``rule(params) -> Method``: the method this one smooths (SmoothGrad of IG → IG); None: smooths nothing
    unsmoothed_rule: Callable[[dict[str, Any]], Method] | None = None

    def __call__(self, model: nn.Module, x: Tensor, target: Tensor, *,
                 x_range: tuple[Tensor, Tensor] | None = None,
                 generator: torch.Generator | None = None, chunk_size: int | None = None) -> Tensor:
        x_range = _range_for(x, x_range)
        chunk = chunk_size or default_chunk_size(x.device)
        with torch.enable_grad():
            maps = self.fn(model, x, target, x_range=x_range, generator=generator, chunk_size=chunk,
                           **self.params)
        check_maps(maps, x, self.label or self.name)
        return maps

    def input_noise(self, x: Tensor, x_range: tuple[Tensor, Tensor] | None = None) -> Tensor | None:
        """The per-element σ of the Gaussian noise this method adds to the input ``x`` (a tensor
        broadcastable to ``x``, on its device and dtype), or None if it adds none: SmoothGrad's
        α·(x_max − x_min) per channel, AdaptGrad's σᵢ, FusionGrad's input σ; NoiseGrad, gradients,
        IG, Grad-CAM and guided backprop: None."""
        if self.noise_rule is None:
            return None
        rule = inspect.signature(self.noise_rule).parameters
        params = {**fn_defaults(self.fn), **self.params}
        if not any(p.kind is p.VAR_KEYWORD for p in rule.values()):
            params = {k: v for k, v in params.items() if k in rule}
        return self.noise_rule(x, _range_for(x, x_range), **params)

    def unsmoothed(self) -> Method | None:
        """The method this one smooths, from its declaration (``register_method(unsmoothed=…)``):
        SmoothGrad/AdaptGrad/NoiseGrad of a base → the base; S-IG → IG. None: it smooths nothing."""
        if self.unsmoothed_rule is None:
            return None
        return self.unsmoothed_rule({**fn_defaults(self.fn), **self.params})

    def labelled(self, label: str) -> Method:
        """The same method, named ``label`` in its errors (the runner passes the job's label)."""
        return replace(self, label=label)


def fn_defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    return {n: p.default for n, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty and n not in _CONTEXT_ARGS}


_CONTEXT_ARGS = {"model", "x", "target", "x_range", "generator", "chunk_size"}
CONTROL_NOISE = "noise"  # register_method(control=…) of a pure-noise map: the board's bar


def register_method(name: str, *, defaults: dict[str, Any] | None = None, description: str = "",
                    citation: str = "", stochastic: bool = False, linear: bool = False,
                    input_noise: NoiseRule | None = None,
                    unsmoothed: Callable[[dict[str, Any]], Method] | None = None, control: str = ""):
    """Register ``fn(model, x, target, *, x_range, generator, chunk_size, **params)`` under ``name``.

    ``stochastic``: the method draws from the generator. ``linear``: its map is a linear functional
    of the model's score function (gradients, Grad×Input, IG; not Grad-CAM or guided backprop).
    ``input_noise``: ``rule(x, x_range, **params) -> Tensor | None``, the σ of the input noise the
    method adds (it gets the bound parameters it names, over ``fn``'s defaults); leave it out for a
    method that adds none. ``control``: '' for an explanation method; for a control (a map owing
    nothing to the model) what it is: ``CONTROL_NOISE`` for pure noise, the bar every method must
    clear on the board, or another word (``"edge"``). The values a parameter allows are ``fn``'s annotations
    (``bench.methods.params``), checked when the method is created.
    """

    def decorator(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        hints = parameter_hints(fn, set(inspect.signature(fn).parameters) - _CONTEXT_ARGS)

        def build(params: dict[str, Any]) -> Method:
            check_values(name, hints, params)
            if "base" in params:  # a composite: its base (and base_params) must make a method too
                check_base(name, params["base"], params.get("base_params"))
            return Method(name, fn, params, stochastic=stochastic, linear=linear, noise_rule=input_noise,
                          unsmoothed_rule=unsmoothed)

        factory = checked_factory("method", name, fn, _CONTEXT_ARGS, build)
        desc = description or (inspect.getdoc(fn) or "").split("\n")[0]
        methods.register(name, description=desc, citation=citation, defaults=defaults,
                         stochastic=stochastic, linear=linear, control=control)(factory)
        return fn

    return decorator


def create_method(name: str, **params: Any) -> Method:
    """``create_method("adaptgrad", c=0.99)``: the one way to get a method by name. Refuses a
    parameter value the method does not allow (``ParameterError``, one line)."""
    method = methods.create(name, **params)
    return method.labelled(name) if isinstance(method, Method) and not method.label else method


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


def base_of(params: dict[str, Any]) -> Method:
    """A composite's ``unsmoothed`` declaration: its base."""
    return resolve_base(params["base"], params.get("base_params"))


def check_base(method: str, base: Any, base_params: dict[str, Any] | None) -> None:
    """A composite's ``base`` must name a method that its ``base_params`` can create."""
    if isinstance(base, Method) or not isinstance(base, str):  # the annotation checked the type
        return
    try:
        resolve_base(base, base_params)
    except UnknownNameError as e:
        raise ParameterError(f"method '{method}': base={base!r} is not allowed; {e}") from None
    except ValueError as e:  # the base's own parameter errors, named as such
        raise ParameterError(f"method '{method}', base_params of its base '{base}': {e}") from None


def base_noise(own: Tensor | None, base: str | Method, base_params: dict[str, Any] | None, x: Tensor,
               x_range: tuple[Tensor, Tensor]) -> Tensor | None:
    """A composite's input noise: its own and its base's. The base draws its noise independently
    around the already-noisy input, so the variances add, σ² = σ_own² + σ_base² (exact when the
    base's σ does not depend on the point, as SmoothGrad's; for an AdaptGrad base it is its σᵢ at
    the clean ``x``). A base that adds no input noise (gradients, IG, NoiseGrad of them) leaves
    ``own`` as it is."""
    inner = resolve_base(base, base_params).input_noise(x, x_range)
    if inner is None or own is None:
        return own if inner is None else inner
    return torch.sqrt(own**2 + inner**2)
