"""Grad-CAM and Guided Backpropagation: methods that look inside the model through hooks.

Hooks are registered for one call and removed in ``finally``: the model is left exactly as found
(same parameters, same buffers, no hooks), which the tests check.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.methods.base import input_gradient, register_method

# -- Grad-CAM -------------------------------------------------------------------------------------

def trace_calls(model: nn.Module, x: Tensor) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """(name, module, output shape) of every module call, in the order the calls finish."""
    calls: list[tuple[str, nn.Module, tuple[int, ...]]] = []
    handles = [m.register_forward_hook(lambda mod, i, o, name=name: calls.append((name, mod, tuple(o.shape)))
                                       if isinstance(o, Tensor) else None)
               for name, m in model.named_modules() if name]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for h in handles:
            h.remove()
    return calls


def _grid(calls) -> tuple[int, int] | None:
    """Spatial size of the last convolution's output: the feature grid (ViT: the patch grid)."""
    convs = [shape for _, m, shape in calls if isinstance(m, nn.Conv2d)]
    return (convs[-1][-2], convs[-1][-1]) if convs else None


def auto_layer(calls) -> str:
    """The last conv block: the last module whose output is a feature map on the last convolution's
    grid (ResNet: ``layer4``; EfficientNet: ``bn2``). Token models (ViT, Mixer) keep the grid as
    tokens after the patch-embedding convolution; there it is the last block's ``norm1``, as in
    pytorch-grad-cam: a class-token ViT reads only the class token after the last block, so the
    patch tokens of the last block's output get zero gradient."""
    grid = _grid(calls)
    if grid is None:
        raise ValueError("gradcam: the model has no nn.Conv2d to find the last conv block from; "
                         "pass layer='<module name>' (bench uses the names of model.named_modules())")
    last_conv = max(i for i, (_, m, _) in enumerate(calls) if isinstance(m, nn.Conv2d))
    later = calls[last_conv:]
    tokens = [name for name, _, shape in later if len(shape) == 3]
    if tokens:
        norm1 = [name for name in tokens if name.endswith("norm1")]
        return (norm1 or tokens)[-1]
    return [name for name, _, shape in later if len(shape) == 4 and shape[-2:] == grid][-1]


def find_module(model: nn.Module, layer: str) -> str:
    """Exact name, or the one module whose name ends with ``.layer`` (the runner may wrap the model)."""
    names = [n for n, _ in model.named_modules() if n]
    if layer in names:
        return layer
    hits = [n for n in names if n.endswith("." + layer)]
    if len(hits) == 1:
        return hits[0]
    hint = f"several match: {hits[:5]}" if hits else f"names look like: {', '.join(names[:8])} …"
    raise ValueError(f"gradcam: no single module named '{layer}' in the model; {hint}")


def _as_grid(a: Tensor, grid: tuple[int, int] | None) -> Tensor:
    """B×C×h×w feature map; B×N×D tokens become B×D×gh×gw with the leading class tokens dropped."""
    if a.dim() == 4:
        return a
    if a.dim() != 3:
        raise ValueError(f"gradcam: the layer's output has shape {tuple(a.shape)}; need B×C×h×w or B×N×D tokens")
    n = a.shape[1]
    if grid is None or grid[0] * grid[1] > n:
        side = int(n**0.5)
        grid = (side, side)
    gh, gw = grid
    return a[:, n - gh * gw:].reshape(len(a), gh, gw, -1).permute(0, 3, 1, 2)


# model → {input shape: (auto layer name or None, feature grid)}: one tracing forward per model and
# input shape, not per call (smoothgrad(base=gradcam) and metrics that re-explain call it often).
# Weak keys: the model itself is not touched and is freed as usual (a model whose modules are
# swapped after a first call keeps its first layout: pass layer= explicitly then).
_LAYOUT: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


