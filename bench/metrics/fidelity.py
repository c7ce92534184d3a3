"""Fidelity of a smoothed map to the plain gradient (stability–fidelity paper, arXiv 2411.05837)."""

from __future__ import annotations

from torch import Tensor

from bench.metrics.base import MetricContext, register_metric


def l2_distance(a: Tensor, b: Tensor) -> Tensor:
    """‖a − b‖₂ of each sample's raw flattened C×H×W map (float64)."""
    return (a.double() - b.double()).reshape(len(a), -1).norm(dim=1)


@register_metric("fidelity", direction="lower", category="faithfulness",
                 description="‖M(x) − ∇f(x)‖₂ on raw maps: distance of the map from the plain gradient")
def fidelity(ctx: MetricContext) -> Tensor:
    """‖M_σ(x) − ∇f_t(x)‖₂ per sample, with the job's model, target and output.

    The paper's setting is target = label, output = logit (the suite defaults); a job that asks
    for ``predicted`` or ``log_softmax`` measures fidelity to that score's gradient instead.
    """
    return l2_distance(ctx.maps, ctx.reference_maps("grad"))
