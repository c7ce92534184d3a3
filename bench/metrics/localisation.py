"""Localisation against ground-truth masks, batched, equal to Quantus 0.6 at its defaults.

What Quantus does with ``a_batch`` and ``s_batch`` when called as its users call it, and how
these functions reproduce it:

- The map is the 2-D map: the signed channel sum, ``B×H×W`` (what ``quantus.explain`` returns,
  ``reduce_axes=[1]``). The masks have one channel; Quantus flattens map and mask alike, so a
  C-channel map meets an ``H·W`` mask and fails to broadcast: a C-channel map is not an option.
- ``abs=False`` for all five: signed maps. ``abs=True`` is offered as Quantus offers it.
- ``normalise=True`` (``normalise_by_max`` over the whole batch): every metric here is unchanged
  when a map is multiplied by a positive number, so that division changes no value and is left out
  (a batch-wide maximum would only couple the samples).
- Ties: pointing game, mass accuracy and AUC define them (every maximum counts; ties score half in
  the AUC, as scikit-learn's ROC does). Rank accuracy and top-k take the first K of
  ``np.argsort(-a)``, NumPy's unstable sort, whose order inside a tie depends on the CPU's SIMD sort:
  not reproducible. Here a tie group straddling the K-th place counts each of its members with
  the share of the remaining places it would get on average over random tie orders (the expected
  value). Without such a tie (continuous maps, or ties only within or only outside the mask) the
  value equals Quantus'.

A value that is undefined is NaN and the runner leaves the sample out (``excludes``): an empty
mask (all five; Quantus' pointing game gives 1.0 there, its NaN cast to a bool), a mask covering
the whole image (AUC), a map whose total is zero (mass accuracy; Quantus: NaN or ±inf).
"""

from __future__ import annotations

import torch
from torch import Tensor

from bench.methods.params import PositiveInt
from bench.metrics.base import MetricContext, channel_sum, register_metric


def flat_map_and_mask(ctx: MetricContext, abs: bool = False) -> tuple[Tensor, Tensor]:
    """The 2-D map (``B×H·W`` float64, ``|·|`` if asked) and the ground-truth mask (``B×H·W`` bool)."""
    if ctx.masks is None:
        raise ValueError("localisation metrics need ground-truth masks; use a dataset that has them (e.g. shapes)")
    b, _, h, w = ctx.maps.shape
    if ctx.masks.numel() != b * h * w:
        raise ValueError(f"masks of shape {tuple(ctx.masks.shape)} do not match maps of shape "
                         f"{tuple(ctx.maps.shape)}; the dataset must give one B×1×H×W mask per input")
    a = channel_sum(ctx.maps.double()).reshape(b, -1)
    return (a.abs() if abs else a), ctx.masks.reshape(b, -1).bool()


def _undefined_where(values: Tensor, undefined: Tensor) -> Tensor:
    return torch.where(undefined, torch.full_like(values, float("nan")), values)


def pointing_game_of(a: Tensor, s: Tensor) -> Tensor:
    """1 if a maximum of the map (any of them, when tied) lies in the mask, else 0 (Zhang et al.)."""
    top = a == a.amax(dim=1, keepdim=True)
    return _undefined_where((top & s).any(dim=1).double(), ~s.any(dim=1))


def relevance_mass_of(a: Tensor, s: Tensor) -> Tensor:
    """Σ map inside the mask / Σ map (signed unless ``abs``; Arras et al.)."""
    total = a.sum(dim=1)
    ratio = (a * s).sum(dim=1) / torch.where(total == 0, torch.ones_like(total), total)
    return _undefined_where(ratio, (total == 0) | ~s.any(dim=1))


def expected_hits(a: Tensor, s: Tensor, k: Tensor) -> Tensor:
    """Mask pixels among the ``k`` (per row, 1 ≤ k ≤ F) highest values of each row, the tie group at
    the k-th place counted at its expected share under a uniformly random order of the tie."""
    kth = a.sort(dim=1, descending=True).values.gather(1, (k - 1).view(-1, 1))
    above, tied = a > kth, a == kth
    places_left = (k - above.sum(dim=1)).double()
    in_tie = (tied & s).sum(dim=1).double()
    return (above & s).sum(dim=1).double() + places_left * in_tie / tied.sum(dim=1)


