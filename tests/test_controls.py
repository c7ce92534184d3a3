"""The control methods (random, sobel): reproducible, blind to the model, scipy's Sobel, in every suite."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from bench.job import MetricSpec
from bench.methods import create_method
from bench.models.zoo import cnn_small
from bench.run.results import load_rows
from bench.run.runner import Runner
from bench.suite import expand, load_suite, suites_dir

CONTROLS = ("random", "sobel")
RESULTS = Path(__file__).resolve().parent.parent / "results"


def _explain(name: str, model, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    target = torch.zeros(len(x), dtype=torch.long)
    return create_method(name)(model, x, target, generator=torch.Generator().manual_seed(seed))


def test_random_maps_are_uniform_and_reproducible_given_the_seed(tiny_cnn, shapes_batch):
    x, _ = shapes_batch
    a, b, c = (_explain("random", tiny_cnn, x, seed) for seed in (0, 0, 1))
    assert a.shape == x.shape and a.dtype == torch.float32 and a.device == x.device
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert 0 <= a.min() and a.max() < 1 and abs(a.mean().item() - 0.5) < 0.01  # 6144 U[0,1) draws


@pytest.mark.parametrize("name", CONTROLS)
def test_controls_are_blind_to_the_model(name, tiny_cnn, shapes_batch):
    x, _ = shapes_batch
    torch.manual_seed(1)
    other = cnn_small(in_chans=3, num_classes=6).eval()
    with torch.no_grad():
        assert not torch.allclose(tiny_cnn(x), other(x))  # two different models
    assert torch.equal(_explain(name, tiny_cnn, x), _explain(name, other, x))


def test_sobel_is_scipys_gradient_magnitude_per_channel():
    img = np.zeros((2, 3, 12, 10), dtype=np.float32)
    img[0, 0, 3:8, 2:6] = 1.0  # a rectangle
    img[0, 1] = np.add.outer(np.arange(12), 2 * np.arange(10)) / 10  # a ramp: a constant gradient
    img[0, 2, 6, 4] = -3.0  # a spike
    img[1] = np.random.default_rng(0).normal(size=(3, 12, 10))
    got = _explain("sobel", None, torch.from_numpy(img)).numpy()
    ref = np.stack([[np.hypot(ndimage.sobel(ch, axis=0), ndimage.sobel(ch, axis=1)) for ch in im] for im in img])
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    # Analytic: inside the ramp (d/drow = 0.1, d/dcol = 0.2 per pixel) Sobel gives 8·(0.1, 0.2).
    assert got[0, 1, 5, 5] == pytest.approx(8 * np.hypot(0.1, 0.2), rel=1e-5)


@pytest.mark.parametrize("name", CONTROLS)
def test_controls_declare_what_they_are(name):
    m = create_method(name)
    assert m.stochastic == (name == "random") and not m.linear
    assert m.unsmoothed() is None and m.input_noise(torch.zeros(1, 3, 4, 4)) is None


def _committed_specs() -> list[tuple[Path, dict]]:
    return [(p, tomllib.loads(p.read_text())) for p in sorted(suites_dir().glob("*.toml"))]


@pytest.mark.parametrize("path, spec", _committed_specs(), ids=lambda v: getattr(v, "stem", ""))
def test_every_suite_has_the_controls_and_keeps_its_other_job_ids(path, spec):
    names = [m["name"] for m in spec["methods"]]
    assert set(CONTROLS) <= set(names), f"{path.name} lacks the controls"
    base = dict(spec, methods=[m for m in spec["methods"] if m["name"] not in CONTROLS])
    base.pop("noise_resilience", None)
    before = {j.id for j in expand(base, path).jobs}
    after = {j.id: j for j in load_suite(str(path)).jobs}
    assert before <= set(after)  # only new jobs: a resumed run computes just these
    assert all(j.method in CONTROLS or j.model_perturbation for i, j in after.items() if i not in before)


def _published() -> list[Path]:
    if not RESULTS.is_dir():
        return []
    return sorted(p for p in RESULTS.iterdir() if p.is_dir() and (suites_dir() / f"{p.name}.toml").exists())


@pytest.mark.parametrize("folder", _published(), ids=lambda p: p.name)
def test_committed_results_are_still_jobs_of_their_suite(folder):
    """The ids the code that wrote the published results computed: adding controls kept every one."""
    ids = {j.id for j in load_suite(folder.name).jobs}
    assert {p.stem for p in folder.glob("*.parquet")} <= ids


def _all_metric_specs() -> list[MetricSpec]:
    seen: dict[str, MetricSpec] = {}
    for path, _ in _committed_specs():
        for spec in (s for job in load_suite(str(path)).jobs for s in job.metrics):
            seen.setdefault(f"{spec.name}{sorted(spec.params.items())}", spec)
    return list(seen.values())


def test_every_metric_of_every_suite_scores_the_controls(tmp_path):
    """Through the runner, on a split pair (so split metrics have their twin): no metric refuses a
    control, and the controls show what a model-blind map does to the agreement metrics."""
    # Untrained models (0 epochs: whether a metric accepts a method does not depend on training), and
    # PIC's interpolations, which dominate the time, under one mask per image, none left unscored.
    fast = {"information_level": {"n_masks": 1, "excluded_value": 0.0}}
    metrics = [{"name": m.name, "params": {**m.params, **fast.get(m.name, {})}} for m in _all_metric_specs()]
    data = {"name": "shapes", "params": {"n_train": 300, "n_test": 20}}
    spec = {"name": "controls", "samples": 2, "datasets": [data], "metrics": metrics,
            "methods": [{"name": n} for n in CONTROLS],
            "models": [{"architecture": "cnn-small", "split_factor": 2, "max_epochs": 0}]}
    suite = expand(spec, tmp_path / "controls.toml")
    report = Runner(tmp_path / "results", device="cpu", progress=False).run(suite)
    assert report.failed == []
    rows = load_rows(tmp_path / "results" / "controls")
    assert set(rows.metric) == {m["name"] for m in metrics} and np.isfinite(rows.value).all()
    by = rows.set_index(["method", "metric"]).value
    # sobel gives both models the same map: perfect agreement, which no model earned. random's twin
    # draws its own noise (split agreement's default), so two independent uniform maps: no agreement.
    assert by["sobel", "split_rank_corr"] == pytest.approx(1.0) and by["sobel", "split_l2"] == 0
    assert abs(by["random", "split_rank_corr"]) < 0.15 and by["random", "split_l2"] > 0
    for name in CONTROLS:
        assert by[name, "inherent_noise"] == 0 and by[name, "fidelity"] == 0  # no input noise, smooths nothing
