"""Controls as reference rows (shown, never ranked) and the bar every method has to clear."""

from __future__ import annotations

import numpy as np
import pandas as pd
from test_board_significance import TRACK, make_results

from bench.board import compute_board, render
from bench.board.config import BoardConfig
from bench.board.references import BELOW_BAR, bar_verdicts, control_kind, controls_of, with_controls
from bench.board.significance import REFERENCE_ROW, paired_tests
from bench.methods.base import CONTROL_NOISE

CONFIG = BoardConfig(bootstrap_resamples=200)


def _results() -> tuple[pd.DataFrame, pd.DataFrame]:
    """grad well above noise, weak the noise plus its own zero-mean jitter (not better), random the noise
    control, sobel above everything (an edge map a metric may like): two metrics of two categories."""
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(2, 30))
    values = {"grad": noise + 2.0, "weak": noise + rng.normal(0.0, 0.3, size=(2, 30)), "random": noise.copy(),
              "sobel": noise + 5.0}
    parts = [make_results(values, metric=m, category=c) for m, c in (("m1", "faithfulness"), ("m2", "complexity"))]
    return pd.concat([p[0] for p in parts], ignore_index=True), pd.concat([p[1] for p in parts], ignore_index=True)


def test_controls_are_what_the_registry_declares_not_what_they_are_called():
    assert control_kind("random") == CONTROL_NOISE and control_kind("sobel") == "edge"
    assert control_kind("grad") == "" and control_kind("not-a-registered-method") == ""
    rows, _ = make_results({"grad": np.zeros((1, 8)), "random": np.zeros((1, 8))})
    # a job of grad labelled "random" competes; a job of random labelled "noise map" is the control
    rows["method_label"] = rows["method"].map({"grad": "random", "random": "noise map"})
    assert controls_of(with_controls(rows)) == {"noise map": CONTROL_NOISE}


def test_controls_are_shown_but_never_ranked():
    board = compute_board(*_results(), config=CONFIG)
    cells = board.cells.set_index(["method_label", "metric"])
    assert board.controls == ("random", "sobel")  # the bar first
    for control in board.controls:
        assert (cells.loc[control, "rank"] == 0).all() and (cells.loc[control, "test"] == REFERENCE_ROW).all()
        assert (cells.loc[control, "group"] == "").all()
        for table in (board.categories, board.overall, board.summary.ranks):
            assert control not in set(table["method_label"])
    # sobel scores above grad but does not push grad from rank 1
    assert cells.loc[("grad", "m1"), "rank"] == 1
    assert set(board.summary.ranks["method_label"]) == {"grad", "weak"}


def test_pairs_with_a_control_are_a_holm_family_of_their_own():
    rows, samples = _results()
    tests = paired_tests(with_controls(rows), samples)
    m1 = tests[tests["metric"] == "m1"]
    assert set(m1["family"]) == {"rank", "control"}
    ranked = m1[m1["family"] == "rank"]
    assert len(ranked) == 1  # grad vs weak alone: Holm over one pair leaves p as it is
    assert ranked["p_holm"].iloc[0] == ranked["p"].iloc[0]
    assert len(m1[m1["family"] == "control"]) == 5  # each control with every other method


def test_a_method_not_better_than_the_noise_control_is_marked_on_its_cell():
    rows, samples = _results()
    verdicts = bar_verdicts(compute_board(rows, samples, CONFIG).cells,
                            paired_tests(with_controls(rows), samples)).set_index(["method_label", "metric"])
    assert verdicts.loc[("grad", "m1"), "clears"] and verdicts.loc[("grad", "m1"), "basis"] == "wilcoxon-holm"
    assert not verdicts.loc[("weak", "m1"), "clears"]
    assert verdicts.loc[("weak", "m1"), "verdict"] == "not different"
    assert "sobel" not in verdicts.index.get_level_values(0)  # controls are not held to the bar
    text = render(rows, ["s"], "bench leaderboard s", samples=samples, config=CONFIG)
    weak = [line for line in text.splitlines() if line.startswith("| weak |")]  # its rows of the track's tables
    grad = [line for line in text.splitlines() if line.startswith("| grad |")]
    assert sum(line.count(BELOW_BAR) for line in weak) == 2 and not any(BELOW_BAR in line for line in grad)
    assert any(line.startswith("| random (reference) | – |") for line in text.splitlines())
    assert any("(ref)" in line for line in text.splitlines() if line.startswith("| sobel (reference)"))


def test_without_a_control_nothing_is_marked():
    rows, samples = make_results({"a": np.zeros((1, 8)), "b": np.ones((1, 8))})
    board = compute_board(rows, samples, CONFIG)
    assert board.controls == () and board.bar.empty and (board.cells["rank"] > 0).all()
    assert BELOW_BAR not in render(rows, [TRACK["suite"]], "bench leaderboard s", samples=samples, config=CONFIG)
