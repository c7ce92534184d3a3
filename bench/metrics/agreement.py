"""Split agreement (Choi & Farnia): do two models trained on disjoint data explain alike?

The job's model is part ``split_index`` of its split factor; its twin is the next part
(``split_index + 1``) of the same partition (same ``split_seed``) and, by default, the next model
seed too, so that at every sf the pair differs in initialisation *and* data and sf=1 (two seeds on
the full set) is the natural end of the axis. ``same_init=True`` keeps the seed: data alone differs.

Maps are compared as |channel sum| (the paper's absolute-value convention); split_prediction_corr
compares the two models' softmax vectors (the paper's Fig. 4b). The twin draws its smoothing noise
**independently** of the job's maps (its own stream, :func:`independent_generator`), as the paper
explains each model on its own and as SPEC asks of stability: shared draws would leave SmoothGrad's
Monte-Carlo error out of the disagreement and hide the paper's effect of the sample count m.
``shared_noise=True`` replays the job's draws for the twin instead (variance reduction, labelled).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from bench.methods.params import PositiveInt
from bench.metrics.base import MetricContext, channel_sum, register_metric
from bench.metrics.correlation import spearman

CITATION = "Choi & Farnia, Generalization of Interpretable Deep Learning Requires More Data"


def twin_changes(recipe: Any, same_init: bool = False) -> dict[str, int]:
    """Recipe fields of the job model's twin: another seed at sf=1, the next split (and seed) at sf>1."""
    if recipe.split_factor == 1:
        return {"seed": recipe.seed + 1}
    changes = {"split_index": (recipe.split_index + 1) % recipe.split_factor}
    if not same_init:
        changes["seed"] = recipe.seed + 1
    return changes


def _twin(ctx: MetricContext, same_init: bool) -> nn.Module:
    key = f"split_twin:{same_init}"
    if key not in ctx.cache:
        ctx.cache[key] = ctx.model_for(**twin_changes(ctx.recipe, same_init))
    return ctx.cache[key]


# An odd 64-bit constant: the twin's stream is another seed than the job's (and than the next job's).
TWIN_STREAM = 0x9E3779B97F4A7C15


def independent_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """A generator for the twin's own draws: seeded from the job's, a stream of its own."""
    if generator is None:
        return None
    seed = (generator.initial_seed() + TWIN_STREAM) % 2**63
    return torch.Generator(device=generator.device).manual_seed(seed)


def explain_same_noise(ctx: MetricContext, model: nn.Module, target: Tensor) -> Tensor:
    gen = None
    if ctx.generator is not None:  # the job's maps were the first draws of a generator with this seed
        gen = torch.Generator(device=ctx.generator.device).manual_seed(ctx.generator.initial_seed())
    return ctx.explain(model=model, target=target, generator=gen).detach()


def pair_maps(ctx: MetricContext, same_init: bool = False, label_target: bool = False,
              shared_noise: bool = False) -> tuple[Tensor, Tensor]:
    """Raw maps of the job's model and of its twin on the same inputs and target; the twin draws its
    own noise unless ``shared_noise`` (then it replays the job's draws)."""
    target = ctx.y if label_target else ctx.target
    own = torch.equal(target, ctx.target)
    key = f"split_maps:{same_init}:{own}:{shared_noise}"
    if key not in ctx.cache:
        twin = _twin(ctx, same_init)
        mine = ctx.maps if own else explain_same_noise(ctx, ctx.model, target)
        if shared_noise:
            theirs = explain_same_noise(ctx, twin, target)
        else:
            theirs = ctx.explain(model=twin, target=target, generator=independent_generator(ctx.generator)).detach()
        ctx.cache[key] = (mine, theirs)
    return ctx.cache[key]


