import numpy as np
import pytest
import scipy.stats
import torch

from bench.metrics import MetricContext, create_metric
from bench.metrics.agreement import topk_intersection, twin_changes
from bench.metrics.correlation import spearman
from bench.models.train import Recipe
from bench.run.results import load_rows
from bench.run.runner import Runner
from bench.suite import load_suite


@pytest.mark.parametrize("norm_product", [False, True])
def test_spearman_equals_scipy_with_ties(norm_product):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5, 200, generator=g).double()
    b = (a + torch.randn(5, 200, generator=g)).round(decimals=1)  # ties in b
    ours = spearman(a, b, norm_product=norm_product)
    for i in range(5):
        ref = scipy.stats.spearmanr(a[i].numpy(), b[i].numpy()).statistic
        assert ours[i].item() == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("norm_product", [False, True])
def test_spearman_of_a_constant_map_is_nan_as_scipy(norm_product):
    # scipy.stats.spearmanr(constant, ramp) is NaN (with a ConstantInputWarning)
    assert spearman(torch.ones(1, 10), torch.arange(10.0)[None], norm_product=norm_product).isnan().all()


def test_split_rank_corr_scores_a_constant_map_zero(shapes_batch):
    """The call site's rule: a map with no ranking agrees with nothing (0), where Spearman is NaN."""
    x, y = shapes_batch
    flat = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(x[0].numel(), 6))
    torch.nn.init.zeros_(flat[1].weight)  # the score ignores the input: every gradient map is 0
    ctx, _ = _ctx(flat, flat, x, y % 6, "grad")
    assert torch.equal(create_metric("split_rank_corr")(ctx), torch.zeros(len(x), dtype=torch.float64))


def test_topk_of_identical_maps_is_one():
    s = torch.randn(3, 1024, generator=torch.Generator().manual_seed(1))
    assert torch.equal(topk_intersection(s, s.clone(), 100), torch.ones(3, dtype=torch.float64))


def test_topk_of_a_map_and_its_negation():
    # values 0..15, k=10: top-10 of s is {6..15}, top-10 of −s is {0..9}; they share {6,7,8,9}.
    s = torch.arange(16.0)[None]
    assert topk_intersection(s, -s, 10).item() == pytest.approx(0.4)
    # with n ≥ 2k they share nothing
    s = torch.arange(1024.0)[None]
    assert topk_intersection(s, -s, 100).item() == 0.0


def test_topk_k_larger_than_the_map():
    with pytest.raises(ValueError, match="k=100 must be in 1..64"):
        topk_intersection(torch.zeros(1, 64), torch.zeros(1, 64), 100)


def test_twins():
    r = Recipe("cnn-small", "shapes", seed=3)
    assert twin_changes(r) == {"seed": 4}
    r8 = Recipe("cnn-small", "shapes", seed=3, split_factor=8)
    assert twin_changes(r8) == {"split_index": 1, "seed": 4}
    assert twin_changes(r8, same_init=True) == {"split_index": 1}


def _ctx(model, twin, x, y, method):
    from bench.methods import create_method

    m = create_method(method, **({"n": 4} if method == "smoothgrad" else {}))
    rng = (torch.full((3,), -2.0), torch.full((3,), 2.0))
    gen = torch.Generator().manual_seed(0)
    maps = m(model, x, y, x_range=rng, generator=gen)
    loaded = []
    ctx = MetricContext(model, x, y, y, maps, m, rng, generator=gen, recipe=Recipe("cnn-small", "shapes"),
                        load_model=lambda r: loaded.append(r) or twin)
    return ctx, loaded


@pytest.mark.parametrize("method", ["grad", "smoothgrad"])
def test_a_model_agrees_with_itself_under_shared_noise(tiny_cnn, shapes_batch, method):
    x, y = shapes_batch
    y = y % 6
    ctx, loaded = _ctx(tiny_cnn, tiny_cnn, x, y, method)
    # shared_noise replays the job's draws for the twin, so even SmoothGrad agrees exactly
    kw = {"shared_noise": True}
    assert torch.allclose(create_metric("split_rank_corr", **kw)(ctx), torch.ones(len(x), dtype=torch.float64))
    assert torch.equal(create_metric("split_topk_intersection", **kw)(ctx), torch.ones(len(x), dtype=torch.float64))
    assert torch.equal(create_metric("split_l2", **kw)(ctx), torch.zeros(len(x), dtype=torch.float64))
    assert torch.equal(create_metric("split_prediction_agreement")(ctx), torch.ones(len(x), dtype=torch.float64))
    assert torch.allclose(create_metric("split_prediction_corr")(ctx), torch.ones(len(x), dtype=torch.float64))
    assert [r.seed for r in loaded] == [1]  # sf=1: the twin is seed + 1, loaded once for all metrics


