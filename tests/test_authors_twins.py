"""Consistency and invariance against the AdaptGrad release's own outputs (tests/data/authors).

The reference vectors come from AiShare-WHU/AdaptGrad@dbd957c: ``utils.visualize_noabsscale``,
``utils.get_correlation`` and ``experiments/get_correlation.py:main`` (see tests/data/authors/README.md).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bench.methods import create_method
from bench.metrics import MetricContext, create_metric
from bench.metrics.robustness import noabs_scale, released_abs_spearman
from bench.models.train import Recipe

AUTHORS = Path(__file__).parent / "data" / "authors"


@pytest.fixture(scope="module")
def ref():
    return np.load(AUTHORS / "reference_vectors.npz", allow_pickle=False)


def _tiny(name: str) -> nn.Module:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1, stride=2),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    model.load_state_dict(torch.load(AUTHORS / name, weights_only=True))
    return model.eval()


def _as_maps(maps2d: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(maps2d).unsqueeze(1)  # B×1×H×W: the channel sum is the map itself


def test_noabs_scaling_equals_the_release(ref):
    for who in ("normal", "random"):
        maps = torch.from_numpy(ref[f"consistency_maps_{who}"][:4])  # row 4 of random is a constant map
        np.testing.assert_allclose(noabs_scale(maps).reshape(4, 16, 16).numpy(),
                                   ref[f"consistency_noabsscale_{who}"][:4], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("other", ["random", "bias"])
def test_per_pair_rho_and_aggregate_equal_the_release(ref, other):
    rho = released_abs_spearman(_as_maps(ref["consistency_maps_normal"]),
                                _as_maps(ref[f"consistency_maps_{other}"])).numpy()
    expected = ref[f"consistency_rho_{other}_noabs"]
    defined = ~np.isnan(expected)
    np.testing.assert_allclose(rho[defined], np.abs(expected[defined]), rtol=1e-6)
    assert (rho[~defined] == 0).all()  # where the release's ρ is NaN, the per-sample score is 0
    # The release's aggregate drops NaN pairs: the mean over the defined pairs.
    np.testing.assert_allclose(rho[defined].mean(), ref[f"consistency_aggregate_{other}_noabs"], rtol=1e-6)


def test_consistency_explains_each_model_its_own_class(ref):
    """Model A (the job's) against model B (the random twin): each for its own predicted class, as the
    release's get_salience_mnist.py:177; rows 0–3 of the release's ρ."""
    a, b = _tiny("tiny_cnn.pt"), _tiny("tiny_cnn_b.pt")
    x = torch.from_numpy(ref["x"])
    labels = (torch.from_numpy(ref["targets"]) + 1) % 10  # a job target that is neither model's class
    assert torch.equal(b(x).argmax(1), torch.from_numpy(ref["consistency_model_b_targets"]))
    grad = create_method("grad")
    rng = (torch.full((3,), -2.117904), torch.full((3,), 2.64))
    recipe = Recipe("tiny", "none", seed=0)
    asked = []
    ctx = MetricContext(a, x, labels, labels, grad(a, x, labels, x_range=rng).detach(), grad, rng, recipe=recipe,
                        load_model=lambda r: asked.append(r) or b)
    v = create_metric("consistency")(ctx).numpy()
    np.testing.assert_allclose(v, np.abs(ref["consistency_rho_random_noabs"][:4]), rtol=1e-6)
    assert asked == [dataclasses.replace(recipe, max_epochs=0, accuracy_cap=None, seed=1000)]
