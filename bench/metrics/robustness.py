"""Metrics that compare the job's maps with maps of twin models: consistency, invariance, stability.

Twins come from ``ctx.model_for`` (trained or loaded from the cache by the runner):
- consistency: the same recipe at 0 epochs under its own seed (an independent random
  initialisation, never the job model's own starting weights; no accuracy cap);
- invariance: the same recipe trained separately (its own seed: other initialisation and batch
  order) on x + 1, explained at x + 1 within the job's input bounds (AdaptGrad's "Bias" model);
- stability: the same recipe with the next seed (or the other split of a split pair), its own noise draws.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bench.methods.params import PositiveInt
from bench.metrics.agreement import _twin, explain_same_noise, independent_generator, pair_maps
from bench.metrics.base import MetricContext, channel_sum, register_metric
from bench.metrics.correlation import spearman
from bench.metrics.fidelity import l2_distance


def noabs_scale(s: Tensor) -> Tensor:
    """AdaptGrad's released ``noabsscale`` per 2-D map: clip(s / (2|p99(s)|), −1, 1).

    p99 is numpy's default (linear) percentile over the flattened map, as ``torch.quantile``.
    """
    flat = s.reshape(len(s), -1).double()
    span = flat.quantile(0.99, dim=1, keepdim=True).abs()
    return (flat / (2 * span)).clamp(-1, 1)


def released_abs_spearman(maps_a: Tensor, maps_b: Tensor) -> Tensor:
    """|Spearman| of the scaled 2-D maps, per sample, as AdaptGrad's ``get_correlation(scale="noabs")``.

    The released code drops NaN correlations (a constant map, or one whose p99 is 0) from its mean;
    a per-sample metric cannot drop a sample, so such a sample scores 0 (no rank agreement).
    """
    a, b = noabs_scale(channel_sum(maps_a)), noabs_scale(channel_sum(maps_b))
    # p99 = 0 makes 0/0 = NaN in the scaled map, and SciPy's Spearman is then NaN as well.
    undefined = a.isnan().any(dim=1) | b.isnan().any(dim=1)
    rho = spearman(a.nan_to_num(), b.nan_to_num()).abs()
    return torch.where(undefined, torch.zeros_like(rho), rho.nan_to_num(nan=0.0))


def _recipe(ctx: MetricContext):
    if ctx.recipe is None or ctx.load_model is None:
        raise ValueError("this metric needs other models of the job's recipe; run it through the runner "
                         "(or give MetricContext a recipe and a load_model callable)")
    return ctx.recipe


# Seeds of the consistency and invariance twins: recipe.seed + offset, far from the seeds a suite
# lists (0, 1, 2, …) and from stability's seed + 1, so a twin shares neither the job model's
# initialisation nor its batch order, nor is another job's model.
RANDOM_TWIN_SEED_OFFSET = 1000
SHIFTED_TWIN_SEED_OFFSET = 2000


def _predicted(model: nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():  # not inference_mode: the class indices feed a backward pass
        return model(x).argmax(1)


def _own_class_maps(ctx: MetricContext) -> Tensor:
    """The job model's maps for its own predicted class (the job's maps when that is its target)."""
    target = _predicted(ctx.model, ctx.x)
    return ctx.maps if torch.equal(target, ctx.target) else ctx.explain(target=target).detach()


def _twin_maps(ctx: MetricContext, twin: nn.Module, shift: float = 0.0) -> Tensor:
    """The twin's maps at x + shift for its own predicted class; the input bounds stay the job's,
    as released (AdaptGrad's get_salience_mnist.py keeps [0, 1] for the Bias model)."""
    x = ctx.x + shift
    return ctx.explain(model=twin, x=x, target=_predicted(twin, x)).detach()


@register_metric("consistency", direction="lower", category="randomisation",
                 twins=("independent",), reexplains=True,
                 description="|Spearman| between maps of the trained and an independently initialised model")
def consistency(ctx: MetricContext) -> Tensor:
    """AdaptGrad's Consistency: |ρ| with the maps of an independently initialised twin, each model
    explaining its own predicted class, as released. The release's random model is a saved file
    (``random_mlp.pth``, slightly trained from an unknown init); ours is the recipe at 0 epochs
    under seed + RANDOM_TWIN_SEED_OFFSET."""
    twin = ctx.model_for(max_epochs=0, accuracy_cap=None, seed=_recipe(ctx).seed + RANDOM_TWIN_SEED_OFFSET)
    return released_abs_spearman(_own_class_maps(ctx), _twin_maps(ctx, twin))


@register_metric("invariance", direction="higher", category="robustness",
                 twins=("shifted",), reexplains=True,
                 description="|Spearman| between maps of the model and of a twin trained separately on x+1")
def invariance(ctx: MetricContext, shift: float = 1.0) -> Tensor:
    """AdaptGrad's Invariance as released: |ρ| with the maps of a twin trained separately (its own
    seed) on x + shift, explained at x + shift within the job's (unshifted) input bounds, each model
    for its own predicted class. With unshifted bounds AdaptGrad's and SmoothGrad's σ at x + shift
    differ from those at x: that is the release's measurement."""
    twin = ctx.model_for(input_shift=shift, seed=_recipe(ctx).seed + SHIFTED_TWIN_SEED_OFFSET)
    return released_abs_spearman(_own_class_maps(ctx), _twin_maps(ctx, twin, shift))


def _stability_twin(ctx: MetricContext, twin: str) -> nn.Module:
    if twin == "seed":
        return ctx.model_for(seed=_recipe(ctx).seed + 1)
    if twin == "split":
        if _recipe(ctx).split_factor < 2:
            raise ValueError("stability(twin='split') needs a recipe with split_factor ≥ 2; "
                             "use twin='seed' or set split_factor in the suite's [[models]]")
        return ctx.model_for(split_index=1 if ctx.recipe.split_index == 0 else 0)
    raise ValueError(f"stability: twin must be 'seed' or 'split', got '{twin}'")


def _stability_twins(twin: str) -> tuple[str, ...]:
    if twin not in ("auto", "seed", "split"):
        raise ValueError(f"stability: twin must be 'auto', 'seed' or 'split', got '{twin}'")
    return ("pair",) if twin == "auto" else (twin,)


def stability_twin_maps(ctx: MetricContext, twin: nn.Module, shared_noise: bool) -> Tensor:
    """The twin's maps: its own noise draws (the paper: each model's SmoothGrad is an independent
    Monte-Carlo estimate), or the job's draws replayed (``shared_noise``: variance reduction)."""
    if shared_noise:
        return explain_same_noise(ctx, twin, ctx.target)
    return ctx.explain(model=twin, generator=independent_generator(ctx.generator)).detach()


@register_metric("stability", direction="lower", category="robustness",
                 twins=lambda p: _stability_twins(p.get("twin", "auto")), reexplains=True,
                 description="‖M(x; θ₁) − M(x; θ₂)‖₂ between maps of two models of the same recipe")
def stability(ctx: MetricContext, twin: str = "auto", shared_noise: bool = False) -> Tensor:
    """Distance of the raw maps of the job's model and its twin. As in the paper, each model draws
    its own smoothing noise; ``shared_noise=True`` gives both the same draws instead, a variance
    reduction that measures the models' distance without the Monte-Carlo noise of two estimates
    (a smaller value than the paper's at finite N). ``twin="auto"`` is the split-agreement pair:
    the next seed at sf=1, the other part (and next seed) at sf ≥ 2; ``"seed"`` and ``"split"``
    force one of the two."""
    if twin == "auto":
        _recipe(ctx)
        if shared_noise:
            return l2_distance(*pair_maps(ctx))
        other = _twin(ctx, same_init=False)
    else:
        other = _stability_twin(ctx, twin)
    return l2_distance(ctx.maps, stability_twin_maps(ctx, other, shared_noise))


def max_sensitivity_of(ctx: MetricContext, noise_batches, method=None) -> Tensor:
    """max over perturbations of ‖M(x) − M(x + ε)‖_F / ‖M(x)‖_F, per sample.

    ``noise_batches`` yields ``k×B×C×H×W`` noise (float64; x + ε is rounded to float32 as Quantus
    does with its float64 noise on float32 inputs); each batch is one call of the method.
    """
    b = len(ctx.x)
    maps = ctx.maps.reshape(b, -1).double()
    denom = maps.norm(dim=1)
    best = torch.full((b,), float("-inf"), dtype=torch.float64, device=ctx.x.device)
    for eps in noise_batches:
        k = len(eps)
        xp = (ctx.x.double().unsqueeze(0) + eps).float().reshape(k * b, *ctx.x.shape[1:])
        a = ctx.explain(method, x=xp, target=ctx.target.repeat(k)).detach()
        dist = (maps.unsqueeze(0) - a.reshape(k, b, -1).double()).norm(dim=2) / denom
        best = torch.maximum(best, dist.amax(dim=0))
    return best


@register_metric("max_sensitivity", direction="lower", category="robustness", reexplains=True,
                 description="Largest relative change of the map under uniform input noise of radius lower_bound")
def max_sensitivity(ctx: MetricContext, nr_samples: PositiveInt = 200, lower_bound: float = 0.2) -> Tensor:
    """Quantus ``MaxSensitivity`` (defaults: 200 draws of U(−0.2, 0.2) noise on every feature, Frobenius
    norms, no normalisation). Noise comes from the job's generator; on the same noise the two agree.

    A method that draws from the generator too (SmoothGrad, …) is called once per perturbation, so the
    draws come in Quantus' loop order (perturbation, then its explanation) whatever the chunk size; the
    method still batches its own samples. A deterministic method gets several perturbations per call."""
    b = len(ctx.x)
    per_call = 1 if getattr(ctx.method, "stochastic", True) else max(1, min(nr_samples, ctx.chunk_size // b))

    def batches():
        for s in range(0, nr_samples, per_call):
            k = min(per_call, nr_samples - s)
            u = torch.rand((k, *ctx.x.shape), generator=ctx.generator, device=ctx.x.device, dtype=torch.float64)
            yield (2 * u - 1) * lower_bound

    return max_sensitivity_of(ctx, batches())