def test_the_twin_draws_its_own_noise_by_default(tiny_cnn, shapes_batch):
    """The paper explains each model on its own: with the model as its own twin, a deterministic method
    agrees exactly and SmoothGrad does not (its Monte-Carlo error is part of the disagreement)."""
    x, y = shapes_batch
    ctx, _ = _ctx(tiny_cnn, tiny_cnn, x, y % 6, "grad")
    assert torch.equal(create_metric("split_l2")(ctx), torch.zeros(len(x), dtype=torch.float64))
    ctx, _ = _ctx(tiny_cnn, tiny_cnn, x, y % 6, "smoothgrad")
    l2 = create_metric("split_l2")(ctx)
    assert (l2 > 0).all()
    rc = create_metric("split_rank_corr")(ctx)
    assert (rc < 1).all()
    # the twin's maps are the method on the twin's own stream, reproducibly
    from bench.metrics.agreement import independent_generator

    theirs = ctx.method(tiny_cnn, x, ctx.y, x_range=ctx.x_range, generator=independent_generator(ctx.generator))
    assert torch.allclose(l2, (ctx.maps - theirs).double().flatten(1).norm(dim=1))


def test_split_l2_and_rank_corr_of_two_models(tiny_cnn, shapes_batch):
    x, y = shapes_batch
    torch.manual_seed(1)
    from bench.models.zoo import cnn_small

    other = cnn_small(in_chans=3, num_classes=6).eval()
    ctx, _ = _ctx(tiny_cnn, other, x, y % 6, "grad")
    l2 = create_metric("split_l2")(ctx)
    g1, g2 = ctx.maps, ctx.method(other, x, y % 6)
    assert torch.allclose(l2, (g1 - g2).flatten(1).norm(dim=1).double())
    rc = create_metric("split_rank_corr")(ctx)
    ref = [scipy.stats.spearmanr(g1[i].sum(0).abs().flatten().numpy(), g2[i].sum(0).abs().flatten().numpy()).statistic
           for i in range(len(x))]  # the paper's |channel sum|
    np.testing.assert_allclose(rc.numpy(), ref, atol=1e-10)
    top = create_metric("split_topk_intersection", k=50)(ctx)
    a1, a2 = g1.sum(1).abs().flatten(1), g2.sum(1).abs().flatten(1)
    shared = [len(set(a1[i].topk(50).indices.tolist()) & set(a2[i].topk(50).indices.tolist())) / 50
              for i in range(len(x))]
    np.testing.assert_allclose(top.numpy(), shared)


def test_split_prediction_corr_is_scipys_spearman_of_the_softmax_vectors(tiny_cnn, shapes_batch):
    x, y = shapes_batch
    torch.manual_seed(1)
    from bench.models.zoo import cnn_small

    other = cnn_small(in_chans=3, num_classes=6).eval()
    ctx, _ = _ctx(tiny_cnn, other, x, y % 6, "grad")
    v = create_metric("split_prediction_corr")(ctx)
    with torch.no_grad():
        p1, p2 = tiny_cnn(x).softmax(1).double().numpy(), other(x).softmax(1).double().numpy()
    ref = [scipy.stats.spearmanr(p1[i], p2[i]).statistic for i in range(len(x))]
    np.testing.assert_allclose(v.numpy(), ref, atol=1e-12)
    assert not np.allclose(ref, 1.0)  # two different models: the test can tell them apart


SUITE = """
name = "split-tiny"
samples = 6
datasets = [{ name = "shapes", params = { n_train = 300, n_test = 20 } }]
metrics = ["split_rank_corr", "split_topk_intersection", "split_l2", "split_prediction_agreement",
           "split_prediction_corr"]
[[models]]
architecture = "cnn-small"
split_factor = [1, 2]
max_epochs = 1
lr = 1e-3
batch_size = 64
[[methods]]
name = "grad"
"""


def test_split_suite_end_to_end(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(SUITE)
    suite = load_suite(str(path))
    assert [j.recipe.split_factor for j in suite.jobs] == [1, 2]
    report = Runner(tmp_path / "results", device="cpu", progress=False).run(suite)
    assert not report.failed, report.failed
    table = load_rows(tmp_path / "results" / "split-tiny")
    assert table["model_train_accuracy"].between(0, 1).all()  # each model's train and test accuracy
    assert table["model_test_accuracy"].between(0, 1).all()
    rows = table.set_index(["metric", "model_recipe"])["value"]
    assert len(rows) == 10
    for metric, lo, hi in [("split_rank_corr", -1, 1), ("split_topk_intersection", 0, 1), ("split_l2", 0, 1e6),
                           ("split_prediction_agreement", 0, 1), ("split_prediction_corr", -1, 1)]:
        assert rows[metric].between(lo, hi).all()
