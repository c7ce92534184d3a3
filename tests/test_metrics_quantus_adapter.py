"""The ``quantus:<ClassName>`` adapter: registry resolution, suite validation, per-sample scores, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench import registry
from bench.cli import main
from bench.errors import GradBenchError, SuiteError, UnknownNameError
from bench.methods import create_method
from bench.metrics import MetricContext, create_metric
from bench.metrics.complexity import gini
from bench.metrics.correlation import normalise_by_max
from bench.metrics.quantus_adapter import QuantusMetricError
from bench.run.results import load_rows
from bench.run.runner import Runner
from bench.suite import load_suite

quantus = pytest.importorskip("quantus")


@pytest.fixture
def ctx(tiny_cnn, x_range):
    from bench.data.base import normalise
    from bench.data.synthetic import MEAN, STD, generate_shapes

    x, y, masks = generate_shapes(6, 32, seed=1)
    x = normalise(x, MEAN, STD)
    method = create_method("grad")
    maps = method(tiny_cnn, x, y, x_range=x_range).detach()
    return MetricContext(tiny_cnn, x, y, y, maps, method, x_range, masks=masks,
                         generator=torch.Generator().manual_seed(0))


def test_registry_resolves_quantus_names_with_their_declarations():
    assert "quantus:PixelFlipping" in registry.metrics
    m = create_metric("quantus:PixelFlipping", features_in_step=64)
    assert (m.direction, m.category) == ("lower", "faithfulness")
    assert create_metric("quantus:Sparseness").direction == "higher"
    assert create_metric("quantus:PointingGame").category == "localisation"
    assert create_metric("quantus:Completeness").category == "axiomatic"


def test_unknown_quantus_class_suggests_the_name():
    with pytest.raises(UnknownNameError, match="did you mean 'quantus:PixelFlipping'"):
        registry.metrics.get("quantus:PixelFliping")
    assert "quantus:Nope" not in registry.metrics


def test_unknown_quantus_parameter_names_the_accepted_ones():
    with pytest.raises(ValueError, match="features_in_step"):
        create_metric("quantus:PixelFlipping", feature_in_step=64)


def test_adapter_normalises_per_sample(ctx):
    v = create_metric("quantus:Sparseness")(ctx)
    np.testing.assert_allclose(v.numpy(), gini(normalise_by_max(ctx.maps)).numpy(), rtol=1e-5)


def test_adapter_equals_native_pixel_flipping(ctx):
    q = create_metric("quantus:PixelFlipping", features_in_step=128)(ctx)
    n = create_metric("pixel_flipping", features_in_step=128)(ctx)
    np.testing.assert_allclose(q.numpy(), n.numpy(), rtol=1e-5)


def test_adapter_runs_re_explaining_metrics_with_the_jobs_method(ctx):
    v = create_metric("quantus:RandomLogit")(ctx)  # num_classes from the model
    np.testing.assert_allclose(v.numpy(), create_metric("random_logit")(ctx).numpy(), rtol=1e-4, atol=1e-6)
    v = create_metric("quantus:MPRT")(ctx)  # return_last_correlation by default
    np.testing.assert_allclose(v.numpy(), create_metric("mprt", reduce="last")(ctx).numpy(), rtol=1e-5)


def test_localisation_metrics_get_the_masks(ctx):
    v = create_metric("quantus:RelevanceMassAccuracy")(ctx)
    a = normalise_by_max(ctx.maps.sum(1)).reshape(len(ctx.x), -1)  # relevance inside the mask / total
    m = ctx.masks.reshape(len(ctx.x), -1)
    np.testing.assert_allclose(v.numpy(), ((a * m).sum(1) / a.sum(1)).numpy(), rtol=1e-5)
    ctx.masks = None
    with pytest.raises(QuantusMetricError, match="ground-truth masks"):
        create_metric("quantus:PointingGame")(ctx)


def test_nan_scores_raise(ctx):
    ctx.model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 6)).eval()
    torch.nn.init.zeros_(ctx.model[1].weight)  # constant scores: no score drop, Pearson is NaN
    with pytest.raises(QuantusMetricError, match="NaN/inf"):
        create_metric("quantus:FaithfulnessCorrelation", nr_runs=5, subset_size=10, return_aggregate=False)(ctx)


def test_quantus_exceptions_are_wrapped(ctx):
    with pytest.raises(QuantusMetricError, match="quantus:PixelFlipping raised"):
        create_metric("quantus:PixelFlipping", features_in_step=1000)(ctx)  # does not divide 32·32


def test_suite_validation_accepts_quantus_names(tiny_suite):
    suite = load_suite(tiny_suite(metrics=("ef", "quantus:Sparseness")))
    assert suite.jobs[0].metrics[1].name == "quantus:Sparseness"
    with pytest.raises(SuiteError, match="did you mean 'quantus:Sparseness'"):
        load_suite(tiny_suite(metrics=("quantus:Sparsenes",)))


def test_runner_end_to_end_with_twins_and_quantus(tiny_suite, tmp_path):
    metrics = ("ef", "spectrum_tail_slope", "fidelity", "inherent_noise", "stability", "consistency",
               "invariance", "quantus:Sparseness")
    suite = load_suite(tiny_suite(metrics=metrics, methods=("smoothgrad",)))
    report = Runner(tmp_path, device="cpu", progress=False).run(suite)
    assert report.failed == []
    rows = load_rows(tmp_path / suite.name)
    assert set(rows["metric"]) == set(metrics)
    assert np.isfinite(rows["value"]).all()
    assert rows.set_index("metric").loc["quantus:Sparseness", "direction"] == "higher"


# Issue 18 item 10: the adapter's defaults (FaithfulnessCorrelation, Focus, the listing line).


def test_faithfulness_correlation_runs_without_return_aggregate(ctx):
    params = {"nr_runs": 8, "subset_size": 64}
    np.random.seed(0)  # Quantus draws its subsets from NumPy's global RNG
    ours = create_metric("quantus:FaithfulnessCorrelation", **params)(ctx).numpy()
    np.random.seed(0)
    native = quantus.FaithfulnessCorrelation(
        **params, return_aggregate=False, disable_warnings=True, display_progressbar=False,
        normalise_func_kwargs={"normalise_axes": [1, 2, 3]},
    )(model=ctx.model, x_batch=ctx.x.numpy(), y_batch=ctx.target.numpy(), a_batch=ctx.maps.numpy(),
      channel_first=True, device="cpu", batch_size=len(ctx.x))
    assert ours.shape == (6,)
    np.testing.assert_allclose(ours, np.asarray(native), rtol=1e-6)


def test_focus_is_refused_at_suite_validation_with_the_reason(tiny_suite):
    with pytest.raises(GradBenchError, match="mosaic"):
        load_suite(tiny_suite(metrics=("ef", "quantus:Focus")))


def test_list_metrics_mentions_the_quantus_prefix(capsys):
    assert main(["list", "metrics"]) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("quantus:<Class>")
