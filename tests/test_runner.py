"""End to end: suite → runner → Parquet → leaderboard, reruns, failures, corrupt files."""

from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.board import render
from bench.cli import main
from bench.methods.base import register_method
from bench.metrics.base import register_metric
from bench.run.results import ResultStore, load_rows
from bench.run.runner import Runner
from bench.suite import load_suite

ISSUE_COLUMNS = ["job_id", "suite", "dataset", "model", "activation", "method", "method_params", "metric", "value",
                 "stderr", "n", "seed", "target", "device", "bench_version", "torch_version", "git_commit",
                 "created_at", "model_accuracy", "model_epochs"]


@register_method("test_nan_method")
def _nan_method(model, x, target, *, x_range, generator, chunk_size):
    """Returns NaN maps (a broken submission)."""
    return torch.full_like(x, float("nan"))


@register_metric("test_half_excluded", direction="higher", category="faithfulness", excludes=True)
def _half_excluded(ctx):
    """Excludes every other input (as PIC's rule would), value = input index."""
    v = torch.arange(len(ctx.x), dtype=torch.float64)
    return torch.where(v % 2 == 0, v, torch.full_like(v, float("nan")))


@register_metric("test_nan_metric", direction="higher", category="faithfulness")
def _nan_metric(ctx):
    """NaN without declaring exclusions: an error."""
    return torch.full((len(ctx.x),), float("nan"), dtype=torch.float64)


@pytest.fixture
def done_run(tmp_path, tiny_suite):
    suite = load_suite(tiny_suite())
    runner = Runner(tmp_path / "results", device="cpu", progress=False)
    report = runner.run(suite)
    return suite, runner, report, tmp_path / "results" / "tiny"


def test_run_writes_parquet_and_renders_a_board(done_run):
    suite, _, report, root = done_run
    assert report.failed == [] and len(report.done) == len(suite.jobs) == 2
    rows = pd.read_parquet(root)  # the folder reads as one table, side tables excluded
    assert set(ISSUE_COLUMNS) <= set(rows.columns)
    assert len(rows) == 2 * 3 and set(rows["metric"]) == {"ef", "delta_ef", "sparseness"}
    assert rows["n"].eq(6).all() and rows["value"].notna().all()
    samples = pd.read_parquet(root / "_samples")
    assert len(samples) == 2 * 3 * 6
    # the per-job mean is the mean of its per-sample values
    ef = rows[(rows.metric == "ef") & (rows.method == "grad")].iloc[0]
    per = samples[(samples.job_id == ef.job_id) & (samples.metric == "ef")]["value"]
    assert ef.value == pytest.approx(per.mean(), rel=1e-12)
    assert (root / "_spectra").is_dir()
    board = render(load_rows(root), ["tiny"], "bench leaderboard tiny")
    assert "| grad |" in board and "sha256:" in board


def test_rerun_executes_no_job_and_deleting_a_file_reruns_exactly_that_job(done_run):
    suite, runner, _, root = done_run
    again = runner.run(suite)
    assert again.done == [] and again.skipped == len(suite.jobs)
    victim = suite.jobs[1]
    before = pd.read_parquet(ResultStore(root).rows_path(victim))
    Path(ResultStore(root).rows_path(victim)).unlink()
    third = runner.run(suite)
    assert third.done == [victim.id]
    after = pd.read_parquet(ResultStore(root).rows_path(victim))
    pd.testing.assert_series_equal(before["value"], after["value"])  # reruns on CPU are identical


def test_corrupt_result_file_is_moved_aside_and_rerun(done_run):
    suite, runner, _, root = done_run
    path = Path(ResultStore(root).rows_path(suite.jobs[0]))
    path.write_bytes(b"PAR1 truncated")
    report = runner.run(suite)
    assert report.done == [suite.jobs[0].id]
    assert (root / "_corrupt" / path.name).exists()
    assert len(pd.read_parquet(path)) == 3


def test_predicted_target_and_log_softmax_output(tmp_path):
    from conftest import tiny_suite_text

    text = tiny_suite_text(methods=("grad", "smoothgrad", "guided_backprop", "gradcam"))
    path = tmp_path / "p.toml"
    path.write_text(text.replace("seed = 0\n", 'seed = 0\ntarget = "predicted"\noutput = "log_softmax"\n', 1))
    report = Runner(tmp_path, device="cpu", progress=False).run(load_suite(str(path)))
    assert report.failed == [] and len(report.done) == 4
    rows = pd.read_parquet(tmp_path / "tiny")
    assert set(rows["target"]) == {"predicted"} and set(rows["output"]) == {"log_softmax"}


def test_excluded_inputs_are_dropped_and_counted_but_undeclared_nan_fails(tmp_path, tiny_suite):
    suite = load_suite(tiny_suite(methods=("grad",), metrics=("test_half_excluded", "sparseness")))
    report = Runner(tmp_path, device="cpu", progress=False).run(suite)
    assert report.failed == []
    rows = pd.read_parquet(tmp_path / "tiny").set_index("metric")
    assert rows.loc["test_half_excluded", "n"] == 3 and rows.loc["test_half_excluded", "value"] == 2.0  # 0, 2, 4
    assert rows.loc["sparseness", "n"] == 6
    samples = pd.read_parquet(tmp_path / "tiny" / "_samples")
    assert sorted(samples[samples.metric == "test_half_excluded"]["sample"]) == [0, 2, 4]
    bad = load_suite(tiny_suite(methods=("grad",), metrics=("test_nan_metric",)))
    failed = Runner(tmp_path / "bad", device="cpu", progress=False).run(bad).failed
    assert len(failed) == 1 and "non-finite values for 6 samples" in failed[0][1]