def topk_intersection(a: Tensor, b: Tensor, k: int) -> Tensor:
    """Row-wise |top-k(a) ∩ top-k(b)| / k of ``B×n`` values (ties broken by ``torch.topk``)."""
    if not 0 < k <= a.shape[1]:
        raise ValueError(f"split_topk_intersection: k={k} must be in 1..{a.shape[1]} (the map's pixels)")
    ma = torch.zeros_like(a, dtype=torch.bool).scatter_(1, a.topk(k, dim=1).indices, True)
    mb = torch.zeros_like(b, dtype=torch.bool).scatter_(1, b.topk(k, dim=1).indices, True)
    return (ma & mb).sum(1).double() / k


def abs_channel_sum(maps: Tensor) -> Tensor:
    """``B×(H·W)`` |channel sum|: the paper's absolute-value 2-D maps."""
    return channel_sum(maps).abs().flatten(1)


@register_metric("split_rank_corr", direction="higher", category="agreement", citation=CITATION,
                 twins=("pair",), reexplains=True,
                 description="Spearman correlation of the |channel-sum| maps of two models trained on disjoint splits")
def split_rank_corr(ctx: MetricContext, same_init: bool = False, shared_noise: bool = False) -> Tensor:
    m1, m2 = pair_maps(ctx, same_init, shared_noise=shared_noise)
    # A constant map has no ranking to agree with: 0 (no agreement), where SciPy says NaN.
    return spearman(abs_channel_sum(m1), abs_channel_sum(m2), norm_product=True).nan_to_num(nan=0.0)


@register_metric("split_topk_intersection", direction="higher", category="agreement", citation=CITATION,
                 twins=("pair",), reexplains=True,
                 description="Shared fraction of the top-k pixels of the |channel-sum| maps of two split models")
def split_topk_intersection(ctx: MetricContext, k: PositiveInt = 100, absolute: bool = True,
                            same_init: bool = False, shared_noise: bool = False) -> Tensor:
    """``absolute=False`` ranks the signed channel sum instead (salient = most positive)."""
    m1, m2 = pair_maps(ctx, same_init, shared_noise=shared_noise)
    if absolute:  # the paper's convention: salient = large magnitude, either sign
        return topk_intersection(abs_channel_sum(m1), abs_channel_sum(m2), k)
    return topk_intersection(channel_sum(m1).flatten(1), channel_sum(m2).flatten(1), k)


@register_metric("split_prediction_corr", direction="higher", category="agreement", citation=CITATION,
                 twins=("pair",),
                 description="Spearman correlation of the softmax vectors of two disjoint-split models (Fig. 4b)")
def split_prediction_corr(ctx: MetricContext, same_init: bool = False) -> Tensor:
    """Per input, Spearman of the two models' softmax vectors over the classes (the paper's
    prediction-level agreement, its Fig. 4b); a constant vector scores 0 as in split_rank_corr.
    Softmax is monotone in the logits, so the ranks are the same whatever the job's ``output``."""
    twin = _twin(ctx, same_init)
    with torch.inference_mode():
        p1, p2 = ctx.model(ctx.x).double().softmax(1), twin(ctx.x).double().softmax(1)
    return spearman(p1, p2).nan_to_num(nan=0.0)


@register_metric("split_l2", direction="lower", category="agreement", citation=CITATION,
                 twins=("pair",), reexplains=True,
                 description="‖M₁ − M₂‖₂ of the raw maps (target = label) of two disjoint-split models")
def split_l2(ctx: MetricContext, same_init: bool = False, shared_noise: bool = False) -> Tensor:
    m1, m2 = pair_maps(ctx, same_init, label_target=True, shared_noise=shared_noise)
    return (m1.double() - m2.double()).flatten(1).norm(dim=1)


@register_metric("split_prediction_agreement", direction="higher", category="agreement", citation=CITATION,
                 twins=("pair",),
                 description="Fraction of equal predicted labels of two disjoint-split models")
def split_prediction_agreement(ctx: MetricContext, same_init: bool = False) -> Tensor:
    twin = _twin(ctx, same_init)
    with torch.inference_mode():
        return (ctx.model(ctx.x).argmax(1) == twin(ctx.x).argmax(1)).double()
