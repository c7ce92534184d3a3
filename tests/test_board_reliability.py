"""Reliability of a metric on a track (reactivity to controls, noise resilience, concordance) and cost."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_board_significance import TRACK, make_results

from bench.board import compute_board, render
from bench.board.config import BoardConfig, load_board_config
from bench.board.friedman import OVERALL
from bench.board.references import with_controls
from bench.board.reliability import concordance, cost, metric_flags, noise_resilience, reactivity
from bench.board.significance import PERTURBATION, paired_tests
from bench.board.stats import aggregate

CONFIG = BoardConfig(bootstrap_resamples=200)
KEY = ("s", "shapes", "cnn-small", "relu", "", "m")


def _react(values: dict[str, np.ndarray], controls: tuple[str, ...] | None = None):
    rows, samples = make_results(values)
    rows = with_controls(rows)  # random and sobel: declared controls in the registry
    return reactivity(aggregate(rows, samples, CONFIG), paired_tests(rows, samples), controls=controls).iloc[0]


def test_a_metric_that_ignores_the_map_is_flagged():
    per_input = np.random.default_rng(0).normal(size=(2, 20))  # the same score whatever the map
    r = _react({"grad": per_input, "random": per_input.copy(), "sobel": per_input.copy()})
    assert r["vs_random"] == "not different" and r["vs_sobel"] == "not different" and r["unreactive"]
    assert r["basis"] == "wilcoxon-holm" and r["p_random"] == 1.0


def test_a_metric_that_sees_the_map_is_not_flagged():
    noise = np.random.default_rng(1).normal(size=(2, 20))
    r = _react({"grad": noise + 1.0, "random": noise, "sobel": noise + 2.0})
    assert (r["vs_random"], r["vs_sobel"], r["unreactive"]) == ("better", "worse", False)
    assert r["effect_random"] == pytest.approx(1.0) and r["effect_sobel"] == pytest.approx(-1.0)


def test_reactivity_not_measured_without_the_control():
    noise = np.random.default_rng(2).normal(size=(2, 20))
    r = _react({"grad": noise, "smoothgrad": noise + 1.0}, controls=("random", "sobel"))
    assert (r["vs_random"], r["vs_sobel"], r["unreactive"]) == ("not measured", "not measured", False)


def test_reactivity_falls_back_to_ci_without_per_sample_values():
    rows, samples = make_results({"grad": np.full((1, 4), 5.0), "random": np.full((1, 4), 1.0)})
    rows = with_controls(rows)
    rows["stderr"] = 0.1
    r = reactivity(aggregate(rows, None, CONFIG), paired_tests(rows, samples.iloc[:0])).iloc[0]
    assert (r["vs_random"], r["basis"], r["unreactive"]) == ("better", "ci-overlap", False)


def _nr_rows() -> pd.DataFrame:
    """Three methods, two seeds; ordinary values 1, 2, 3 (std 0.8165 over methods); the perturbation
    moves a by 0.1 and 0.3, b by 0.2 on both seeds, c not at all: shift = (0.2 + 0.2 + 0)/3."""
    ordinary = {"a": 1.0, "b": 2.0, "c": 3.0}
    moves = {"a": [0.1, -0.3], "b": [0.2, 0.2], "c": [0.0, 0.0]}
    rows = []
    for method, v in ordinary.items():
        for seed in (0, 1):
            base = {**TRACK, "method_label": method, "metric": "m", "model_seed": seed, "job_id": f"{method}{seed}"}
            rows.append({**base, "value": v, PERTURBATION: ""})
            rows.append({**base, "job_id": f"{method}{seed}p", "value": v + moves[method][seed],
                         PERTURBATION: "gaussian:0.01"})
    return pd.DataFrame(rows)


def test_noise_resilience_on_constructed_rows():
    nr = noise_resilience(_nr_rows(), threshold=0.5).iloc[0]
    spread = np.std([1.0, 2.0, 3.0])
    assert nr["shift"] == pytest.approx(0.4 / 3) and nr["spread"] == pytest.approx(spread)
    assert nr["nr"] == pytest.approx(0.4 / 3 / spread) and not nr["flagged"]
    assert (nr["methods"], nr["jobs"], nr["perturbation"]) == (3, 6, "gaussian:0.01")
    assert noise_resilience(_nr_rows(), threshold=0.1).iloc[0]["flagged"]


def test_noise_resilience_needs_perturbed_rows():
    rows = _nr_rows()
    assert noise_resilience(rows[rows[PERTURBATION] == ""]).empty
    assert noise_resilience(rows.drop(columns=PERTURBATION)).empty


def test_perturbed_rows_stay_out_of_the_paired_tests():
    rng = np.random.default_rng(3)
    rows, samples = make_results({"a": rng.normal(size=(2, 10)), "b": rng.normal(size=(2, 10))})
    moved_rows = rows.assign(job_id=rows["job_id"] + "p", **{PERTURBATION: "gaussian:0.01"})
    moved_samples = samples.assign(job_id=samples["job_id"] + "p", value=samples["value"] + 5.0)
    both = paired_tests(pd.concat([rows.assign(**{PERTURBATION: ""}), moved_rows]),
                        pd.concat([samples, moved_samples]))
    pd.testing.assert_frame_equal(both, paired_tests(rows, samples))


def test_concordance_is_kendalls_w_of_a_categorys_metrics():
    cells = pd.DataFrame([{**TRACK, "method_label": m, "metric": metric, "direction": d, "category": "complexity",
                           "value": v} for metric, d, values in
                          [("m1", "higher", {"a": 3.0, "b": 2.0, "c": 1.0}),
                           ("m2", "lower", {"a": 1.0, "b": 2.0, "c": 3.0}),  # the same order: lower is better
                           ("m3", "higher", {"a": 1.0, "b": 2.0, "c": 3.0, "d": 0.0})]  # reversed; d only here
                          for m, v in values.items()])
    c = concordance(cells).iloc[0]
    assert (c["metrics"], c["methods"]) == (3, 3)  # d, scored by one metric only, is left out
    # rank sums a 1+1+3, b 2+2+2, c 3+3+1 → 5, 6, 7; S = 2; W = 12·2/(9·24) = 1/9
    assert c["w"] == pytest.approx(1 / 9) and c["chi2"] == pytest.approx(1 / 9 * 3 * 2)
    assert concordance(cells[cells["metric"] == "m1"]).empty  # one metric: nothing to agree on


def test_cost_counts_each_job_once():
    rows = pd.DataFrame([{**TRACK, "job_id": job, "method_label": "grad", "metric": metric, "samples": 50,
                          "n": 48, "explain_seconds": seconds, "explain_passes": 50 * passes, "device": device}
                         for job, seconds, passes, device in [("j1", 2.0, 1, "cpu"), ("j2", 3.0, 3, "cuda:0 (H100)")]
                         for metric in ("ef", "delta_ef", "sparseness")])  # timings repeat on every metric row
    c = cost(rows).iloc[0]
    assert (c["jobs"], c["maps"], c["explain_seconds"]) == (2, 100, 5.0)
    assert c["maps_per_second"] == pytest.approx(100 / 5.0) and c["passes_per_map"] == pytest.approx(200 / 100)
    assert c["devices"] == "cpu; cuda:0 (H100)"


def test_metric_flags_name_the_reasons():
    per_input = np.random.default_rng(4).normal(size=(2, 20))
    rows, samples = make_results({"grad": per_input, "random": per_input.copy()})
    rows = with_controls(rows)
    react = reactivity(aggregate(rows, samples, CONFIG), paired_tests(rows, samples))
    flags = metric_flags(react, noise_resilience(_nr_rows(), threshold=0.1))
    assert flags == {KEY: ["does not rank grad above random (not different)",
                           "noise resilience 0.16 under gaussian:0.01"]}


def test_noise_resilience_threshold_and_alpha_are_board_settings():
    config = load_board_config()
    assert config.noise_resilience_max == 0.5 and config.alpha == 0.05


def test_a_flagged_metric_is_shown_but_left_out_of_the_summary():
    noise = np.random.default_rng(5).normal(size=(2, 20))
    seen = make_results({"grad": noise + 2.0, "smoothgrad": noise + 1.0, "random": noise.copy()}, metric="m1")
    blind = make_results({"grad": noise.copy(), "smoothgrad": noise + 1.0, "random": noise.copy()}, metric="m2",
                         category="complexity")  # cannot tell grad from random: flagged
    rows, samples = (pd.concat([a, b], ignore_index=True) for a, b in zip(seen, blind, strict=True))
    board = compute_board(rows, samples, CONFIG)
    assert list(board.metric_flags) == [(*KEY[:-1], "m2")]
    assert set(board.cells["metric"]) == {"m1", "m2"}  # still shown
    assert set(board.summary.tests["scope"]) == {"faithfulness", OVERALL}  # m2's category cast no vote
    text = render(rows, ["s"], "bench leaderboard s", samples=samples, config=CONFIG)
    assert "Not counted in these ranks (shown in the track tables, flagged ⚑ unreliable, see Metric " \
           "reliability): m2 on shapes · cnn-small · relu." in text
