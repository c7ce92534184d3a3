"""Committed artefacts are what the code renders: the board and every plot, byte for byte."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from test_leaderboard import CONFIG, HAND, make_rows

from bench.board import render
from bench.board.plots import _results_model, make_plots
from bench.cli import main

REPO = Path(__file__).resolve().parent.parent
# Read at import, before conftest's session fixture points GRADBENCH_CACHE at an empty folder: the slow
# test redraws the saliency grids from the models this machine has trained.
USER_CACHE = os.environ.get("GRADBENCH_CACHE") or str(Path.home() / ".cache" / "gradbench")


def synthetic_rows() -> pd.DataFrame:
    """HAND's table over ReLU and two SP(β), with a σ grid: enough for the EF-vs-β and σ plots."""
    tracks = [make_rows(HAND, activation=a) for a in ("relu", "softplus:1", "softplus:10")]
    ef = [make_rows([(m, "ef", "lower", "complexity", v / b) for m, v in [("grad", 1.0), ("smoothgrad", 0.5)]],
                    activation=f"softplus:{b}") for b in (1, 10)]
    sigma = make_rows([("smoothgrad", k, "lower", "robustness", a * 2) for a in (0.1, 0.2)
                       for k in ("stability", "fidelity")])
    sigma["method_params"] = [f'{{"alpha": {a}}}' for a in (0.1, 0.1, 0.2, 0.2)]
    rows = pd.concat([*tracks, *ef, sigma], ignore_index=True)
    rows["job_id"] = [f"{j}-{i}" for i, j in enumerate(rows["job_id"])]
    return rows.fillna({"method_params": "{}"}).assign(metric_params="{}")


def test_render_gives_the_same_markdown_and_png_bytes(tmp_path):
    rows = synthetic_rows()
    texts, pngs = [], []
    for i, table in enumerate([rows, rows.sample(frac=1, random_state=3)]):
        made, _ = make_plots(table, [], tmp_path / str(i), saliency=False)
        assert len(made) == 2  # EF vs β, and one σ figure of the two robustness metrics
        pngs.append({p.name: p.read_bytes() for _, p in made})
        links = [(t, f"plots/{p.name}") for t, p in made]
        texts.append(render(table, ["s"], "bench leaderboard s", config=CONFIG, plots=links))
    assert texts[0] == texts[1]
    assert pngs[0] == pngs[1]
    assert "![EF vs β: shapes · cnn-small (s)](plots/ef_vs_beta_s_shapes_cnn-small.png)" in texts[0]


class _Trained:
    def __init__(self, accuracy: float, epochs: int, test_accuracy: float) -> None:
        self.accuracy, self.epochs, self.test_accuracy = accuracy, epochs, test_accuracy


def test_saliency_grid_needs_the_results_model(monkeypatch):
    # Same recipe hash, other weights (another machine's training): the rows' recorded accuracies tell.
    import bench.models.build as build
    import bench.models.train as train

    first = pd.Series({"model_recipe": '{"dataset": "shapes", "architecture": "cnn-small", "activation": "relu"}',
                       "model_accuracy": 0.936, "model_epochs": 2, "model_test_accuracy": 0.92})
    recipe = train.Recipe(**{"dataset": "shapes", "architecture": "cnn-small", "activation": "relu"})
    trained, why = _results_model(first)
    assert trained is None and why == f"model {recipe.hash} not cached (bench train SUITE)"

    (train.cache_dir() / f"{recipe.hash}.pt").write_bytes(b"")
    cached = _Trained(0.936, 2, 0.92)
    monkeypatch.setattr(build, "trained_model", lambda *a, **k: cached)
    try:
        assert _results_model(first) == (cached, "")
        cached.test_accuracy = 0.919  # measured: 1 training thread instead of 2
        trained, why = _results_model(first)
        assert trained is None and "test_accuracy 0.919 here, 0.92 in the results" in why
    finally:
        (train.cache_dir() / f"{recipe.hash}.pt").unlink()


@pytest.mark.slow
def test_bench_leaderboard_reproduces_the_committed_board_and_plots(tmp_path, monkeypatch, capsys):
    """`bench leaderboard` in a copy of the repository's results leaves every committed file as it is.

    Saliency grids are redrawn for the models this machine has cached (`bench train SUITE`) and were
    trained as the results' were; the others are kept, and the notes say which.
    """
    shutil.copytree(REPO / "results", tmp_path / "results")
    shutil.copy(REPO / "leaderboard.md", tmp_path / "leaderboard.md")
    monkeypatch.setenv("GRADBENCH_CACHE", USER_CACHE)
    monkeypatch.chdir(tmp_path)
    assert main(["leaderboard"]) == 0
    print(capsys.readouterr().err)  # which grids were redrawn (shown with -s)
    assert (tmp_path / "leaderboard.md").read_bytes() == (REPO / "leaderboard.md").read_bytes()
    committed = {p.relative_to(REPO): p.read_bytes() for p in (REPO / "results").rglob("*") if p.is_file()}
    rendered = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "results").rglob("*") if p.is_file()}
    assert sorted(rendered) == sorted(committed)  # no new plot, none lost
    changed = [str(p) for p in committed if rendered[p] != committed[p]]
    assert not changed, f"bench leaderboard rewrote {changed}: commit what the code renders"