def relevance_rank_of(a: Tensor, s: Tensor) -> Tensor:
    """Fraction of the K highest-valued pixels inside the mask, K = mask size (Arras et al.)."""
    k = s.sum(dim=1)
    return _undefined_where(expected_hits(a, s, k.clamp(min=1)) / k.clamp(min=1).double(), k == 0)


def top_k_intersection_of(a: Tensor, s: Tensor, k: int) -> Tensor:
    """Fraction of the ``k`` highest-valued pixels inside the mask (Theiner et al.)."""
    n = a.shape[1]
    if not 1 <= k < n:  # Quantus asserts k < H·W
        raise ValueError(f"top_k_intersection: k = {k} must be at least 1 and smaller than the {n} pixels "
                         "of a map; set params = {{ k = … }} in the suite")
    hits = expected_hits(a, s, torch.full((len(a),), k, device=a.device))
    return _undefined_where(hits / k, ~s.any(dim=1))


def roc_auc_of(a: Tensor, s: Tensor) -> Tensor:
    """Area under the ROC curve of the map as a score for the mask, ties scoring half (scikit-learn's
    ``roc_curve`` + ``auc``): the Mann–Whitney statistic from mid-ranks."""
    ordered = a.sort(dim=1).values
    below = torch.searchsorted(ordered, a)  # values < a, per row
    up_to = torch.searchsorted(ordered, a, right=True)  # values ≤ a
    mid_rank = (below + up_to + 1).double() / 2  # 1-based rank, ties sharing their mean rank
    n_pos = s.sum(dim=1).double()
    n_neg = a.shape[1] - n_pos
    u = (mid_rank * s).sum(dim=1) - n_pos * (n_pos + 1) / 2
    undefined = (n_pos == 0) | (n_neg == 0)
    return _undefined_where(u / torch.where(undefined, torch.ones_like(u), n_pos * n_neg), undefined)


@register_metric("pointing_game", direction="higher", category="localisation", masks=True, excludes=True,
                 description="Whether the 2-D map's maximum lies in the object mask (Quantus PointingGame)")
def pointing_game(ctx: MetricContext, abs: bool = False) -> Tensor:
    return pointing_game_of(*flat_map_and_mask(ctx, abs))


@register_metric("relevance_mass_accuracy", direction="higher", category="localisation", masks=True,
                 excludes=True,
                 description="Share of the 2-D map's sum inside the object mask (Quantus RelevanceMassAccuracy)")
def relevance_mass_accuracy(ctx: MetricContext, abs: bool = False) -> Tensor:
    """Signed at Quantus' default: a map whose positive and negative parts nearly cancel has a total
    near zero and a ratio far outside [0, 1]. The CLEVR-XAI release (``eval/util.py: calc_overlap``)
    takes |map|: ``abs = true``."""
    return relevance_mass_of(*flat_map_and_mask(ctx, abs))


@register_metric("relevance_rank_accuracy", direction="higher", category="localisation", masks=True,
                 excludes=True,
                 description="Share of the 2-D map's top |mask| pixels inside the mask (Quantus RelevanceRankAccuracy)")
def relevance_rank_accuracy(ctx: MetricContext, abs: bool = False) -> Tensor:
    return relevance_rank_of(*flat_map_and_mask(ctx, abs))


@register_metric("top_k_intersection", direction="higher", category="localisation", masks=True, excludes=True,
                 description="Share of the 2-D map's top k pixels inside the mask (Quantus TopKIntersection, k=1000)")
def top_k_intersection(ctx: MetricContext, k: PositiveInt = 1000, abs: bool = False) -> Tensor:
    """Quantus' default k = 1000 is sized for ImageNet: on a 32×32 image it keeps all but 24 pixels, so
    the value is close to (mask size)/1000 whatever the map; a map equal to the mask scores
    min(mask size, k)/k, not 1."""
    return top_k_intersection_of(*flat_map_and_mask(ctx, abs), k)


@register_metric("localisation_auc", direction="higher", category="localisation", masks=True, excludes=True,
                 description="ROC AUC of the 2-D map as a detector of the object mask (Quantus AUC)")
def localisation_auc(ctx: MetricContext, abs: bool = False) -> Tensor:
    return roc_auc_of(*flat_map_and_mask(ctx, abs))
