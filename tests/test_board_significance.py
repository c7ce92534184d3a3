"""Paired Wilcoxon–Holm ranks within a track; Friedman, Nemenyi and Kendall's W across tracks; CD diagrams."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from bench.board.config import BoardConfig
from bench.board.friedman import (
    OVERALL,
    block_rank_matrix,
    critical_difference,
    friedman,
    kendall_w,
    nemenyi_groups,
    nemenyi_q,
    suite_summaries,
)
from bench.board.significance import (
    CI_OVERLAP,
    WILCOXON,
    holm,
    letter_display,
    oriented_samples,
    paired_test,
    paired_tests,
    rank_biserial,
    rank_cells,
)
from bench.board.stats import aggregate, rank

TRACK = {"suite": "s", "dataset": "shapes", "model": "cnn-small", "activation": "relu", "training": ""}
CONFIG = BoardConfig(bootstrap_resamples=200)


def make_results(values: dict[str, np.ndarray], metric: str = "m", direction: str = "higher",
                 aggregate_kind: str = "mean", category: str = "faithfulness", **track):
    """Rows and per-sample values of one metric: ``values[method]`` is seeds × inputs (NaN = left out)."""
    t = {**TRACK, **track}
    rows, samples = [], []
    for method, v in values.items():
        for seed, per_input in enumerate(np.atleast_2d(v)):
            job = f"{t['activation']}-{method}-{seed}-{metric}"
            kept = np.flatnonzero(~np.isnan(per_input))
            mean = float(per_input[kept].mean())
            rows.append({**t, "job_id": job, "method": method, "method_label": method, "metric": metric,
                         "direction": direction, "category": category, "aggregate": aggregate_kind,
                         "value": abs(mean) if aggregate_kind == "abs_mean" else mean, "stderr": 0.0,
                         "n": len(kept), "model_seed": seed})
            samples.append(pd.DataFrame({"job_id": job, "metric": metric, "sample": kept, "value": per_input[kept]}))
    return pd.DataFrame(rows), pd.concat(samples, ignore_index=True)


def ranked(rows, samples):
    cells = aggregate(rows, samples, CONFIG)
    return rank_cells(cells, paired_tests(rows, samples)).set_index("method_label")


# -- within a track -------------------------------------------------------------------------------
def test_holm_against_a_hand_example():
    # sorted p: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → kept monotone: 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1, then monotone


def test_holm_rejects_what_the_step_down_procedure_rejects():
    # Holm (1979) as a procedure: walk up the sorted p-values, reject while p_(i) ≤ α/(m − i + 1)
    rng = np.random.default_rng(3)
    for _ in range(50):
        p = rng.uniform(0, 0.08, size=7) ** rng.uniform(1, 3)
        alpha, rejected = 0.05, set()
        for i, j in enumerate(np.argsort(p)):
            if p[j] > alpha / (len(p) - i):
                break
            rejected.add(j)
        assert {j for j, q in enumerate(holm(p)) if q <= alpha} == rejected


def test_rank_biserial_hand_example_and_scipy_statistic():
    d = np.array([1.0, -2.0, 3.0, 4.0])  # ranks of |d| 1, 2, 3, 4: T+ = 8, T− = 2 → (8 − 2)/10
    assert rank_biserial(d) == pytest.approx(0.6)
    stat, p, effect = paired_test(d, np.zeros(4))
    assert stat == scipy.stats.wilcoxon(d).statistic == 2.0
    assert p == pytest.approx(scipy.stats.wilcoxon(d).pvalue) and effect == pytest.approx(0.6)


def test_identical_methods_are_not_different():
    x = np.random.default_rng(0).normal(size=40)
    assert paired_test(x, x.copy()) == (0.0, 1.0, 0.0)
    assert paired_test(x, x + 1e-17)[1] == 1.0  # float noise is a zero difference


@pytest.mark.parametrize("direction", ["higher", "lower"])
def test_better_on_every_input_by_a_small_margin_ranks_strictly_above(direction):
    base = np.random.default_rng(1).normal(size=(2, 30))  # inputs differ a lot: every CI overlaps
    step = 1e-3 if direction == "higher" else -1e-3
    rows, samples = make_results({"best": base + step, "same1": base, "same2": base.copy()}, direction=direction)
    ci = rank(aggregate(rows, samples, CONFIG)).set_index("method_label")["rank"]
    assert ci.tolist() == [1, 1, 1]  # CI overlap cannot tell them apart
    r = ranked(rows, samples)
    assert (r["test"] == WILCOXON).all()
    assert r.loc["best", "rank"] == 1 and r.loc["same1", "rank"] == r.loc["same2", "rank"] == 2
    assert r.loc["best", "group"] == "a" and r.loc["same1", "group"] == r.loc["same2", "group"] == "b"


def test_pairs_match_on_seed_and_input_index():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(2, 20))
    b = a - 0.5
    b[1, 3] = np.nan  # a constant map: input 3 of seed 1 left out of b
    rows, samples = make_results({"a": a, "b": b})
    t = paired_tests(rows, samples).iloc[0]
    assert t["pairs"] == 39 and t["better"] == "a" and t["effect"] == pytest.approx(1.0)
    shuffled = paired_tests(rows, samples.sample(frac=1, random_state=0))
    pd.testing.assert_frame_equal(paired_tests(rows, samples), shuffled)


def test_few_pairs_or_no_samples_fall_back_to_ci_overlap():
    rows, samples = make_results({"a": np.arange(5.0) + 1, "b": np.arange(5.0)})  # 5 pairs < 6
    assert (ranked(rows, samples)["test"] == CI_OVERLAP).all()
    rows, samples = make_results({"a": np.arange(8.0) + 1, "b": np.arange(8.0)})
    assert (ranked(rows, samples)["test"] == WILCOXON).all()
    no_b = samples[~samples["job_id"].str.contains("-b-")]
    assert (rank_cells(aggregate(rows, no_b, CONFIG), paired_tests(rows, no_b))["test"] == CI_OVERLAP).all()


def test_abs_mean_is_tested_on_values_turned_by_their_jobs_sign():
    rng = np.random.default_rng(4)
    signed = {"neg": rng.normal(-1.0, 0.3, size=(2, 12)), "pos": rng.normal(0.2, 0.3, size=(2, 12))}
    rows, samples = make_results(signed, metric="delta_ef", direction="lower", aggregate_kind="abs_mean")
    s = oriented_samples(rows, samples)
    job_means = s.groupby(["method_label", "model_seed"])["score"].mean()
    values = rows.set_index(["method_label", "model_seed"])["value"]
    assert job_means.to_numpy() == pytest.approx(-values.loc[job_means.index].to_numpy())  # −|mean|: lower
    assert paired_tests(rows, samples).iloc[0]["better"] == "pos"  # |−1| is farther from 0 than |0.2|


def test_letter_display_hand_example():
    # a ≠ c only: {a, b} and {b, c} are the maximal sets of indistinguishable methods
    assert letter_display(["a", "b", "c"], {frozenset("ac")}) == {"a": "a", "b": "ab", "c": "b"}
    assert letter_display(["a", "b"], set()) == {"a": "a", "b": "a"}


# -- across tracks ----------------------------------------------------------------------------------
DEMSAR_TABLE_5 = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]  # k = 2..10, α = 0.05


def test_nemenyi_q_matches_demsar_table_5():
    # Demšar's values are studentized range quantiles from 3-digit tables over √2: agree to 1e-3
    assert [nemenyi_q(k, 0.05) for k in range(2, 11)] == pytest.approx(DEMSAR_TABLE_5, abs=1e-3)


def test_critical_difference_of_demsars_example():
    assert critical_difference(4, 14, 0.05) == pytest.approx(1.25, abs=5e-3)  # Demšar (2006), §3.2.2


def test_friedman_matches_scipy_with_ties():
    values = np.array([[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 1.0, 5.0], [3.0, 1.0, 1.0, 4.0],
                       [1.0, 3.0, 2.0, 2.0], [4.0, 1.0, 2.0, 3.0], [1.0, 2.0, 4.0, 4.0]])
    ref = scipy.stats.friedmanchisquare(*values.T)
    assert friedman(block_rank_matrix(values)) == pytest.approx((ref.statistic, ref.pvalue))


def test_kendall_w_hand_examples():
    # 3 raters, 4 objects, no ties: rank sums 4, 6, 8, 12; S = 35; W = 12·35/(9·60) = 7/9
    ranks = np.array([[1, 2, 3, 4], [1, 3, 2, 4], [2, 1, 3, 4]], dtype=float)
    assert kendall_w(-ranks) == pytest.approx(7 / 9)
    # ties: rank sums 2.5, 3.5, 6, 8; S = 18.5; T = 2³ − 2 = 6; W = 12·18.5/(4·60 − 2·6)
    tied = np.array([[1, 2, 3, 4], [1.5, 1.5, 3, 4]])
    assert kendall_w(-tied) == pytest.approx(222 / 228)
    assert kendall_w(np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])) == pytest.approx(1.0)
    assert kendall_w(np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])) == pytest.approx(0.0)


def test_kendall_w_is_friedmans_statistic_normalised():
    values = np.random.default_rng(5).integers(0, 4, size=(7, 5)).astype(float)  # ties on purpose
    m, k = values.shape
    ref = scipy.stats.friedmanchisquare(*values.T).statistic
    assert kendall_w(values) == pytest.approx(ref / (m * (k - 1)))


def test_nemenyi_groups_are_maximal_runs_within_cd():
    assert nemenyi_groups([1.0, 1.5, 2.6, 3.0], 1.0) == [(0, 1), (2, 3)]
    assert nemenyi_groups([2.5, 1.0, 1.8], 1.0) == [(0, 1), (1, 2)]  # sorted first
    assert nemenyi_groups([1.0, 2.0, 3.0], 0.5) == []


def _cells(per_track: dict[str, dict[str, float]], metrics=("m1", "m2"), category="complexity") -> pd.DataFrame:
    """Cells of tracks (activation → method → value), one value per method and metric, higher better."""
    return pd.DataFrame([{**TRACK, "activation": act, "method_label": method, "metric": metric,
                          "direction": "higher", "category": category, "value": v + 0.1 * i}
                         for act, methods in per_track.items() for method, v in methods.items()
                         for i, metric in enumerate(metrics)])


def test_suite_summary_leaves_out_methods_missing_a_track():
    cells = _cells({"relu": {"a": 3.0, "b": 2.0, "c": 1.0, "d": 9.0}, "gelu": {"a": 3.0, "b": 2.0, "c": 1.0}})
    summary = suite_summaries(cells)
    assert summary.left_out[["suite", "method_label"]].values.tolist() == [["s", "d"]]
    assert "on 1 of 2 tracks; not on shapes · cnn-small · gelu" in summary.left_out["reason"].iloc[0]
    assert "d" not in set(summary.ranks["method_label"])
    test = summary.tests.set_index("scope").loc["complexity"]
    assert (test["methods"], test["blocks"]) == (3, 4)


def test_consistent_order_is_ranked_by_critical_difference():
    blocks = {f"act{i}": {"a": 3.0, "b": 2.0, "c": 1.0} for i in range(10)}  # 20 blocks, always a > b > c
    summary = suite_summaries(_cells(blocks))
    r = summary.ranks[summary.ranks["scope"] == "complexity"].set_index("method_label")
    assert r["mean_rank"].to_dict() == {"a": 1.0, "b": 2.0, "c": 3.0}
    assert r["rank"].to_dict() == {"a": 1, "b": 2, "c": 3}  # CD(3, 20) = 0.74 < 1
    test = summary.tests.set_index("scope").loc["complexity"]
    assert test["chi2"] == pytest.approx(40.0) and test["cd"] == pytest.approx(critical_difference(3, 20))
    overall = summary.ranks[summary.ranks["scope"] == OVERALL].set_index("method_label")["rank"]
    assert overall.to_dict() == {"a": 1, "b": 1, "c": 2}  # 10 (track, category) blocks: CD = 1.05 > 1 = b − a


def test_no_difference_without_friedman_rejecting():
    cells = _cells({"relu": {"a": 3.0, "b": 2.0, "c": 1.0}, "gelu": {"a": 1.0, "b": 2.0, "c": 3.0}})
    summary = suite_summaries(cells)
    assert (summary.ranks["rank"] == 1).all()


def test_cd_diagram_is_written_and_byte_identical_on_redraw(tmp_path):
    from bench.board.cd_diagram import cd_diagram, suite_cd_diagrams

    ranks = {"grad": 3.4, "smoothgrad": 1.2, "integrated_gradients": 2.1, "random": 4.9, "sobel": 3.9}
    first = cd_diagram(ranks, 1.1, tmp_path / "a.png", "title").read_bytes()
    second = cd_diagram(dict(reversed(list(ranks.items()))), 1.1, tmp_path / "b.png", "title").read_bytes()
    assert first.startswith(b"\x89PNG") and first == second
    blocks = {f"act{i}": {"a": 3.0, "b": 2.0, "c": 1.0} for i in range(3)}
    made = suite_cd_diagrams(suite_summaries(_cells(blocks)), tmp_path, scopes=("complexity", "overall"))
    assert [(s, p.name) for s, _, p in made] == [("s", "cd_s_complexity.png"), ("s", "cd_s_overall.png")]
    assert [p.name for _, _, p in suite_cd_diagrams(suite_summaries(_cells(blocks)), tmp_path)] == ["cd_s_overall.png"]


def test_track_cells_show_the_effect_against_the_leader():
    from bench.board.render import render

    base = np.random.default_rng(1).normal(size=(2, 30))
    rows, samples = make_results({"best": base + 1e-3, "same": base})
    rows = rows.assign(suite="s", created_at="2026-01-01", model_test_accuracy=0.9)
    text = render(rows, ["s"], "bench leaderboard s", samples=samples, config=CONFIG)
    best = next(line for line in text.splitlines() if line.startswith("| best |") and "±" in line)
    same = next(line for line in text.splitlines() if line.startswith("| same |") and "±" in line)
    assert "(1 a)" in best and "; r " not in best  # the leader has no effect against itself
    assert "(2 b; r -1.00)" in same  # worse on every input: rank-biserial −1
