"""Localisation metrics against Quantus 0.6 at its defaults, analytic values, and suites restricting them.

Quantus is called as its users call it: NumPy ``x_batch``, ``y_batch``, the 2-D map as ``a_batch``
(the signed channel sum, what ``quantus.explain`` returns), the one-channel masks as ``s_batch``,
the model given, every constructor argument at its default but ``disable_warnings``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from bench.data.base import normalise
from bench.data.synthetic import MEAN, STD, generate_shapes
from bench.errors import SuiteError
from bench.methods import create_method
from bench.metrics import MetricContext, create_metric
from bench.models.zoo import cnn_small
from bench.suite import load_suite

quantus = pytest.importorskip("quantus")

B, S = 16, 32
QUANTUS = {"pointing_game": "PointingGame", "relevance_mass_accuracy": "RelevanceMassAccuracy",
           "relevance_rank_accuracy": "RelevanceRankAccuracy", "top_k_intersection": "TopKIntersection",
           "localisation_auc": "AUC"}
KINDS = ["random", "gradient", "mask", "outside", "constant_in_mask", "ties"]
TIE_FREE_ONLY = {"relevance_rank_accuracy", "top_k_intersection"}  # Quantus' order inside a tie is NumPy's


@pytest.fixture(scope="module")
def batch():
    x, y, masks = generate_shapes(B, S, seed=5)
    return normalise(x, MEAN, STD), y, masks


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return cnn_small(in_chans=3, num_classes=6).eval()


@pytest.fixture(scope="module")
def maps(batch, model) -> dict[str, torch.Tensor]:
    """Each kind's maps, made once."""
    return {kind: map_of(kind, *batch, model) for kind in KINDS}


def map_of(kind: str, x: torch.Tensor, y: torch.Tensor, masks: torch.Tensor, model) -> torch.Tensor:
    """``B×3×S×S`` maps of several kinds."""
    g = torch.Generator().manual_seed(1)
    m = masks.float().expand(-1, 3, -1, -1)
    if kind == "random":
        return torch.randn(B, 3, S, S, generator=g)
    if kind == "gradient":
        return create_method("grad")(model, x, y).detach()
    if kind == "mask":
        return m.clone()
    if kind == "outside":
        return 1 - m
    if kind == "constant_in_mask":  # 0.5 on the object, uniform [0, 1) elsewhere (one channel)
        maps = torch.zeros(B, 3, S, S)
        maps[:, 0] = torch.where(masks[:, 0], torch.tensor(0.5), torch.rand(B, S, S, generator=g))
        return maps
    if kind == "ties":  # nine integer levels: tie groups straddle the mask and every cut-off
        return torch.randn(B, 3, S, S, generator=g).mul(1.5).round()
    raise ValueError(kind)


def context(model, x, y, masks, maps) -> MetricContext:
    return MetricContext(model, x, y, y, maps, create_method("grad"), (x.amin(), x.amax()), masks)


def run_quantus(name: str, model, x, y, masks, maps) -> np.ndarray:
    metric = getattr(quantus, QUANTUS[name])(disable_warnings=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(),
                        a_batch=maps.double().sum(1, keepdim=True).numpy(), s_batch=masks.numpy())
    return np.asarray(scores, dtype=np.float64)


# Ties straddling the cut-off of rank accuracy and top-k: test_ties_take_the_mean_over_tie_orders.
CASES = [(name, kind) for name in QUANTUS for kind in KINDS if not (kind == "ties" and name in TIE_FREE_ONLY)]


