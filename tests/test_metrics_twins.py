"""Correlation helpers against SciPy/skimage; fidelity, stability, consistency, invariance with known twins."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn

from bench.methods import create_method
from bench.metrics import MetricContext, create_metric
from bench.metrics.correlation import pearson, spearman, ssim_1d
from bench.metrics.robustness import noabs_scale, released_abs_spearman
from bench.models.train import Recipe
from bench.models.zoo import cnn_small


def test_spearman_equals_scipy_with_ties():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (4, 50), generator=g).double()  # many ties
    b = torch.randn(4, 50, generator=g, dtype=torch.float64)
    ref = [scipy.stats.spearmanr(x, y).statistic for x, y in zip(a.numpy(), b.numpy(), strict=True)]
    np.testing.assert_allclose(spearman(a, b).numpy(), ref, rtol=1e-12)


def test_pearson_equals_scipy():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 3, 40, generator=g, dtype=torch.float64)
    ref = [scipy.stats.pearsonr(x, y).statistic for x, y in zip(a.numpy(), b.numpy(), strict=True)]
    np.testing.assert_allclose(pearson(a, b).numpy(), ref, rtol=1e-12)


def test_ssim_1d_equals_skimage_in_float64():
    skimage_metrics = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(2)
    a = torch.randn(3, 200, generator=g, dtype=torch.float64)
    b = a + 0.5 * torch.randn(3, 200, generator=g, dtype=torch.float64)
    ref = []
    for x, y in zip(a.numpy(), b.numpy(), strict=True):
        both = np.concatenate([x, y])
        ref.append(skimage_metrics.structural_similarity(x, y, data_range=float(both.max() - both.min())))
    np.testing.assert_allclose(ssim_1d(a, b).numpy(), ref, rtol=1e-10)


def released_reference(s1: np.ndarray, s2: np.ndarray) -> float:
    """AdaptGrad's experiments/get_correlation.py, scale="noabs", for one pair of 2-D maps."""
    def noabsscale(x):
        span = abs(np.percentile(x, 99))
        with np.errstate(invalid="ignore", divide="ignore"):  # p99 = 0 gives NaN, as in the released code
            return np.clip(x / (2 * span), -1, 1)

    return abs(scipy.stats.spearmanr(noabsscale(s1).flatten(), noabsscale(s2).flatten()).statistic)


def test_released_abs_spearman_equals_the_released_code():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(4, 3, 16, 16, generator=g)
    b = a + torch.randn(4, 3, 16, 16, generator=g)
    ref = [released_reference(x.sum(0), y.sum(0)) for x, y in zip(a.double().numpy(), b.double().numpy(),
                                                                      strict=True)]
    np.testing.assert_allclose(released_abs_spearman(a, b).numpy(), ref, rtol=1e-10)


def test_noabs_scale_clips_at_half_the_p99_span():
    s = torch.arange(100, dtype=torch.float64).view(1, 10, 10)
    expected = np.clip(np.arange(100) / (2 * np.percentile(np.arange(100), 99)), -1, 1)
    np.testing.assert_allclose(noabs_scale(s)[0].numpy(), expected, rtol=1e-12)


# -- twins ----------------------------------------------------------------------------------------

class Shifted(nn.Module):
    """f'(z) = f(z − shift): a model 'trained on x + shift' that is exactly the original."""

    def __init__(self, model: nn.Module, shift: float):
        super().__init__()
        self.model, self.shift = model, shift

    def forward(self, z):
        return self.model(z - self.shift)


@pytest.fixture
def twin_ctx(tiny_cnn, shapes_batch, x_range):
    x, y = shapes_batch
    torch.manual_seed(5)
    twins = {"random": cnn_small(in_chans=3, num_classes=6).eval(), "seed": cnn_small(in_chans=3, num_classes=6).eval(),
             "shift": Shifted(tiny_cnn, 1.0)}
    asked: list[Recipe] = []
    base = Recipe("cnn-small", "shapes", max_epochs=3, accuracy_cap=0.9, seed=0)

    def load_model(recipe: Recipe) -> nn.Module:
        asked.append(recipe)
        if recipe == dataclasses.replace(base, max_epochs=0, accuracy_cap=None, seed=1000):
            return twins["random"]
        if recipe == dataclasses.replace(base, seed=1):
            return twins["seed"]
        if recipe == dataclasses.replace(base, input_shift=1.0, seed=2000):
            return twins["shift"]
        raise AssertionError(f"unexpected twin recipe {recipe}")

    method = create_method("grad")
    maps = method(tiny_cnn, x, y, x_range=x_range).detach()
    ctx = MetricContext(tiny_cnn, x, y, y, maps, method, x_range, recipe=base, load_model=load_model)
    return ctx, twins, asked


def test_invariance_of_an_exactly_shifted_twin_is_one(twin_ctx):
    ctx, _, _ = twin_ctx
    torch.testing.assert_close(create_metric("invariance")(ctx), torch.ones(len(ctx.x), dtype=torch.float64))


def _own_class_grad(model, x):
    return create_method("grad")(model, x, model(x).argmax(1)).detach()


