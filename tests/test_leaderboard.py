"""Aggregation, CI-overlap ranking, category/overall ranks, safe rendering, digest, citation."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from bench.board import (
    BoardConfig,
    aggregate,
    bibtex,
    board_globs,
    bootstrap_ci,
    ci_ranks,
    compute_board,
    escape_md,
    render,
)
from bench.errors import SuiteError
from bench.run.results import digest
from bench.suite import load_suite

TRACK = {"suite": "s", "dataset": "shapes", "model": "cnn-small", "activation": "relu"}
CONFIG = BoardConfig(version="9.8.7")


def make_rows(cells: list[tuple[str, str, str, str, float]], **track) -> pd.DataFrame:
    """(method, metric, direction, category, value) → result rows, one job per (method, metric)."""
    t = {**TRACK, **track}
    return pd.DataFrame([{**t, "job_id": f"{t['dataset']}-{m}-{k}", "method": m, "method_label": m, "metric": k,
                          "model_recipe": "{\"split_factor\":1,\"split_index\":0}",
                          "direction": d, "category": c, "value": v, "stderr": 0.0, "n": 10, "model_seed": 0,
                          "model_test_accuracy": 0.9, "created_at": f"2026-01-0{1 + i % 9}T00:00:00+00:00",
                          "bench_version": "0.1.0", "git_commit": "abc123"}
                         for i, (m, k, d, c, v) in enumerate(cells)])


HAND = [  # a hand-made results table; expected ranks worked out in test_category_and_overall_ranks
    ("a", "m1", "lower", "complexity", 1.0), ("b", "m1", "lower", "complexity", 2.0),
    ("c", "m1", "lower", "complexity", 3.0),
    ("a", "m2", "higher", "complexity", 1.0), ("b", "m2", "higher", "complexity", 3.0),
    ("c", "m2", "higher", "complexity", 2.0),
    ("a", "m3", "lower", "faithfulness", 5.0), ("b", "m3", "lower", "faithfulness", 5.0),
    ("c", "m3", "lower", "faithfulness", 1.0),
]


def test_ci_overlap_with_the_best_shares_its_rank():
    value = np.array([1.0, 1.2, 2.0, 2.1, 5.0])
    low, high = value - 0.15, value + 0.15  # 1.0 and 1.2 overlap; 2.0 and 2.1 overlap; 5.0 alone
    assert ci_ranks(value, low, high, "lower").tolist() == [1, 1, 3, 3, 5]
    # direction-aware: higher is better reverses the order, same tie groups
    assert ci_ranks(value, low, high, "higher").tolist() == [4, 4, 2, 2, 1]


def test_tie_is_with_the_leader_not_a_chain():
    # b overlaps a, c overlaps b but not a: c leads the next group (no transitive chaining)
    value = np.array([1.0, 1.25, 1.5])
    low, high = value - 0.15, value + 0.15
    assert ci_ranks(value, low, high, "lower").tolist() == [1, 1, 3]


def test_rank_is_direction_aware_per_metric():
    board = compute_board(make_rows(HAND), config=CONFIG)
    r = board.cells.set_index(["method_label", "metric"])["rank"]
    assert [r["a", "m1"], r["b", "m1"], r["c", "m1"]] == [1, 2, 3]  # lower is better
    assert [r["b", "m2"], r["c", "m2"], r["a", "m2"]] == [1, 2, 3]  # higher is better
    assert [r["c", "m3"], r["a", "m3"], r["b", "m3"]] == [1, 2, 2]  # equal values tie


def test_category_and_overall_ranks():
    board = compute_board(make_rows(HAND), config=CONFIG)
    cat = board.categories.set_index(["method_label", "category"])
    # complexity: mean metric ranks a (1+3)/2 = 2, b (2+1)/2 = 1.5, c (3+2)/2 = 2.5
    assert cat.loc[("b", "complexity"), "rank"] == 1
    assert cat.loc[("a", "complexity"), "rank"] == 2
    assert cat.loc[("c", "complexity"), "rank"] == 3
    # faithfulness: c 1, a 2, b 2; overall = mean of category ranks: a 2, b 1.5, c 2
    over = board.overall.set_index("method_label")
    assert over["overall"].to_dict() == {"a": 2.0, "b": 1.5, "c": 2.0}
    assert over["rank"].to_dict() == {"a": 2, "b": 1, "c": 2}


def test_bootstrap_matches_scipy_percentile():
    rng = np.random.default_rng(1)
    x = rng.gamma(2.0, size=200)  # skewed, so the percentile interval is asymmetric
    low, high = bootstrap_ci([x], resamples=1000, seed=0)
    ref = scipy.stats.bootstrap((x,), np.mean, n_resamples=10_000, method="percentile",
                                confidence_level=0.95, random_state=0).confidence_interval
    width = ref.high - ref.low
    # Monte-Carlo error of a 2.5% percentile over 1,000 resamples is ≈ 2% of the width; allow 10%.
    assert low == pytest.approx(ref.low, abs=0.1 * width)
    assert high == pytest.approx(ref.high, abs=0.1 * width)
    assert bootstrap_ci([x], resamples=1000, seed=0) == (low, high)  # seeded


def test_nested_bootstrap_carries_seed_variation():
    rng = np.random.default_rng(0)
    seeds = [rng.normal(0.0, 0.1, 50), rng.normal(10.0, 0.1, 50)]
    low, high = bootstrap_ci(seeds, resamples=1000, seed=0)
    # resampling the two seeds gives means ≈ 0, 5, 10: the interval spans them (a pooled bootstrap
    # over the 100 samples would give ≈ 5 ± 1)
    assert low < 1 and high > 9


def test_aggregate_uses_samples_and_a_cell_ci_ignores_other_cells():
    rows = make_rows([("a", "m1", "lower", "complexity", 0.0), ("b", "m1", "lower", "complexity", 0.0)])
    rng = np.random.default_rng(0)
    samples = pd.concat([pd.DataFrame({"job_id": j, "metric": "m1", "sample": range(10), "value": rng.normal(size=10)})
                         for j in rows["job_id"]])
    rows["value"] = [samples[samples["job_id"] == j]["value"].mean() for j in rows["job_id"]]
    both = aggregate(rows, samples, CONFIG).set_index("method_label")
    only_a = aggregate(rows.iloc[:1], samples, CONFIG).set_index("method_label")
    assert (both["ci"] == "bootstrap").all()
    assert both.loc["a", ["low", "high"]].tolist() == only_a.loc["a", ["low", "high"]].tolist()
    assert both.loc["a", "low"] < both.loc["a", "value"] < both.loc["a", "high"]


def outside_code(text: str) -> str:
    """The Markdown outside fenced code blocks (inside them, text is shown literally)."""
    out, fence = [], None
    for line in text.splitlines():
        ticks = re.match(r"(`{3,})", line)
        if fence is None and ticks:
            fence = ticks.group(1)
        elif fence is not None and line.strip() == fence:
            fence = None
        elif fence is None:
            out.append(line)
    return "\n".join(out)


def table_blocks(text: str) -> list[list[str]]:
    blocks, cur = [], []
    for line in outside_code(text).splitlines():
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            blocks.append(cur)
            cur = []
    return blocks + ([cur] if cur else [])


HOSTILE = ["a|b<script>alert(1)</script>", "x`y`|", "new\nline | row |", "back\\", "*[link](http://e)*"]


def test_hostile_names_render_safely():
    cells = [(HOSTILE[i % 5], metric, "lower", "complexity", float(i)) for i, metric in
             enumerate(["ef", "m|`q`", "ef", "m|`q`", "ef"])]
    rows = make_rows(cells, dataset="d|s<b>", activation="relu\n| x |")
    text = render(rows, ["s|`"], "bench leaderboard 's|`'", config=CONFIG, globs=["r/s/*.parquet"],
                  plots=[("EF of a|b<script>", "plots/a b<c>.png")], method_citations={"back\\": "x|<i>"})
    assert "<script>" not in outside_code(text) and "<b>" not in outside_code(text)
    assert text.count("```") % 2 == 0
    blocks = table_blocks(text)
    assert len(blocks) >= 5  # front, summary, track overview, metrics legend, methods legend
    for block in blocks:
        cols = {line.count("|") for line in block}
        assert len(cols) == 1, "ragged table:\n" + "\n".join(block)
    track = next(b for b in blocks if b[0].startswith("| method | overall |"))  # the track's overview
    assert len(track) == 2 + len(HOSTILE)  # header, rule, one row per method
    for name in HOSTILE:  # each method is one row, its name escaped in the first cell
        assert sum(line.startswith(f"| {escape_md(name)} |") for line in track) == 1


def test_render_is_deterministic_and_cites_itself():
    rows = make_rows(HAND)
    a = render(rows, ["s"], "bench leaderboard s", config=CONFIG)
    b = render(rows.sample(frac=1, random_state=0), ["s"], "bench leaderboard s", config=CONFIG)
    assert a == b
    assert "9.8.7" in a and f"sha256:{digest(rows)}" in a
    assert "2026-01-09T00:00:00+00:00" in a  # the latest created_at, not the wall clock
    assert "abc123" in a and "bench leaderboard s" in a


def test_sanity_failure_is_marked():
    rows = make_rows([*HAND, ("a", "consistency", "lower", "randomisation", 0.7),
                      ("b", "consistency", "lower", "randomisation", 0.2),
                      ("c", "consistency", "lower", "randomisation", 0.3)])
    text = render(rows, ["s"], "cmd", config=CONFIG, sanity={"s": {"consistency_max": 0.5}})
    assert "| a ⚠ |" in text and "| b ⚠ |" not in text
    assert "consistency ≤ 0.5" in text


def test_suite_declares_sanity_threshold(tiny_suite):
    path = tiny_suite()
    with open(path, "a") as f:
        f.write("\n[sanity]\nconsistency_max = 0.5\n")
    assert load_suite(path).sanity == {"consistency_max": 0.5}
    with open(path, "a") as f:
        f.write("consistency = 0.5\n")
    with pytest.raises(SuiteError, match="<metric>_max"):
        load_suite(path)


def test_digest_changes_iff_a_result_row_changes():
    rows = make_rows(HAND)
    d = digest(rows)
    assert digest(rows.sample(frac=1, random_state=1)) == d  # order
    assert digest(rows.assign(created_at="2030-01-01", device="gpu")) == d  # provenance only
    changed = rows.copy()
    changed.loc[3, "value"] = np.nextafter(changed.loc[3, "value"], np.inf)
    assert digest(changed) != d
    assert digest(rows.iloc[1:]) != d


def test_duckdb_one_liner_reproduces_a_cell(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    rows = make_rows(HAND)
    (tmp_path / "results" / "s").mkdir(parents=True)
    for j, g in rows.groupby("job_id"):
        g.to_parquet(tmp_path / "results" / "s" / f"{j}.parquet")
    globs = board_globs(tmp_path / "results", ["s"], tmp_path)
    text = render(rows, ["s"], "cmd", config=CONFIG, globs=globs)
    shell = re.search(r'duckdb -c "(.*)"', text).group(1)
    sql = re.sub(r'\\(["\\$`])', r"\1", shell)
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        got = duckdb.sql(sql).fetchall()[0][0]
    finally:
        os.chdir(cwd)
    first = compute_board(rows, config=CONFIG).cells.sort_values(["suite", "dataset", "model", "activation",
                                                          "method_label", "metric"]).iloc[0]
    assert got == pytest.approx(first["value"])


def test_bibtex_names_version_and_digest():
    rows = make_rows(HAND)
    bib = bibtex(rows, ["s"], CONFIG)
    assert bib.startswith("@misc{gradbench_board_9_8_7,")
    assert "9.8.7" in bib and digest(rows) in bib and bib.count("{") == bib.count("}")


def test_plots_are_drawn_only_when_their_data_exists(tmp_path):
    from bench.board.plots import make_plots

    rows = make_rows([(m, "ef", "lower", "complexity", v) for m, v in [("grad", 1.0), ("smoothgrad", 0.5)]])
    rows = pd.concat([rows, *(make_rows([(m, "ef", "lower", "complexity", v / b)
                                         for m, v in [("grad", 1.0), ("smoothgrad", 0.5)]],
                                        activation=f"softplus:{b}") for b in (1, 10))], ignore_index=True)
    rows["method_params"], rows["metric_params"], rows["model_recipe"] = "{}", "{}", "{}"
    made, _ = make_plots(rows, [], tmp_path, saliency=False)
    assert [p.name for _, p in made] == ["ef_vs_beta_s_shapes_cnn-small.png"]

    sigma = make_rows([("smoothgrad", k, "lower", "robustness", a * 2) for a in (0.1, 0.2)
                       for k in ("stability", "fidelity")])
    sigma["method_params"] = [f'{{"alpha": {a}}}' for a in (0.1, 0.1, 0.2, 0.2)]
    agree = make_rows([("grad", "split_rank_corr", "higher", "agreement", 1 / sf) for sf in (1, 2, 4)])
    agree["model_recipe"] = [f'{{"split_factor": {sf}}}' for sf in (1, 2, 4)]
    both = pd.concat([sigma, agree], ignore_index=True).fillna({"metric_params": "{}", "method_params": "{}",
                                                                 "model_recipe": "{}"})
    made, _ = make_plots(both, [], tmp_path, saliency=False)
    assert sorted(p.name for _, p in made) == ["agreement_vs_sf_s_shapes_cnn-small_relu.png",
                                               "sigma_s_shapes_cnn-small_relu.png"]
    assert all(p.stat().st_size > 1000 for _, p in made)


def test_line_plots_draw_ci_bands_in_a_colour_blind_safe_palette_with_labelled_axes(tmp_path, monkeypatch):
    import bench.board.plots as plots

    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig) or path)
    methods = [("grad", 1.0), ("smoothgrad", 0.5)]
    rows = pd.concat([make_rows([(m, "ef", "lower", "complexity", v / b) for m, v in methods],
                                activation=f"softplus:{b}") for b in (1, 10)], ignore_index=True)
    rows["stderr"] = 0.05
    rows["method_params"], rows["metric_params"], rows["model_recipe"] = "{}", "{}", "{}"
    plots.ef_vs_beta(rows, tmp_path)
    ax = figures[0].axes[0]
    assert [line.get_color() for line in ax.get_lines()] == list(plots.PALETTE[:2])  # Okabe–Ito, in name order
    bands = [c for c in ax.collections if c.get_paths()]
    assert len(bands) == 2  # one 95% CI band per method
    # the band of grad at β = 1: 1.0 ± z·0.05 (one job per point)
    ys = bands[0].get_paths()[0].vertices[:, 1]
    assert ys.max() == pytest.approx(1.0 + plots.Z95 * 0.05) and ys.min() == pytest.approx(0.1 - plots.Z95 * 0.05)
    assert "dimensionless" in ax.get_xlabel() and "dimensionless" in ax.get_ylabel()
    assert len({str(plots.style(i)) for i in range(3 * len(plots.PALETTE))}) == 3 * len(plots.PALETTE)
    names = ["random", "grad", "sobel"]
    looks = plots.styles(pd.DataFrame({"method_label": names, "method": names}))
    assert looks["grad"]["color"] == plots.PALETTE[0]  # competitors take the palette, controls grey dashes
    assert {looks[c]["color"] for c in ("random", "sobel")} == set(plots.CONTROL_GREYS)
    assert looks["random"]["linestyle"] == "--"


def test_saliency_grids_carry_a_colour_bar_of_the_per_map_scale():
    import matplotlib.pyplot as plt

    from bench.board.plots import map_colourbar

    fig, axes = plt.subplots(2, 3, squeeze=False)
    map_colourbar(fig, axes[:, 1:])
    bar = fig.axes[-1]
    assert len(fig.axes) == 7 and "max |attribution|" in bar.get_ylabel()
    assert [t.get_text() for t in bar.get_yticklabels()] == ["−1", "0", "1"]
    plt.close(fig)


def test_a_metric_of_the_models_predictions_is_one_curve_not_a_stack_of_equal_bands(tmp_path, monkeypatch):
    """split_prediction_agreement is the same for every method on a model: one black curve; split_rank_corr
    differs by method: a curve and band per method."""
    import bench.board.plots as plots

    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig) or path)
    cells = [(m, k, "higher", "agreement", (1.0 if k == "split_prediction_agreement" else v) / sf)
             for sf in (1, 2, 4) for m, v in (("grad", 0.5), ("smoothgrad", 0.8))
             for k in ("split_prediction_agreement", "split_rank_corr")]
    rows = make_rows(cells)
    sfs = [sf for sf in (1, 2, 4) for _ in range(4)]  # the order of `cells`
    rows["model_recipe"] = [f'{{"split_factor": {sf}}}' for sf in sfs]
    rows["model_hash"] = [f"model-sf{sf}" for sf in sfs]
    rows["job_id"] = rows["job_id"] + rows["model_hash"]
    rows["stderr"], rows["metric_params"], rows["method_params"] = 0.02, "{}", "{}"
    plots.agreement_vs_split(rows, tmp_path)
    prediction, rank = figures[0].axes[:2]
    assert [line.get_label() for line in prediction.get_lines()] == ["every method (the models')"]
    assert prediction.get_lines()[0].get_ydata().tolist() == [1.0, 0.5, 0.25]
    assert len([c for c in prediction.collections if c.get_paths()]) == 1
    assert [line.get_label() for line in rank.get_lines()] == ["grad", "smoothgrad"]


def test_grid_column_titles_put_parameters_under_the_name_in_short_lines():
    from bench.board.plots import column_title

    assert column_title("grad") == "grad"
    assert column_title("smoothgrad(n=32, sigma=0.1)") == "smoothgrad\n(n=32,\nsigma=0.1)"
    assert all(len(line) <= 16 for line in column_title("a-ig-b(n=10, steps=16, c=0.95)").split("\n")[1:])
