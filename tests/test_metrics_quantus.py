"""Native batched metrics against Quantus 0.6 on the same inputs, perturbations and random indices.

Tiny untrained CNN on 8 shapes images (32×32, CPU). Where Quantus draws from NumPy's global RNG,
the test seeds it, replays the same draws in the same order to get the perturbations, and hands
those to the native function; both must then agree to 1e-5 relative.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch

from bench.methods import create_method
from bench.metrics import MetricContext, create_metric
from bench.metrics.complexity import complexity, gini, sparseness
from bench.metrics.faithfulness import faithfulness_correlation_of, pixel_flipping_curve, trapezoid
from bench.metrics.randomisation import off_class_targets, randomised_layers
from bench.metrics.robustness import max_sensitivity_of

quantus = pytest.importorskip("quantus")
PER_SAMPLE = {"normalise_axes": [1, 2, 3]}
REL = 1e-5


@pytest.fixture
def ctx(tiny_cnn, shapes_batch, x_range) -> MetricContext:
    x, y = shapes_batch
    method = create_method("grad")
    maps = method(tiny_cnn, x, y, x_range=x_range).detach()
    return MetricContext(tiny_cnn, x, y, y, maps, method, x_range, generator=torch.Generator().manual_seed(0),
                         chunk_size=64)


def explain(model, inputs, targets, **_):
    x = torch.as_tensor(inputs)
    return create_method("grad")(model, x, torch.as_tensor(targets).long()).detach().numpy()


def q_call(metric, ctx: MetricContext, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return metric(model=ctx.model, x_batch=ctx.x.numpy(), y_batch=ctx.target.numpy(), a_batch=ctx.maps.numpy(),
                      explain_func=explain, channel_first=True, device="cpu", **kw)


def close(native, reference, rel=REL, abs=0.0):
    reference = np.asarray(reference, dtype=np.float64)
    assert np.isfinite(reference).all(), "a reference that is NaN everywhere would compare equal"
    np.testing.assert_allclose(np.asarray(native, dtype=np.float64), reference, rtol=rel, atol=abs)


# -- complexity -------------------------------------------------------------------------------

def test_sparseness_equals_quantus(ctx):
    # Quantus' default normalise_by_max normalises over the whole batch (normalise_axes=None), so each
    # sample is its own call: per-sample normalisation with every Quantus argument at its default.
    default = quantus.Sparseness(disable_warnings=True)
    one_by_one = [q_call(default, dataclasses.replace(ctx, x=ctx.x[i : i + 1], target=ctx.target[i : i + 1],
                                                       maps=ctx.maps[i : i + 1]))[0] for i in range(len(ctx.x))]
    close(sparseness(ctx), one_by_one)
    close(sparseness(ctx), q_call(quantus.Sparseness(normalise_func_kwargs=PER_SAMPLE, disable_warnings=True), ctx))
    close(gini(ctx.maps, normalise=False), q_call(quantus.Sparseness(normalise=False, disable_warnings=True), ctx))


def test_complexity_equals_quantus(ctx):
    close(complexity(ctx), q_call(quantus.Complexity(normalise_func_kwargs=PER_SAMPLE, disable_warnings=True), ctx))


# -- faithfulness -----------------------------------------------------------------------------

@pytest.mark.parametrize("softmax", [True, False])
def test_pixel_flipping_equals_quantus(ctx, softmax):
    q = quantus.PixelFlipping(features_in_step=64, return_auc_per_sample=True, disable_warnings=True,
                              normalise_func_kwargs=PER_SAMPLE)
    native = create_metric("pixel_flipping", features_in_step=64, softmax=softmax)(ctx)
    close(native, q_call(q, ctx, softmax=softmax))


def test_pixel_flipping_curve_equals_quantus_curve(ctx):
    q = quantus.PixelFlipping(features_in_step=128, disable_warnings=True, perturb_baseline="white")
    curve = pixel_flipping_curve(ctx.model, ctx.x, ctx.target, ctx.maps, 128, "white", softmax=True)
    close(curve, q_call(q, ctx))
    close(trapezoid(curve), np.trapezoid(np.asarray(q_call(q, ctx)), axis=1))


def replay_subsets(seed: int, runs: int, batch: int, n: int, size: int) -> np.ndarray:
    """FaithfulnessCorrelation's draws from NumPy's global RNG: per run, one ``choice`` per sample,
    then the ``uniform(size=B)`` that ``get_baseline_dict`` draws on every perturbation call."""
    np.random.seed(seed)
    out = []
    for _ in range(runs):
        out.append(np.stack([np.random.choice(n, size, replace=False) for _ in range(batch)]))
        np.random.uniform(0.0, 1.0, size=batch)
    return np.stack(out)


def test_faithfulness_correlation_equals_quantus(ctx):
    runs, size = 20, 100
    subsets = replay_subsets(7, runs, len(ctx.x), ctx.x[0].numel(), size)
    native = faithfulness_correlation_of(ctx.model, ctx.x, ctx.target, ctx.maps, torch.from_numpy(subsets))
    q = quantus.FaithfulnessCorrelation(nr_runs=runs, subset_size=size, return_aggregate=False,
                                        normalise_func_kwargs=PER_SAMPLE, disable_warnings=True)
    np.random.seed(7)
    # A correlation lies in [−1, 1]: near 0 (one image gives −0.0175) float32 logits put ~2e-7 of
    # absolute rounding on it, which rtol alone would call 1e-5 of a difference.
    close(native, q_call(q, ctx), abs=1e-6)


def test_faithfulness_correlation_metric_is_per_sample_and_seeded(ctx):
    m = create_metric("faithfulness_correlation", nr_runs=10, subset_size=50)
    a = m(ctx)
    ctx.generator = torch.Generator().manual_seed(0)
    b = m(ctx)
    assert a.shape == (len(ctx.x),) and torch.isfinite(a).all() and torch.equal(a, b)


# -- robustness -------------------------------------------------------------------------------

def test_max_sensitivity_equals_quantus(ctx):
    steps, b, n = 6, len(ctx.x), ctx.x[0].numel()
    np.random.seed(3)
    noise = np.stack([np.random.uniform(-0.2, 0.2, size=(b, n)) for _ in range(steps)])
    batches = [torch.from_numpy(noise[s : s + 4]).reshape(-1, *ctx.x.shape) for s in range(0, steps, 4)]
    native = max_sensitivity_of(ctx, batches)
    np.random.seed(3)
    close(native, q_call(quantus.MaxSensitivity(nr_samples=steps, disable_warnings=True), ctx))


def test_max_sensitivity_metric_runs(ctx):
    v = create_metric("max_sensitivity", nr_samples=5)(ctx)
    assert v.shape == (len(ctx.x),) and (v > 0).all()


@pytest.mark.parametrize("method", [create_method("grad"), create_method("smoothgrad", n=3)], ids=["grad", "sg"])
def test_max_sensitivity_does_not_depend_on_the_chunk_size(ctx, method):
    """The chunk size is not part of a job's configuration, so it must not change a number: a
    stochastic method's draws interleave with the perturbations in the same order for every chunk."""
    values = []
    for chunk in (8, 24, 1000):
        c = MetricContext(ctx.model, ctx.x, ctx.y, ctx.target, ctx.maps, method, ctx.x_range,
                          generator=torch.Generator().manual_seed(0), chunk_size=chunk)
        values.append(create_metric("max_sensitivity", nr_samples=5)(c))
    for v in values[1:]:
        torch.testing.assert_close(v, values[0], rtol=1e-5, atol=1e-7)