@pytest.mark.parametrize("name, kind", CASES)
def test_equals_quantus_at_its_defaults(name, kind, batch, model, maps):
    x, y, masks = batch
    native = create_metric(name)(context(model, x, y, masks, maps[kind])).numpy()
    reference = run_quantus(name, model, x, y, masks, maps[kind])
    assert np.isfinite(reference).all()
    np.testing.assert_allclose(native, reference, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("name", sorted(TIE_FREE_ONLY))
def test_ties_take_the_mean_over_tie_orders(name, batch, model, maps):
    # Quantus takes the first K of np.argsort(-a): inside a tie NumPy's SIMD sort decides, so its value
    # is one tie order among many. The native value is the mean over tie orders: Quantus on copies of
    # the map whose ties are broken by a random jitter smaller than the gap between levels, averaged.
    x, y, masks = batch
    tied = maps["ties"]
    native = create_metric(name)(context(model, x, y, masks, tied)).numpy()
    copies = 64
    g = torch.Generator().manual_seed(2)
    jitter = torch.zeros(copies * B, 3, S, S)
    jitter[:, 0] = torch.rand(copies * B, S, S, generator=g) * 0.5  # levels are 1 apart
    draws = run_quantus(name, model, x.repeat(copies, 1, 1, 1), y.repeat(copies), masks.repeat(copies, 1, 1, 1),
                        tied.repeat(copies, 1, 1, 1) + jitter).reshape(copies, B)
    stderr = draws.std(axis=0, ddof=1) / np.sqrt(copies)
    assert (stderr > 0).any(), "the jitter must reach tie groups across the cut-off"
    assert (np.abs(draws.mean(axis=0) - native) <= 5 * stderr + 1e-12).all()
    assert ((draws.min(axis=0) <= native + 1e-12) & (native <= draws.max(axis=0) + 1e-12)).all()


def test_analytic_values(batch, model, maps):
    x, y, masks = batch
    area = masks.flatten(1).sum(1).double()
    n = S * S

    def values(kind, name, **params):
        return create_metric(name, **params)(context(model, x, y, masks, maps[kind]))

    for name in ("pointing_game", "relevance_mass_accuracy", "relevance_rank_accuracy", "localisation_auc"):
        assert torch.equal(values("mask", name), torch.ones(B, dtype=torch.float64)), name
        assert torch.equal(values("outside", name), torch.zeros(B, dtype=torch.float64)), name
    # Top-k is a precision at k: a map equal to the mask puts min(area, k) of its top k inside it.
    assert torch.equal(values("mask", "top_k_intersection", k=50), torch.ones(B, dtype=torch.float64))
    torch.testing.assert_close(values("mask", "top_k_intersection"), area.clamp(max=1000) / 1000)
    assert torch.equal(values("outside", "top_k_intersection", k=50), torch.zeros(B, dtype=torch.float64))
    # Quantus' k = 1000 on 1024 pixels reaches past every outside pixel into the object.
    torch.testing.assert_close(values("outside", "top_k_intersection"), (1000 - (n - area)).clamp(min=0) / 1000)
    # A constant map's ties: the mean over tie orders is the mask's share of the image (chance).
    flat = context(model, x, y, masks, torch.ones(B, 3, S, S))
    torch.testing.assert_close(create_metric("relevance_rank_accuracy")(flat), area / n)
    torch.testing.assert_close(create_metric("localisation_auc")(flat), torch.full((B,), 0.5, dtype=torch.float64))


def test_abs_scores_a_negative_map_on_the_object_as_one(batch, model, maps):
    x, y, masks = batch
    ctx = context(model, x, y, masks, -maps["mask"])
    assert create_metric("pointing_game")(ctx).eq(0).all()  # signed: its maximum, 0, lies outside
    for name in ("pointing_game", "relevance_rank_accuracy", "localisation_auc"):
        assert create_metric(name, abs=True)(ctx).eq(1).all(), name


def test_undefined_values_are_excluded_not_scored(batch, model, maps):
    # An empty mask leaves each metric undefined: NaN, which the runner leaves out. (Quantus' pointing
    # game gives 1.0 there: it writes its NaN into a bool array.)
    x, y, masks = batch
    masks = masks.clone()
    masks[0] = False
    masks[1] = True  # the whole image: no negatives for the AUC
    ctx = context(model, x, y, masks, maps["random"])
    for name in QUANTUS:
        values = create_metric(name)(ctx)
        assert values[0].isnan() and values[2:].isfinite().all(), name
    assert create_metric("localisation_auc")(ctx)[1].isnan()


def test_top_k_larger_than_the_image_is_refused(batch, model, maps):
    x, y, masks = batch
    with pytest.raises(ValueError, match="k = 1024 must be at least 1 and smaller than the 1024 pixels"):
        create_metric("top_k_intersection", k=1024)(context(model, x, y, masks, maps["random"]))


# -- suites: a metric restricted to some datasets --------------------------------------------------

SUITE = """
name = "t"
datasets = ["shapes", "digits"]
metrics = {metrics}
[[models]]
architecture = "cnn-small"
[[methods]]
name = "grad"
"""


def suite(tmp_path, metrics: str):
    path = tmp_path / "s.toml"
    path.write_text(SUITE.format(metrics=metrics))
    return load_suite(str(path))


def test_a_restricted_metric_runs_on_its_datasets_only(tmp_path):
    jobs = suite(tmp_path, '["ef", { name = "pointing_game", datasets = ["shapes"] },'
                           ' { name = "top_k_intersection", params = { k = 50 }, datasets = ["shapes"] }]').jobs
    metrics = {j.dataset: [(m.name, m.params) for m in j.metrics] for j in jobs}
    assert metrics == {"shapes": [("ef", {}), ("pointing_game", {}), ("top_k_intersection", {"k": 50})],
                       "digits": [("ef", {})]}
    # The restriction is not part of a job: the digits job is the job of the unrestricted suite.
    plain = suite(tmp_path, '["ef"]').jobs
    assert [j.id for j in jobs if j.dataset == "digits"] == [j.id for j in plain if j.dataset == "digits"]


@pytest.mark.parametrize("metrics, match", [
    ('["ef", { name = "pointing_game", datasets = ["shapez"] }]',
     "metrics[1].datasets names 'shapez', which is not among the suite's datasets (shapes, digits)"),
    ('["ef", "pointing_game"]', "metric 'pointing_game' needs ground-truth masks, which dataset 'digits' does not"),
    ('["ef", { name = "pointing_game", datasets = "shapes" }]', "metrics[1].datasets must be a non-empty list"),
    ('["ef", { name = "pointing_game", dataset = ["shapes"] }]', "allowed: name, params, datasets"),
    ('[{ name = "pointing_game", datasets = ["shapes"] }]', "dataset 'digits' gets no metric"),
])
def test_bad_restrictions_are_refused_in_one_line(tmp_path, metrics, match):
    with pytest.raises(SuiteError) as e:
        suite(tmp_path, metrics)
    assert match in str(e.value) and "\n" not in str(e.value)


def test_default_suite_scores_localisation_on_shapes_only():
    for job in load_suite("default").jobs:
        localisation = {m.name for m in job.metrics} & set(QUANTUS)
        assert localisation == (set(QUANTUS) if job.dataset == "shapes" else set()), job.label
