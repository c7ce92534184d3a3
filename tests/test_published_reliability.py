"""The published default board's controls do what controls are for (on the committed results).

A faithfulness metric must put the uniform-noise map last; the board must say which metrics could
not tell the gradient from noise. Read from ``results/default`` as ``bench leaderboard`` reads it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.board.compute import compute_board
from bench.board.config import load_board_config
from bench.board.stats import TRACK
from bench.run.results import load_rows, load_samples

RESULTS = Path(__file__).resolve().parents[1] / "results" / "default"


@pytest.fixture(scope="module")
def board():
    if not RESULTS.is_dir():
        pytest.skip("no committed results/default")
    return compute_board(load_rows(RESULTS), load_samples(RESULTS), load_board_config())


def test_random_is_the_bar_on_every_faithfulness_metric_of_the_default_suite(board):
    """random is a reference row (never ranked), scores worst of all methods on faithfulness, and every
    method clears it there (no ⊘ on a faithfulness cell)."""
    faith = board.cells[board.cells["category"] == "faithfulness"]
    assert len(faith) and {"random", "grad"} <= set(faith["method_label"])
    assert board.controls[0] == "random"
    for key, g in faith.groupby([*TRACK, "metric"]):
        by_method = g.set_index("method_label")
        oriented = by_method["value"].where(by_method["direction"] == "higher", -by_method["value"])
        assert by_method.loc["random", "rank"] == 0 and oriented.idxmin() == "random", key
    bar = board.bar[board.bar["metric"].isin(set(faith["metric"]))]
    assert len(bar) and bar["clears"].all()


def test_every_metric_of_the_default_suite_has_its_controls_and_noise_resilience_measured(board):
    react = board.reactivity
    assert len(react) and (react["vs_random"] != "not measured").all()
    assert len(board.noise) and set(board.noise["metric"]) == set(board.cells["metric"])
