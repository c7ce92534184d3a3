"""Randomisation checks, equal to Quantus 0.6: Random Logit and cascading MPRT."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import Tensor, nn

from bench.metrics.base import MetricContext, register_metric
from bench.metrics.correlation import normalise_by_max, spearman, ssim_1d


def off_class_targets(target: Tensor, num_classes: int, seed: int) -> Tensor:
    """Quantus ``RandomLogit``'s off-class labels: ``np.random.seed(seed)``, then one
    ``randint(0, K−1)`` per sample indexes the classes other than the target (drawn on the CPU
    with NumPy so that the labels are Quantus' own)."""
    draw = np.random.RandomState(seed).randint(0, num_classes - 1, len(target))
    off = torch.as_tensor(draw, device=target.device)
    return off + (off >= target).long()


def _num_classes(ctx: MetricContext) -> int:
    with torch.inference_mode():
        return int(ctx.model(ctx.x[:1]).shape[1])


@register_metric("random_logit", direction="lower", category="randomisation", reexplains=True,
                 description="SSIM of the maps for the target and for a random other class (lower = class-sensitive)")
def random_logit(ctx: MetricContext, seed: int = 42, num_classes: int | None = None, normalise: bool = True,
                 abs: bool = False) -> Tensor:
    """Quantus ``RandomLogit`` with per-sample ``normalise_by_max`` and its SSIM on flattened maps."""
    k = num_classes or _num_classes(ctx)
    off = off_class_targets(ctx.target, k, seed)
    a = ctx.maps
    a_off = ctx.explain(target=off).detach()
    if normalise:
        a, a_off = normalise_by_max(a), normalise_by_max(a_off)
    if abs:
        a, a_off = a.abs(), a_off.abs()
    return ssim_1d(a, a_off)


def randomised_layers(model: nn.Module, seed: int = 42, order: str = "top_down"):
    """Yield ``(name, model)`` after re-initialising one more layer, as Quantus' ``get_random_layer_generator``.

    Layers are the modules with ``reset_parameters``, last first for ``top_down``; each reset runs
    right after ``torch.manual_seed(seed + 1)``. The global RNG is restored afterwards, so the
    job's other randomness is untouched.
    """
    if order not in ("top_down", "bottom_up"):
        raise ValueError(f"mprt: layer_order must be 'top_down' or 'bottom_up' (cascading), got '{order}'")
    twin = copy.deepcopy(model)
    layers = [(n, m) for n, m in twin.named_modules() if hasattr(m, "reset_parameters")]
    if order == "top_down":
        layers = layers[::-1]
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    for name, layer in layers:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed + 1)
            layer.reset_parameters()
        yield name, twin


@register_metric("mprt", direction="lower", category="randomisation", reexplains=True,
                 description="Spearman between the map and maps of the model with layers re-initialised top-down")
def mprt(ctx: MetricContext, seed: int = 42, layer_order: str = "top_down", reduce: str = "average",
         abs: bool = True) -> Tensor:
    """Cascading model-parameter randomisation (Quantus ``MPRT``): Spearman of the map with the map of the
    model after each further layer is re-initialised; ``reduce`` = "average" over those layers or
    "last" (every layer random).

    Quantus' ``return_average_correlation`` also averages in its un-randomised "original" entry
    (its code skips a key "orig" that never occurs); "average" here is over randomised layers only.
    Normalisation does not change ranks, so only ``abs`` matters. A randomised model whose map is
    constant has no ranks (Quantus: NaN); it scores 0 here, no rank agreement.
    """
    if reduce not in ("average", "last"):
        raise ValueError(f"mprt: reduce must be 'average' or 'last', got '{reduce}'")
    a = ctx.maps.abs() if abs else ctx.maps

    def rho(twin: nn.Module) -> Tensor:
        m = ctx.explain(model=twin).detach()
        return spearman(a, m.abs() if abs else m).nan_to_num(nan=0.0)

    rhos, twin = [], None
    for _, twin in randomised_layers(ctx.model, seed, layer_order):
        if reduce == "average":  # "last" explains only the fully randomised model (Quantus' skip_layers)
            rhos.append(rho(twin))
    if twin is None:
        raise ValueError("mprt: the model has no layer with reset_parameters() to randomise")
    return rho(twin) if reduce == "last" else torch.stack(rhos).mean(dim=0)