def _layout(model: nn.Module, x: Tensor, auto: bool) -> tuple[str | None, tuple[int, int] | None]:
    key = (tuple(x.shape[1:]), x.dtype, x.device, auto)
    cached = _LAYOUT.setdefault(model, {})
    if key not in cached:
        calls = trace_calls(model, x)
        cached[key] = (auto_layer(calls) if auto else None, _grid(calls))
    return cached[key]


@register_method("gradcam", defaults={"layer": None, "relu": True},
                 citation="Selvaraju et al. Grad-CAM: Visual Explanations from Deep Networks via "
                          "Gradient-based Localization. ICCV 2017.")
def gradcam(model, x: Tensor, target: Tensor, *, x_range, generator, chunk_size, layer: str | None = None,
            relu: bool = True) -> Tensor:
    """Grad-CAM on the last conv block, upsampled bilinearly to H×W and broadcast over channels."""
    auto, grid = _layout(model, x, auto=not layer)
    name = find_module(model, layer) if layer else auto
    module = dict(model.named_modules())[name]
    acts: list[Tensor] = []

    def keep(mod, inputs, out):
        if not isinstance(out, Tensor):
            raise ValueError(f"gradcam: layer '{name}' returns {type(out).__name__}, not a Tensor; pick another layer")
        acts.append(out)
        return out.clone()  # later in-place ops (ReLU(inplace=True)) must not overwrite the kept activation

    out = torch.empty_like(x)
    handle = module.register_forward_hook(keep)
    try:
        for s in range(0, len(x), chunk_size):
            acts.clear()
            xc = x[s : s + chunk_size].detach().requires_grad_(True)  # so the layer is on the graph
            score = model(xc).gather(1, target[s : s + chunk_size, None]).sum()
            (g,) = torch.autograd.grad(score, acts[-1])
            a, g = _as_grid(acts[-1].detach(), grid), _as_grid(g, grid)
            cam = (g.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True)
            if relu:
                cam = cam.clamp(min=0)
            # align_corners=False: what F.interpolate and Captum's LayerAttribution.interpolate use
            cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
            out[s : s + chunk_size] = cam.expand(-1, x.shape[1], -1, -1)
    finally:
        handle.remove()
    return out


# -- Guided Backpropagation -----------------------------------------------------------------------

def _gate(module: nn.Module, inputs, out: Tensor) -> None:
    # A hook on the ReLU's output clamps the gradient arriving there to ≥ 0; the ReLU's own backward
    # then applies its mask 1[x>0]: ReLU(g)·1[x>0], Springenberg et al.'s rule (and Captum's). The
    # tensor hook lives on this call's graph only, so nothing stays on the module; a later in-place
    # op on ``out`` does not move it (it fires for the gradient of the ReLU's output).
    if out.requires_grad:
        out.register_hook(lambda g: g.clamp(min=0))


# ReLU is the method's own case. Its smooth replacements get the same rule at their outputs (only
# positive gradients pass back, then the activation's own derivative): the SP(β) suites compare
# ΔEF of guided backprop across β, and SoftPlus(β) → ReLU as β → ∞ makes this the continuous extension.
GATED = (nn.ReLU, nn.Softplus, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU)


@contextlib.contextmanager
def guided_relus(model: nn.Module) -> Iterator[None]:
    """Gate every ReLU-like activation module for the duration; forward hooks, removed however the
    block exits."""
    relus = [m for m in model.modules() if isinstance(m, GATED)]
    if not relus:
        raise ValueError("guided_backprop: the model has no activation module to gate "
                         f"({', '.join(t.__name__ for t in GATED)}); use grad or smoothgrad")
    handles = [m.register_forward_hook(_gate) for m in relus]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@register_method("guided_backprop")
def guided_backprop(model, x: Tensor, target: Tensor, *, x_range, generator, chunk_size) -> Tensor:
    """Guided Backpropagation: ReLUs (and their smooth replacements) pass back only positive gradients."""
    with guided_relus(model):
        return input_gradient(model, x, target, chunk_size)
