from types import SimpleNamespace

import pandas as pd
import pytest

from bench.cli import main
from bench.methods import create_method
from bench.run import cost
from bench.run.cost import Calibration, PassCounter, calibrate, count_passes, paired_bound_seconds


@pytest.mark.parametrize("name, params, expected", [
    ("grad", {}, 1), ("grad_x_input", {}, 1), ("smoothgrad", {"n": 7}, 7),
    ("integrated_gradients", {"steps": 5}, 5), ("adaptgrad", {"n": 3, "rule": "released"}, 4),
    ("smoothgrad", {"n": 3, "base": "integrated_gradients", "base_params": {"steps": 4}}, 12),
])
def test_pass_counts_per_input(tiny_cnn, shapes_batch, x_range, name, params, expected):
    x, y = shapes_batch
    assert count_passes(create_method(name, **params), tiny_cnn, x, y % 6, x_range) == expected


def test_pass_counter_counts_rows_and_removes_its_hook(tiny_cnn, shapes_batch):
    x, _ = shapes_batch
    with PassCounter(tiny_cnn) as c:
        tiny_cnn(x)
        tiny_cnn(x[:3])
    assert c.rows == len(x) + 3 and not tiny_cnn._forward_pre_hooks


def test_calibration_picks_a_chunk(tiny_cnn, shapes_batch):
    cal = calibrate(tiny_cnn, shapes_batch[0], 6, chunks=(4, 8), seconds=0.01, rounds=1)
    assert cal.rows_per_second > 0 and cal.best_chunk in (4, 8) and set(cal.rates) == {4, 8}


def test_the_bound_of_a_job_is_the_best_chunk_it_can_fill():
    cal = Calibration({16: 100.0, 64: 300.0, 256: 500.0, 1024: 400.0})
    assert cal.best_chunk == 256 and cal.rows_per_second == 500.0
    assert cal.bound(64) == 300.0  # a 64-row job cannot fill a 256-row chunk
    assert cal.bound(3200) == 500.0
    assert cal.bound(8) == 100.0  # smaller than every chunk: the smallest chunk's rate


def test_dry_run_estimate_and_report(tmp_path, tiny_suite, capsys):
    path = tiny_suite()
    assert main(["run", path, "--results", str(tmp_path), "--dry-run", "--estimate"]) == 0
    out = capsys.readouterr().out
    assert "4 passes/input" in out and "1 passes/input" in out and "estimated explain time" in out
    assert main(["run", path, "--results", str(tmp_path), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report", "tiny", "--results", str(tmp_path), "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-1] == "paired"
    smoothgrad = next(ln for ln in lines if "smoothgrad" in ln and " 4 " in ln)
    assert float(smoothgrad.split()[-1]) > 0  # the run recorded each job's paired bound


def test_the_probe_is_the_runners_model_untrained(tmp_path, tiny_suite):
    """Same layout as the model the runner explains with (channels_last on CPU, no grads, eval), and the
    caller's global RNG untouched."""
    import torch

    from bench.models.build import untrained_model
    from bench.run.runner import Runner
    from bench.suite import load_suite

    recipe = load_suite(tiny_suite()).jobs[0].recipe
    torch.manual_seed(123)
    state = torch.get_rng_state()
    probe = untrained_model(recipe, "cpu")
    assert torch.equal(torch.get_rng_state(), state)
    runs = Runner(tmp_path, device="cpu", progress=False).scored(recipe, "logit")
    assert [(p.shape, p.stride(), p.requires_grad) for p in probe.parameters()] == \
        [(p.shape, p.stride(), p.requires_grad) for p in runs.parameters()]
    assert not probe.training


def test_the_paired_bound_is_the_faster_plain_pass_over_the_jobs_rows(tiny_cnn, shapes_batch, monkeypatch):
    x, y = shapes_batch
    clock, calls = iter([0.0, 0.5, 1.0, 1.2]), []  # two passes over one chunk: 0.5 s, then 0.2 s
    monkeypatch.setattr(cost, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    monkeypatch.setattr(cost, "input_gradient", lambda model, xc, tc, chunk: calls.append((len(xc), chunk)))
    assert paired_bound_seconds(tiny_cnn, x, y, chunk=4, rows=20) == pytest.approx(20 * 0.2 / 4)
    assert calls == [(4, 4), (4, 4)]


def test_paired_ratio_sums_bound_and_explain_time_over_jobs():
    jobs = pd.DataFrame({"explain_seconds": [1.0, 3.0], "explain_bound_seconds": [0.9, 2.7]})
    assert cost._paired_ratio(jobs) == pytest.approx(3.6 / 4.0)
    assert cost._paired_ratio(jobs.assign(explain_bound_seconds=[0.9, float("nan")])) is None  # an older row
    assert cost._paired_ratio(jobs.drop(columns="explain_bound_seconds")) is None