def test_consistency_uses_an_independent_random_init_twin_and_own_classes(twin_ctx):
    ctx, twins, asked = twin_ctx
    v = create_metric("consistency")(ctx)
    assert asked[-1].max_epochs == 0 and asked[-1].accuracy_cap is None and asked[-1].seed != ctx.recipe.seed
    expected = released_abs_spearman(_own_class_grad(ctx.model, ctx.x), _own_class_grad(twins["random"], ctx.x))
    torch.testing.assert_close(v, expected)
    assert (v >= 0).all() and (v <= 1).all()


def test_consistency_random_weights_differ_from_the_trained_models_initial_weights(twin_ctx):
    from types import SimpleNamespace

    from bench.models.build import initial_model

    ctx, _, asked = twin_ctx
    create_metric("consistency")(ctx)
    data = SimpleNamespace(in_chans=3, num_classes=6, image_size=32)
    start = initial_model(ctx.recipe, data).state_dict()
    random = initial_model(asked[-1], data).state_dict()
    same_seed = initial_model(dataclasses.replace(ctx.recipe, max_epochs=0, accuracy_cap=None), data).state_dict()
    assert all(torch.equal(start[k], same_seed[k]) for k in start)  # what the twin was before the fix
    assert not any(torch.equal(start[k], random[k]) for k in start if start[k].numel() > 1 and start[k].std() > 0)


def test_invariance_twin_has_its_own_seed_and_the_jobs_bounds(twin_ctx):
    ctx, twins, asked = twin_ctx
    seen = []

    def grad(model, x, target, x_range=None, generator=None, chunk_size=None):
        seen.append((model, x_range))
        return create_method("grad")(model, x, target, x_range=x_range)

    ctx.method = grad
    create_metric("invariance")(ctx)
    assert asked[-1].input_shift == 1.0 and asked[-1].seed not in (ctx.recipe.seed, ctx.recipe.seed + 1)
    twin_ranges = [r for m, r in seen if m is twins["shift"]]
    assert len(twin_ranges) == 1
    assert all(torch.equal(a, b) for a, b in zip(twin_ranges[0], ctx.x_range, strict=True))


def test_stability_is_the_l2_distance_to_the_next_seed(twin_ctx):
    ctx, twins, asked = twin_ctx
    other = create_method("grad")(twins["seed"], ctx.x, ctx.target).detach()
    expected = (ctx.maps - other).reshape(len(ctx.x), -1).double().norm(dim=1)
    torch.testing.assert_close(create_metric("stability")(ctx), expected)
    assert asked[-1].seed == 1


def test_stability_split_twin_needs_a_split_recipe(twin_ctx):
    ctx, _, _ = twin_ctx
    with pytest.raises(ValueError, match="split_factor"):
        create_metric("stability", twin="split")(ctx)


def test_twin_metrics_outside_the_runner_name_the_fix(tiny_cnn, shapes_batch, x_range):
    x, y = shapes_batch
    ctx = MetricContext(tiny_cnn, x, y, y, torch.zeros_like(x), create_method("grad"), x_range)
    with pytest.raises(ValueError, match="run it through the runner"):
        create_metric("stability")(ctx)


def test_fidelity_of_grad_is_zero_and_of_smoothgrad_is_the_distance(tiny_cnn, shapes_batch, x_range):
    x, y = shapes_batch
    grad = create_method("grad")
    g = grad(tiny_cnn, x, y, x_range=x_range).detach()
    ctx = MetricContext(tiny_cnn, x, y, y, g, grad, x_range)
    assert create_metric("fidelity")(ctx).abs().max().item() == 0.0
    sg = create_method("smoothgrad", n=4)
    s = sg(tiny_cnn, x, y, x_range=x_range, generator=torch.Generator().manual_seed(0)).detach()
    ctx = MetricContext(tiny_cnn, x, y, y, s, sg, x_range)
    torch.testing.assert_close(create_metric("fidelity")(ctx), (s - g).reshape(len(x), -1).double().norm(dim=1))


def test_inherent_noise_metric_per_sample(tiny_cnn, shapes_batch, x_range):
    x, y = shapes_batch
    for name, positive in [("grad", False), ("smoothgrad", True), ("adaptgrad", True)]:
        m = create_method(name)
        ctx = MetricContext(tiny_cnn, x, y, y, torch.zeros_like(x), m, x_range)
        v = create_metric("inherent_noise")(ctx)
        assert v.shape == (len(x),) and ((v > 0).all() if positive else (v == 0).all())


def test_spectrum_tail_slope_metric(tiny_cnn, shapes_batch, x_range):
    x, y = shapes_batch
    maps = create_method("grad")(tiny_cnn, x, y, x_range=x_range).detach()
    ctx = MetricContext(tiny_cnn, x, y, y, maps, create_method("grad"), x_range)
    v = create_metric("spectrum_tail_slope")(ctx)
    assert v.shape == (len(x),) and torch.isfinite(v).all()


def test_released_abs_spearman_is_zero_where_the_released_code_gives_nan():
    a = torch.zeros(2, 1, 32, 32)
    a[:, 0, 3, 4] = 1.0  # p99 = 0: the released scaling divides 0 by 0
    b = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    assert np.isnan(released_reference(a[0, 0].double().numpy(), b[0, 0].double().numpy()))
    assert released_abs_spearman(a, b).tolist() == [0.0, 0.0]
