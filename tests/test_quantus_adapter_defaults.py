"""Adapter defaults that make Quantus classes run as named: per-sample scores, refused classes, listing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.cli import main
from bench.errors import GradBenchError
from bench.methods import create_method
from bench.metrics import MetricContext, create_metric
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
