"""Pixel flipping and faithfulness correlation, batched on the job's device, equal to Quantus 0.6.

Both flatten the raw C×H×W map and the input the same way (Quantus broadcasts the map to the
input's shape first) and replace features by a per-sample baseline ("black" = the sample's
minimum). Several perturbation steps go through the model as one batch.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from bench.methods.params import PositiveInt
from bench.metrics.base import MetricContext, register_metric
from bench.metrics.correlation import pearson
from bench.metrics.perturbation import baseline_value, rows_per_call, target_scores


def pixel_flipping_curve(model: nn.Module, x: Tensor, target: Tensor, maps: Tensor, features_in_step: int = 1,
                         perturb_baseline: str | float = "black", softmax: bool = True, abs: bool = False,
                         chunk_size: int = 256, order: Tensor | None = None) -> Tensor:
    """``B×S`` scores after flipping the top 1·k, 2·k, … features (k = ``features_in_step``).

    Features are taken in descending attribution order (``abs`` first if asked); ``order`` may
    fix that order (``B×F`` feature indices) where ties must follow another sort.
    """
    b = len(x)
    flat_x = x.reshape(b, -1)
    a = maps.reshape(b, -1).to(flat_x.dtype)
    if abs:
        a = a.abs()
    if order is None:
        order = torch.argsort(a, dim=1, descending=True, stable=True)
    n_features = flat_x.shape[1]
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(n_features, device=x.device).expand(b, -1))
    fill = baseline_value(flat_x, perturb_baseline)
    n_steps = math.ceil(n_features / features_in_step)
    per_call = rows_per_call(b, chunk_size)
    curve = torch.empty(b, n_steps, dtype=torch.float32, device=x.device)
    for s in range(0, n_steps, per_call):
        k = min(per_call, n_steps - s)
        upto = (torch.arange(s, s + k, device=x.device) + 1) * features_in_step
        flipped = rank.unsqueeze(0) < upto.view(-1, 1, 1)  # k×B×F: step s flips ranks < (s+1)·k
        xp = torch.where(flipped, fill.unsqueeze(0), flat_x.unsqueeze(0)).reshape(k * b, *x.shape[1:])
        scores = target_scores(model, xp, target.repeat(k), softmax, chunk_size)
        curve[:, s : s + k] = scores.view(k, b).T
    return curve


def trapezoid(curve: Tensor) -> Tensor:
    """Trapezoid AUC with dx = 1 along the last axis (Quantus' ``calculate_auc``)."""
    c = curve.double()
    return (c[:, 1:] + c[:, :-1]).sum(dim=1) / 2


@register_metric("pixel_flipping", direction="lower", category="faithfulness",
                 description="AUC of the target score as the most relevant features are flipped first (lower = better)")
def pixel_flipping(ctx: MetricContext, features_in_step: PositiveInt = 1, perturb_baseline: str | float = "black",
                   softmax: bool = True, abs: bool = False) -> Tensor:
    """Quantus ``PixelFlipping(return_auc_per_sample=True)``: trapezoid AUC (dx = 1, so it grows with
    the number of steps ⌈F/features_in_step⌉) of the score curve."""
    curve = pixel_flipping_curve(ctx.model, ctx.x, ctx.target, ctx.maps, features_in_step, perturb_baseline,
                                 softmax, abs, ctx.chunk_size)
    return trapezoid(curve)


def faithfulness_correlation_of(model: nn.Module, x: Tensor, target: Tensor, maps: Tensor, subsets: Tensor,
                                perturb_baseline: str | float = "black", softmax: bool = False,
                                abs: bool = False, chunk_size: int = 256) -> Tensor:
    """Pearson over runs of (Σ attributions of the subset, f_t(x) − f_t(x with the subset replaced)).

    ``subsets`` holds ``R×B×S`` feature indices: run r replaces features ``subsets[r, b]`` of sample b.
    """
    b = len(x)
    flat_x = x.reshape(b, -1)
    a = maps.reshape(b, -1).double()
    if abs:
        a = a.abs()
    fill = baseline_value(flat_x, perturb_baseline)
    clean = target_scores(model, x, target, softmax, chunk_size)
    runs = len(subsets)
    per_call = rows_per_call(b, chunk_size)
    deltas = torch.empty(b, runs, dtype=torch.float64, device=x.device)
    for s in range(0, runs, per_call):
        idx = subsets[s : s + per_call]
        k = len(idx)
        xp = flat_x.unsqueeze(0).repeat(k, 1, 1)
        xp.scatter_(2, idx, fill.unsqueeze(0).expand(k, b, idx.shape[2]))
        scores = target_scores(model, xp.reshape(k * b, *x.shape[1:]), target.repeat(k), softmax, chunk_size)
        deltas[:, s : s + k] = (clean.unsqueeze(0) - scores.view(k, b)).T.double()
    sums = torch.gather(a.unsqueeze(0).expand(runs, -1, -1), 2, subsets).sum(dim=2).T
    return pearson(sums, deltas)


def random_subsets(runs: int, batch: int, n_features: int, size: int, generator: torch.Generator | None,
                   device: torch.device) -> Tensor:
    """``R×B×size`` uniform subsets without replacement: the ``size`` largest of F uniform keys.

    ``topk`` rather than a full argsort (3× faster at F = 3072): the indices of the k largest iid
    keys are a uniform k-subset, which is all the metric needs (it sums over the subset)."""
    # One run at a time: R×B×F keys would not fit for large inputs.
    return torch.stack([torch.rand(batch, n_features, generator=generator, device=device).topk(size, dim=1).indices
                        for _ in range(runs)])


@register_metric("faithfulness_correlation", direction="higher", category="faithfulness",
                 description="Pearson of random subsets' attribution sums with the score drop on removing them")
def faithfulness_correlation(ctx: MetricContext, nr_runs: PositiveInt = 100, subset_size: PositiveInt = 224,
                             perturb_baseline: str | float = "black", softmax: bool = False,
                             abs: bool = False) -> Tensor:
    """Quantus ``FaithfulnessCorrelation``: subsets drawn from the job's generator (Quantus draws
    them with ``np.random.choice``, so the two agree in distribution; on the same subsets, exactly)."""
    n_features = ctx.x[0].numel()
    if subset_size > n_features:
        raise ValueError(f"faithfulness_correlation: subset_size {subset_size} > {n_features} features per input")
    subsets = random_subsets(nr_runs, len(ctx.x), n_features, subset_size, ctx.generator, ctx.x.device)
    return faithfulness_correlation_of(ctx.model, ctx.x, ctx.target, ctx.maps, subsets, perturb_baseline, softmax,
                                       abs, ctx.chunk_size)
