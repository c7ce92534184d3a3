"""Issue 18, item 5: an edited suite does not pool its old results with the new ones; bench prune."""

import pandas as pd
import pytest

import bench.suite
from bench.board import write_board
from bench.cli import main
from bench.run.results import load_rows
from bench.run.runner import Runner
from bench.suite import load_suite

NOTE = "ignored 1 results of jobs no longer in suite tiny (bench prune tiny)"


@pytest.fixture
def edited(tmp_path, tiny_suite, monkeypatch):
    """One job run at samples=4, the suite edited to samples=6 and run again."""
    registry = tmp_path / "suites"
    registry.mkdir()
    monkeypatch.setattr(bench.suite, "suites_dir", lambda: registry)  # 'tiny' resolves by name, as on the board
    path = registry / "tiny.toml"
    text = open(tiny_suite(methods=("grad",), metrics=("ef", "sparseness"))).read()
    results = tmp_path / "results"
    runner = Runner(results, device="cpu", progress=False)
    path.write_text(text.replace("samples = 6", "samples = 4"))
    old = load_suite("tiny")
    assert runner.run(old).failed == []
    path.write_text(text)
    new = load_suite("tiny")
    assert runner.run(new).failed == [] and old.jobs[0].id != new.jobs[0].id
    return results, old.jobs[0].id, new.jobs[0].id


def test_board_and_report_use_only_the_current_jobs(edited, tmp_path, capsys):
    results, old, new = edited
    assert set(load_rows(results / "tiny").job_id) == {old, new}  # both are on disk
    out, rows, notes = write_board(results, ["tiny"], tmp_path / "board.md", plots=False)
    assert set(rows.job_id) == {new} and set(rows.n) == {6}  # not 4 + 6 = 10 inputs
    assert notes == [NOTE]
    assert main(["report", "tiny", "--results", str(results), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert NOTE in err and err.count("\n") == 1


def test_prune_removes_exactly_the_old_files(edited):
    results, old, new = edited
    before = sorted(p.relative_to(results) for p in results.rglob("*") if p.is_file())
    old_files = [p for p in before if p.name.startswith(old)]
    assert len(old_files) >= 2  # rows and samples (and side tables)
    assert main(["prune", "tiny", "--results", str(results), "--dry-run"]) == 0
    assert sorted(p.relative_to(results) for p in results.rglob("*") if p.is_file()) == before
    assert main(["prune", "tiny", "--results", str(results)]) == 0
    after = sorted(p.relative_to(results) for p in results.rglob("*") if p.is_file())
    assert after == [p for p in before if p not in old_files]
    assert set(pd.read_parquet(results / "tiny").job_id) == {new}
    _, _, notes = write_board(results, ["tiny"], results.parent / "board.md", plots=False)
    assert notes == []


def test_prune_jobs_removes_the_selected_jobs_so_that_the_next_run_recomputes_them(edited, capsys):
    results, old, new = edited
    label = load_suite("tiny").jobs[0].label
    new_files = sorted(p.relative_to(results) for p in results.rglob("*") if p.is_file() and p.name.startswith(new))
    assert main(["prune", "tiny", "--results", str(results), "--jobs", label, "--dry-run"]) == 0
    assert all((results / p).exists() for p in new_files)
    assert main(["prune", "tiny", "--results", str(results), "--jobs", label]) == 0
    assert not any(p.is_file() and p.name.startswith((old, new)) for p in results.rglob("*"))
    assert f"matching --jobs '{label}'" in capsys.readouterr().out
    assert Runner(results, device="cpu", progress=False).run(load_suite("tiny")).done == [new]
    assert main(["prune", "tiny", "--results", str(results), "--jobs", "nothing/*"]) == 2  # one line, nothing removed
    assert "no job of suite 'tiny' matches --jobs 'nothing/*'" in capsys.readouterr().err
