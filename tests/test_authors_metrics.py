"""GradBench's metrics against outputs of the authors' own released functions.

``tests/data/authors/reference_vectors.npz`` (see its README: repository, commit, file:function).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.aggregates import aggregate_values
from bench.board.stats import bootstrap_means
from bench.methods import create_method
from bench.metrics import MetricContext, create_metric
from bench.metrics.complexity import gini
from bench.metrics.information import curve_auc, median_curve_auc, pic_curve, pic_images, webp_bytes

AUTHORS = Path(__file__).parent / "data" / "authors" / "reference_vectors.npz"


@pytest.fixture(scope="module")
def ref():
    return np.load(AUTHORS, allow_pickle=False)


def context(maps: torch.Tensor, **kw) -> MetricContext:
    b = len(maps)
    x = torch.zeros(b, *maps.shape[1:])
    return MetricContext(torch.nn.Identity(), x, torch.zeros(b, dtype=torch.long), torch.zeros(b, dtype=torch.long),
                         maps, None, (torch.zeros(maps.shape[1]), torch.ones(maps.shape[1])), **kw)


# -- AdaptGrad's Sparseness (AG-repo metrics/sparseness.py:gini on the saved channel sum) ---------------

def test_sparseness_2d_equals_release(ref):
    maps = {n: ref[f"adaptgrad_{n}_maps"] for n in ref["sparseness2d_method_names"]}
    expected = ref["sparseness2d_values"]
    metric = create_metric("sparseness_2d")
    for k, name in enumerate(ref["sparseness2d_method_names"]):
        got = metric(context(torch.from_numpy(maps[name]))).numpy()
        np.testing.assert_allclose(got, expected[k], rtol=1e-5, err_msg=str(name))


def test_gini_scales_as_released(ref):
    m = torch.from_numpy(ref["sparseness2d_maps"][0, 0]).double().reshape(1, -1)
    for c, raw, norm in zip(ref["gini_scale_factors"], ref["gini_scale_values_raw"],
                            ref["gini_scale_values_maxnorm"], strict=True):
        assert gini(c * m, normalise=False).item() == pytest.approx(raw, rel=1e-5)
        assert gini(c * m).item() == pytest.approx(norm, rel=1e-5)


def test_gini_special_values(ref):
    one_hot = torch.zeros(1, 224 * 224)
    one_hot[0, 17] = 1
    maps = {"onehot_224sq": one_hot, "constant_ones_1024": torch.ones(1, 1024),
            "ramp_0_to_1023": torch.arange(1024, dtype=torch.float64)[None]}
    for name, value in zip(ref["gini_special_names"], ref["gini_special_values"], strict=True):
        assert gini(maps[str(name)], normalise=False).item() == pytest.approx(value, rel=1e-5, abs=1e-12)


# -- ΔEF (CF-repo: the difference of the mean EFs, interactive/plots.py:pivot_expliners) ------------------

def delta_ef_job(maps: torch.Tensor, grad_maps: torch.Tensor) -> tuple[np.ndarray, float]:
    """The metric's per-sample values and the job value the runner makes of them."""
    metric = create_metric("delta_ef")
    ctx = context(maps)
    ctx.cache["maps:grad"] = grad_maps  # what ctx.reference_maps("grad") hands the metric
    values = metric(ctx).numpy()
    return values, float(aggregate_values(metric.aggregate, values))


def test_delta_ef_of_grad_is_exactly_zero():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.LazyLinear(5))
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    model(x)
    grad = create_method("grad")
    maps = grad(model, x, torch.tensor([0, 1, 2]))
    ctx = MetricContext(model, x, torch.zeros(3, dtype=torch.long), torch.tensor([0, 1, 2]), maps, grad,
                        (x.amin(), x.amax()))
    values = create_metric("delta_ef")(ctx).numpy()
    assert (values == 0).all() and aggregate_values("abs_mean", values) == 0


def test_delta_ef_is_a_difference_of_means_when_gaps_cancel():
    g = torch.Generator().manual_seed(3)
    p, q = torch.randn(1, 3, 16, 16, generator=g), torch.randn(1, 3, 16, 16, generator=g).cumsum(-1)
    values, value = delta_ef_job(torch.cat([p, q]), torch.cat([q, p]))  # signed gaps +d and −d
    d = abs(values[0])
    assert d > 1e-5 and values[1] == -values[0]
    assert value == 0.0 and np.abs(values).mean() == pytest.approx(d)  # the old per-image |gap| read d
    # the CI resamples the signed gaps and takes |mean| of each resample: replicates are 0 or d, never d/2·sign
    reps = bootstrap_means([values], resamples=200, seed=0, kind="abs_mean")
    assert set(np.round(reps / d, 9)) <= {0.0, 0.5, 1.0} and reps.min() >= 0


