"""Fidelity of a smoothed map to the map it smooths (stability–fidelity paper, arXiv 2411.05837)."""

from __future__ import annotations

from torch import Tensor

from bench.metrics.base import MetricContext, register_metric


def l2_distance(a: Tensor, b: Tensor) -> Tensor:
    """‖a − b‖₂ of each sample's raw flattened C×H×W map (float64)."""
    return (a.double() - b.double()).reshape(len(a), -1).norm(dim=1)


def unsmoothed_maps(ctx: MetricContext) -> Tensor:
    """Maps of the method the job's method smooths, as it declares (``Method.unsmoothed``): SmoothGrad
    of the gradient → the gradient, smoothed IG → IG. A method that smooths nothing (or a plain
    callable that declares nothing) is its own reference. Never chosen by the method's name."""
    if "maps:unsmoothed" not in ctx.cache:
        rule = getattr(ctx.method, "unsmoothed", None)
        ref = rule() if callable(rule) else None
        ctx.cache["maps:unsmoothed"] = ctx.maps if ref is None else ctx.explain(ref).detach()
    return ctx.cache["maps:unsmoothed"]


@register_metric("fidelity", direction="lower", category="faithfulness",
                 description="‖M_σ(x) − M(x)‖₂ on raw maps: distance of a smoothed map from the map it smooths")
def fidelity(ctx: MetricContext) -> Tensor:
    """‖M_σ(x) − M(x)‖₂ per sample, M the method the job's method smooths (SmoothGrad → gradient,
    smoothed IG → IG: the paper's Sec. 5), with the job's model, target and output.

    The paper's setting is target = label, output = logit (the suite defaults); a job that asks
    for ``predicted`` or ``log_softmax`` measures fidelity to that score's map instead.
    """
    return l2_distance(ctx.maps, unsmoothed_maps(ctx))
