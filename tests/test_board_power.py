"""The board's power statements: minimum detectable effect per metric, and what a tie would need."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from test_board_significance import make_results

from bench.board import compute_board, render
from bench.board.config import BoardConfig
from bench.board.power import blocks_needed, seeds_needed
from bench.board.stats import detectable_effect, t_detectable_effect

CONFIG = BoardConfig(bootstrap_resamples=200)


def test_detectable_effect_hand_values():
    # large df: the normal quantiles, z(0.975) + z(0.8) = 1.95996 + 0.84162
    assert detectable_effect(1.0, 1e9) == pytest.approx(2.80158, abs=1e-4)
    # df 4: t(0.975; 4) + t(0.8; 4) = 2.77645 + 0.94096 (scipy.stats.t.ppf)
    assert detectable_effect(0.5, 4) == pytest.approx(0.5 * (2.77645 + 0.94096), abs=1e-4)
    assert math.isnan(detectable_effect(1.0, 0))
    # the claims' MDE is the same formula on the bootstrap's seed-corrected SE
    reps = np.random.default_rng(0).normal(size=4000)
    assert t_detectable_effect(reps, 5) == pytest.approx(detectable_effect(reps.std() * math.sqrt(5 / 4), 4))


def test_the_mde_is_detected_with_the_stated_power():
    n, sd = 64, 1.0
    mde = detectable_effect(sd / math.sqrt(n), n - 1)
    rng = np.random.default_rng(1)
    d = rng.normal(mde, sd, size=(4000, n))
    rejected = scipy.stats.ttest_1samp(d, 0.0, axis=1).pvalue <= 0.05
    assert rejected.mean() == pytest.approx(0.8, abs=0.025)  # Monte-Carlo SE ≈ 0.006


def test_seeds_needed_hand_example():
    # sd 1, 10 inputs per seed, effect 0.5: 30 pairs give MDE 0.529 (t(29)), 40 give 0.454 (t(39))
    assert seeds_needed(0.5, 1.0, 10) == 4
    assert seeds_needed(-0.5, 1.0, 10) == 4  # the sign does not matter
    assert seeds_needed(0.0, 1.0, 10) == math.inf and seeds_needed(1e-9, 1.0, 10) == math.inf


def test_blocks_needed_for_a_nemenyi_gap():
    q = 2.728  # Demšar 2006, Table 5(a): k = 5, α = 0.05
    assert blocks_needed(1.0, q, 5) == math.ceil(q**2 * 30 / 6)
    assert blocks_needed(0.0, q, 5) == math.inf


def test_board_states_each_metrics_mde_and_what_its_ties_need():
    rng = np.random.default_rng(2)
    noise = rng.normal(size=(2, 30))
    values = {"a": noise + 1.0, "b": noise + 1.0 + rng.normal(0.0, 0.1, size=(2, 30)), "random": noise.copy()}
    rows, samples = make_results(values)
    board = compute_board(rows, samples, CONFIG)
    mde = board.mde.set_index("metric").loc["m"]
    assert mde["pairs"] == 60 and mde["seeds"] == 2  # a – b only: the control is not a competitor
    assert mde["mde"] == pytest.approx(detectable_effect(mde["sd"] / math.sqrt(60), 59))
    ties = board.ties.set_index(["method_a", "method_b"])
    assert list(ties.index) == [("a", "b")]  # one block: nothing is told apart
    text = render(rows, ["s"], "bench leaderboard s", samples=samples, config=CONFIG)
    assert "Minimum detectable effect" in text and "| a – b |" in text