@pytest.mark.parametrize("tag", ["relu", "sp1"])
def test_delta_ef_equals_release(ref, tag):
    # the release's per-image rank maps (compute_grad / compute_explainers, measure_grads) → its EFs and gap
    vg = torch.from_numpy(ref[f"ef_{tag}_vg_rank_maps"])[:, None]
    ig = torch.from_numpy(ref[f"ef_{tag}_ig_rank_maps"])[:, None]
    values, value = delta_ef_job(ig, vg)
    np.testing.assert_allclose(values, ref[f"ef_{tag}_ig_values"] - ref[f"ef_{tag}_vg_values"], rtol=1e-5,
                               atol=1e-12)
    assert value == pytest.approx(float(ref[f"delta_ef_{tag}_ig_diff_of_means"]), rel=1e-5)


def test_delta_ef_synthetic_release_aggregate(ref):
    diffs = ref["delta_ef_synth_x_values"] - ref["delta_ef_synth_vg_values"]
    assert aggregate_values("abs_mean", diffs) == pytest.approx(float(ref["delta_ef_synth_diff_of_means"]), rel=1e-9)
    assert np.abs(diffs).mean() == pytest.approx(float(ref["delta_ef_synth_mean_abs_diff"]), rel=1e-9)


# -- Information Level (AG-repo metrics/pic.py compute_pic_metric, aggregate_individual_pic_results) --------

@pytest.mark.parametrize("k", [pytest.param(0, marks=pytest.mark.slow), pytest.param(1, marks=pytest.mark.slow)])
def test_pic_curves_and_median_auc_equal_release(ref, k):
    """Our blur, WebP entropy, curve and median-curve aggregate on the release's images, saliency, masks
    and model scores (``pic_<name>_predictions``: [fully blurred, 6 thresholds, original])."""
    name = str(ref["pic_explainer_names"][k])
    thresholds = tuple(float(t) for t in ref["pic_thresholds"])
    preds, curves_y, aucs = ref[f"pic_{name}_predictions"], ref[f"pic_{name}_curve_y"], ref[f"pic_{name}_auc"]
    curves, row = [], 0
    for i, img in enumerate(ref["pic_images_uint8"]):
        for m, mask in enumerate(ref["pic_random_masks"][i, k]):
            if not ref["pic_status"][i, k, m]:
                continue
            entropy = [webp_bytes(im) for im in [img, *pic_images(img, ref["pic_saliency"][i, k], mask, thresholds)]]
            p = preds[row]
            curve = pic_curve((entropy[0], p[-1]), list(zip(entropy[1:], p[:-1], strict=True)), min_pred_value=0.8)
            np.testing.assert_allclose(curve, curves_y[row], rtol=1e-5, atol=1e-7)
            assert curve_auc(curve) == pytest.approx(aucs[row], rel=1e-5)
            curves.append(curve)
            row += 1
    assert row == len(preds)
    assert median_curve_auc(curves) == pytest.approx(float(ref[f"pic_{name}_median_auc"]), rel=1e-5)


def test_pic_curves_of_one_image_equal_release(ref):
    """The fast subset of the test above: image 0's kept curves for ig_w."""
    thresholds = tuple(float(t) for t in ref["pic_thresholds"])
    img, row = ref["pic_images_uint8"][0], 0
    for m in np.flatnonzero(ref["pic_status"][0, 0])[:3]:
        images = [img, *pic_images(img, ref["pic_saliency"][0, 0], ref["pic_random_masks"][0, 0, m], thresholds)]
        entropy, p = [webp_bytes(im) for im in images], ref["pic_ig_w_predictions"][row]
        curve = pic_curve((entropy[0], p[-1]), list(zip(entropy[1:], p[:-1], strict=True)), min_pred_value=0.8)
        np.testing.assert_allclose(curve, ref["pic_ig_w_curve_y"][row], rtol=1e-5, atol=1e-7)
        row += 1
    assert row > 0


# -- the declared aggregate in the board's cell bootstrap ----------------------------------------------------

def test_board_cell_uses_the_declared_aggregate():
    import pandas as pd

    from bench.board.stats import CELL, aggregate

    signed = np.array([2e-5, -2e-5, 1e-5, -1e-5])
    base = dict.fromkeys(CELL, "x") | {"direction": "lower", "category": "faithfulness", "stderr": 0.0, "n": 4}
    rows = pd.DataFrame([base | {"job_id": "j", "metric": "delta_ef", "aggregate": "abs_mean", "value": 0.0},
                         base | {"job_id": "j", "metric": "information_level", "aggregate": "reported",
                                 "value": 0.9}])
    samples = pd.DataFrame({"job_id": "j", "metric": ["delta_ef"] * 4 + ["information_level"] * 4,
                            "sample": [0, 1, 2, 3] * 2, "value": [*signed, 0.5, 0.6, 0.7, 0.8]})
    cells = aggregate(rows, samples).set_index("metric")
    assert cells.loc["delta_ef", "low"] == 0 and 0 < cells.loc["delta_ef", "high"] <= 2e-5  # |mean| ≥ 0
    reported = cells.loc["information_level"]
    assert reported["value"] == 0.9 and reported["low"] <= 0.9 <= reported["high"]  # re-centred on the value
    assert reported["high"] - reported["low"] < 0.3