def test_failing_job_is_recorded_and_the_others_go_on(tmp_path, tiny_suite):
    suite = load_suite(tiny_suite(methods=("grad", "test_nan_method")))
    report = Runner(tmp_path, device="cpu", progress=False).run(suite)
    assert len(report.done) == 1 and len(report.failed) == 1
    label, err = report.failed[0]
    assert "test_nan_method" in label and "non-finite" in err
    failures = ResultStore(tmp_path / "tiny").failures()
    assert failures[0]["error_type"] == "MethodOutputError"


def test_cli_run_exit_codes_and_dry_run(tmp_path, tiny_suite, capsys):
    path = tiny_suite()
    assert main(["run", path, "--results", str(tmp_path), "--dry-run"]) == 0
    assert "2 jobs, 0 already done, 2 to run" in capsys.readouterr().out
    assert main(["run", path, "--results", str(tmp_path), "--quiet"]) == 0
    assert main(["run", path, "--results", str(tmp_path), "--dry-run"]) == 0
    assert "2 already done, 0 to run" in capsys.readouterr().out
    assert main(["leaderboard", "tiny", "--results", str(tmp_path), "--out", str(tmp_path / "lb.md")]) == 0
    assert "## tiny" in (tmp_path / "lb.md").read_text()  # the front; the tracks are on the suite's page
    assert "## shapes · cnn-small · relu" in (tmp_path / "board" / "tiny.md").read_text()
    failing = tiny_suite(methods=("test_nan_method",))
    assert main(["run", failing, "--results", str(tmp_path / "f"), "--quiet"]) == 1


@pytest.mark.parametrize("argv, match", [
    (["run", "nosuchsuite"], "unknown suite 'nosuchsuite'"),
    (["run", "missing.toml"], "does not exist"),
    (["leaderboard", "nosuite", "--results", "/nonexistent"], "no results for suite(s) nosuite"),
    (["list", "methods", "*"], None),
])
def test_cli_errors_are_one_line(argv, match, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    if match is None:
        assert code == 0
    else:
        assert code == 2 and match in err and len(err.splitlines()) == 1


def test_missing_column_is_one_clear_error(done_run, capsys):
    suite, _, _, root = done_run
    path = ResultStore(root).rows_path(suite.jobs[0])
    pd.read_parquet(path).drop(columns=["metric"]).to_parquet(path)
    assert main(["leaderboard", "tiny", "--results", str(root.parent), "--out", str(root / "x.md")]) == 2
    assert "lacks column(s) metric" in capsys.readouterr().err


def test_numbers_do_not_depend_on_the_chunk_size(tmp_path, tiny_suite):
    """--chunk-size is not part of a job's id, so it may change speed and memory, never a number."""
    path = Path(tiny_suite(methods=("grad", "smoothgrad", "integrated_gradients")))
    metrics = ('["ef", "random_logit", { name = "max_sensitivity", params = { nr_samples = 4 } }, '
               '{ name = "faithfulness_correlation", params = { nr_runs = 10 } }, '
               '{ name = "pixel_flipping", params = { features_in_step = 256 } }]')
    text = path.read_text()
    path.write_text(text.replace(text.split("metrics = ", 1)[1].split("\n", 1)[0], metrics))
    suite = load_suite(str(path))
    frames = []
    for chunk in (5, 1000):
        root = tmp_path / f"chunk{chunk}"
        assert Runner(root, device="cpu", chunk_size=chunk, progress=False).run(suite).failed == []
        frames.append(load_rows(root / "tiny").sort_values(["job_id", "metric"]).reset_index(drop=True))
    assert len(frames[0]) == 3 * 5
    pd.testing.assert_series_equal(frames[0]["value"], frames[1]["value"], rtol=1e-5)


def test_each_model_is_warmed_up_once_untimed_and_uncounted(tmp_path, tiny_suite, monkeypatch):
    """One input-gradient pass per model and chunk shape before its first job (as the bound's calibration
    warms up): not in explain_passes, no draw, no number changed."""
    import bench.run.runner as runner_module

    suite = load_suite(tiny_suite(methods=("grad", "smoothgrad", "random")))
    cold = Runner(tmp_path / "cold", device="cpu", progress=False)
    monkeypatch.setattr(cold, "_warm_up", lambda job, inputs: None)
    assert cold.run(suite).failed == []
    monkeypatch.undo()
    warmed: list[tuple] = []
    gradient = runner_module.input_gradient  # the runner's own name: the methods' passes are not seen

    def spy(model, x, target, chunk):
        warmed.append(tuple(x.shape))
        return gradient(model, x, target, chunk)

    monkeypatch.setattr(runner_module, "input_gradient", spy)
    assert Runner(tmp_path / "warm", device="cpu", progress=False).run(suite).failed == []
    assert len(warmed) == 1  # three jobs on one model and batch: one warm-up
    rows = [load_rows(tmp_path / d / "tiny").sort_values(["job_id", "metric"]).reset_index(drop=True)
            for d in ("cold", "warm")]
    pd.testing.assert_frame_equal(rows[0][["job_id", "metric", "value", "stderr", "n", "explain_passes"]],
                                  rows[1][["job_id", "metric", "value", "stderr", "n", "explain_passes"]])
    assert (rows[1].loc[rows[1].method == "grad", "explain_passes"] == rows[1]["samples"].iloc[0]).all()
    # each job that makes passes has its bound timed beside it (cost.paired_bound_seconds); a control none
    bound = rows[1].groupby("method")["explain_bound_seconds"].first()
    assert bound["grad"] > 0 and bound["smoothgrad"] > 0 and bound["random"] == 0