# -- randomisation ----------------------------------------------------------------------------

def test_off_class_targets_are_quantus_draws(ctx):
    np.random.seed(42)
    draw = np.random.randint(0, 5, len(ctx.target))
    classes = [[c for c in range(6) if c != t] for t in ctx.target.tolist()]
    assert off_class_targets(ctx.target, 6, 42).tolist() == [cl[d] for cl, d in zip(classes, draw, strict=True)]


def test_random_logit_equals_quantus(ctx):
    q = quantus.RandomLogit(num_classes=6, normalise_func_kwargs=PER_SAMPLE, disable_warnings=True)
    # skimage computes SSIM in float32 on float32 maps: agreement to its rounding, not to float64's.
    close(create_metric("random_logit")(ctx), q_call(q, ctx), rel=1e-4, abs=1e-6)


def test_mprt_layers_equal_quantus(ctx):
    q = quantus.MPRT(normalise_func_kwargs=PER_SAMPLE, disable_warnings=True)
    scores = q_call(q, ctx)
    layers = [k for k in scores if k != "original"]
    assert layers == [name for name, _ in randomised_layers(ctx.model)]
    per_layer = np.array([scores[k] for k in layers])
    close(create_metric("mprt", reduce="last")(ctx), per_layer[-1])
    close(create_metric("mprt")(ctx), per_layer.mean(axis=0))


def test_mprt_leaves_the_model_and_global_rng_alone(ctx):
    before = [p.clone() for p in ctx.model.parameters()]
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    create_metric("mprt")(ctx)
    assert torch.equal(torch.rand(3), expected)
    assert all(torch.equal(a, b) for a, b in zip(before, ctx.model.parameters(), strict=True))


def test_random_subsets_are_uniform_subsets_without_replacement():
    from bench.metrics.faithfulness import random_subsets

    s = random_subsets(400, 2, 10, 3, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert s.shape == (400, 2, 3)
    assert all(len(set(row.tolist())) == 3 for row in s.reshape(-1, 3))  # no repeats within a subset
    counts = torch.bincount(s.flatten(), minlength=10).double()  # each feature in 3/10 of the subsets
    expected = 400 * 2 * 3 / 10
    assert ((counts - expected).abs() < 4 * (expected * 0.7) ** 0.5).all()
