"""The metric contract, for every registered metric: values, NaN policy, declarations true to behaviour.

Each metric runs on a tiny batch with a context that provides only what it declares: no masks
unless ``masks``, no twin models unless ``twins`` (and then only twins of the declared kinds), and
a job method that refuses to be called unless ``reexplains``. So a declaration that is missing
fails here, and one that is declared but never used fails too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import bench
from bench.cli import main
from bench.data.base import normalise
from bench.data.synthetic import MEAN, STD, generate_shapes
from bench.errors import MethodOutputError, SuiteError
from bench.methods import create_method
from bench.metrics.base import CATEGORIES, DIRECTIONS, TWIN_KINDS, Metric, MetricContext, SideTable, register_metric
from bench.metrics.spectral import SPECTRA
from bench.models.train import Recipe
from bench.models.zoo import cnn_small
from bench.run.results import load_side
from bench.run.runner import Runner
from bench.suite import load_suite

RESULTS = Path(__file__).resolve().parent.parent / "results"
# Built-in (and entry-point) metrics; names starting "test_" are registered by test modules.
NATIVE = [n for n in bench.list_metrics() if not n.startswith(("quantus:", "test_"))]
QUANTUS = ["quantus:Sparseness", "quantus:AttributionLocalisation"]  # one plain, one reading masks
# Fewer draws, runs and steps than the defaults: the contract, not the protocol, is under test.
FAST: dict[str, dict[str, Any]] = {"max_sensitivity": {"nr_samples": 3}, "faithfulness_correlation": {"nr_runs": 5},
                                   "pixel_flipping": {"features_in_step": 256},
                                   "information_level": {"thresholds": (0.1, 0.3)}}
CASES = [(n, FAST.get(n, {})) for n in NATIVE] + [("stability", {"twin": "seed"}), ("stability", {"twin": "split"})]
# What a twin of each kind changes in the job's recipe (the job's recipe: seed 0, split 0).
KIND_CHANGES = {
    "pair": lambda r: r.seed == 1,
    "seed": lambda r: r.seed == 1 and r.split_index == 0,
    "split": lambda r: r.split_index == 1,
    "independent": lambda r: r.max_epochs == 0 and r.seed != 0,
    "shifted": lambda r: r.input_shift != 0,
}


class RefusingMethod:
    """The job's method for a metric that does not declare ``reexplains``: its declarations
    (stochastic, params, …) are readable, calling it is a contract violation."""

    def __init__(self, method: Any):
        self._method = method

    def __getattr__(self, name: str) -> Any:
        return getattr(self._method, name)

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        raise AssertionError("the metric called the job's method without declaring reexplains=True")


def test_every_twin_kind_is_checked_here():
    assert set(KIND_CHANGES) == set(TWIN_KINDS)


def test_the_native_metrics_are_all_here():
    assert {"ef", "spectrum_tail_slope", "stability", "split_rank_corr", "information_level", "mprt"} <= set(NATIVE)


def _context(metric: Metric, calls: dict[str, list], n: int = 8) -> MetricContext:
    x, y, masks = generate_shapes(n, 32, seed=0)
    x = normalise(x, MEAN, STD)
    torch.manual_seed(0)
    model = cnn_small(in_chans=3, num_classes=6).eval()
    grad = create_method("grad")
    x_range = (torch.tensor(MEAN).neg() / torch.tensor(STD), (1 - torch.tensor(MEAN)) / torch.tensor(STD))

    def counted(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls["method"].append(1)
        return grad(*args, **kwargs)

    def load_model(recipe: Recipe) -> torch.nn.Module:
        calls["twins"].append(recipe)
        torch.manual_seed(100 + recipe.seed + 10 * recipe.split_index)
        return cnn_small(in_chans=3, num_classes=6).eval()

    method = counted if metric.reexplains else RefusingMethod(grad)
    maps = grad(model, x, y, x_range=x_range, generator=torch.Generator().manual_seed(0))
    twins = bool(metric.twins)
    recipe = Recipe("cnn-small", "shapes", split_factor=2 if "split" in metric.twins else 1)
    return MetricContext(model, x, y, y, maps, method, x_range, masks if metric.masks else None,
                         torch.Generator().manual_seed(0), 64, recipe=recipe if twins else None,
                         load_model=load_model if twins else None)


def _check_contract(metric: Metric, ctx: MetricContext, calls: dict[str, list], strict: bool = True) -> None:
    assert metric.direction in DIRECTIONS and metric.category in CATEGORIES
    assert isinstance(metric.masks, bool) and isinstance(metric.reexplains, bool)
    assert set(metric.twins) <= set(TWIN_KINDS)
    assert all(isinstance(t, SideTable) for t in metric.side_tables)
    values = metric(ctx)
    assert isinstance(values, torch.Tensor) and values.shape == (len(ctx.x),)
    assert values.device == ctx.x.device
    finite = torch.isfinite(values)
    assert finite.any()
    assert (finite | values.isnan()).all() if metric.excludes else finite.all()
    for kind in metric.twins:  # every declared kind was loaded, and nothing else
        assert any(KIND_CHANGES[kind](r) for r in calls["twins"]), f"declared twin '{kind}' never loaded"
    assert all(any(KIND_CHANGES[k](r) for k in metric.twins) for r in calls["twins"])
    if strict:  # a declaration must be used, not only be harmless (Quantus classes decide inside)
        assert bool(calls["method"]) == metric.reexplains
        assert set(ctx.side) == {t.name for t in metric.side_tables}
    for table in metric.side_tables:
        frame = pd.DataFrame({"job_id": "j", **ctx.side[table.name]})
        assert pa.Table.from_pandas(frame, schema=table.schema, preserve_index=False).num_rows > 0


@pytest.mark.parametrize("name, params", CASES, ids=[f"{n}{p or ''}" for n, p in CASES])
def test_metric_contract(name, params):
    metric = bench.create_metric(name, **params)
    calls: dict[str, list] = {"method": [], "twins": []}
    ctx = _context(metric, calls)
    _check_contract(metric, ctx, calls)


@pytest.mark.parametrize("name", QUANTUS)
def test_quantus_metric_contract(name):
    metric = bench.create_metric(name)
    assert metric.masks == (metric.category == "localisation")
    calls: dict[str, list] = {"method": [], "twins": []}
    _check_contract(metric, _context(metric, calls), calls, strict=False)


# -- Metric.__call__ refuses what breaks the contract ---------------------------------------------

def _bare(fn, excludes: bool = False, side_tables: tuple[SideTable, ...] = ()) -> Metric:
    return Metric("bad", lambda ctx: fn(len(ctx.x)), {}, "higher", "complexity", "", excludes,
                  side_tables=side_tables)


@pytest.fixture
def ctx(tiny_cnn, shapes_batch, x_range) -> MetricContext:
    x, y = shapes_batch
    return MetricContext(tiny_cnn, x, y, y, torch.zeros_like(x), create_method("grad"), x_range)


def _nan_at(b: int, where: list[int]) -> torch.Tensor:
    v = torch.arange(b, dtype=torch.float64)
    v[where] = float("nan")
    return v


@pytest.mark.parametrize("fn, excludes, message", [
    (lambda b: torch.zeros(b, 1), False, "returned shape (8, 1), expected (8,)"),
    (lambda b: torch.zeros(b - 1), False, "returned shape (7,), expected (8,)"),
    (lambda b: [0.0] * b, False, "returned list, not a Tensor"),
    (lambda b: _nan_at(b, [2]), False, "gave non-finite values for 1 samples"),
    (lambda b: torch.full((b,), float("inf")), True, "gave non-finite values for 8 samples"),  # NaN only
    (lambda b: torch.full((b,), float("nan")), True, "excluded every input"),
])
def test_metric_call_refuses_broken_values(ctx, fn, excludes, message):
    with pytest.raises(MethodOutputError, match=r"^metric 'bad' " + message.replace("(", r"\(").replace(")", r"\)")):
        _bare(fn, excludes)(ctx)


def test_declared_exclusions_pass_unchanged(ctx):
    values = _bare(lambda b: _nan_at(b, [1, 3]), excludes=True)(ctx)
    assert values[[1, 3]].isnan().all() and values[[0, 2]].tolist() == [0.0, 2.0]


TABLE = SideTable("test_side", pa.schema([("job_id", pa.string()), ("k", pa.int64())]))


def test_undeclared_side_table_is_refused(ctx):
    def emits(b: int) -> torch.Tensor:
        ctx.emit("test_side", {"k": range(3)})
        return torch.zeros(b)

    with pytest.raises(MethodOutputError, match="side table.*test_side.*does not declare"):
        _bare(emits)(ctx)
    ctx.side.clear()
    assert _bare(emits, side_tables=(TABLE,))(ctx).shape == (8,)


def test_side_table_needs_job_id_first():
    with pytest.raises(ValueError, match="job_id"):
        SideTable("x", pa.schema([("k", pa.int64())]))


def test_spectra_declaration_is_the_committed_schema():
    committed = sorted((RESULTS / "default" / "_spectra").glob("*.parquet"))
    assert committed, "the committed default suite has spectra"
    assert pq.read_schema(committed[0]).remove_metadata() == SPECTRA.schema
    assert len(load_side("spectra", RESULTS / "default")) == sum(pq.read_metadata(f).num_rows for f in committed)


# -- suite validation refuses what a dataset or recipe cannot provide ------------------------------

@register_metric("test_needs_masks", direction="higher", category="localisation", masks=True)
def _needs_masks(ctx):
    """Mass of |map| inside the ground-truth mask (a minimal mask-reading metric)."""
    inside = (ctx.maps.abs().sum(1, keepdim=True) * ctx.masks).flatten(1).sum(1)
    return (inside / ctx.maps.abs().sum(1).flatten(1).sum(1).clamp_min(1e-12)).double()


@register_metric("test_emits_side", direction="higher", category="complexity", side_tables=(TABLE,))
def _emits_side(ctx):
    """Emits a 3-row side table; value 1 per sample."""
    ctx.emit("test_side", {"k": range(3)})
    return torch.ones(len(ctx.x), dtype=torch.float64)


def _suite(tmp_path: Path, tiny_suite, dataset: str, metrics: tuple[str, ...]) -> str:
    text = Path(tiny_suite(methods=("grad",), metrics=metrics)).read_text()
    text = text.replace('datasets = [{ name = "shapes", params = { n_train = 300, n_test = 20 } }]',
                        f'datasets = ["{dataset}"]')
    path = tmp_path / f"{dataset}.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("metric", ["test_needs_masks", "quantus:AttributionLocalisation"])
def test_mask_metric_on_a_dataset_without_masks_is_refused_before_anything_runs(tmp_path, tiny_suite, capsys,
                                                                                 metric):
    path = _suite(tmp_path, tiny_suite, "digits", (metric, "sparseness"))
    with pytest.raises(SuiteError, match=f"metric '{metric}' needs ground-truth masks, which dataset 'digits' "
                                         r"does not provide; use a dataset with masks \(shapes\)"):
        load_suite(path)
    assert main(["run", path, "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs ground-truth masks" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "results").exists()  # nothing ran, nothing was written
    assert len(load_suite(_suite(tmp_path, tiny_suite, "shapes", (metric,))).jobs) == 1


def test_split_twin_on_unsplit_models_is_refused(tmp_path, tiny_suite):
    path = Path(tiny_suite(methods=("grad",), metrics=("sparseness",)))
    path.write_text(path.read_text().replace("metrics = ['sparseness']",
                                             'metrics = [{ name = "stability", params = { twin = "split" } }]'))
    with pytest.raises(SuiteError, match="metric 'stability' compares the other part of a split, but models"):
        load_suite(str(path))
    path.write_text(path.read_text().replace("batch_size = 64", "batch_size = 64\nsplit_factor = 2"))
    assert len(load_suite(str(path)).jobs) == 1


def test_runner_writes_each_declared_side_table(tmp_path, tiny_suite):
    suite = load_suite(tiny_suite(methods=("grad",), metrics=("ef", "test_emits_side")))
    assert Runner(tmp_path, device="cpu", progress=False).run(suite).failed == []
    job = suite.jobs[0]
    side = pd.read_parquet(tmp_path / "tiny" / "_test_side" / f"{job.id}.parquet")
    assert side["job_id"].eq(job.id).all() and side["k"].tolist() == [0, 1, 2]
    spectra = load_side("spectra", tmp_path / "tiny")
    assert spectra["power"].sum() == pytest.approx(1.0) and spectra["frequency"].iloc[-1] == 1.0
    assert pq.read_schema(tmp_path / "tiny" / "_spectra" / f"{job.id}.parquet").remove_metadata() == SPECTRA.schema
