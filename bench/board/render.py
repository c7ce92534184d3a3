"""The board's content as a ``Document``: header, summary, one table per track, plots, legend and a DuckDB
example. ``markdown`` writes it as ``leaderboard.md``, ``html`` as the static page; neither recomputes.

The content depends only on the rows (its date is their latest ``created_at``, never the wall clock), so
regenerating from the same results gives the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bench import registry
from bench.board.compute import Board, compute_board
from bench.board.config import BoardConfig
from bench.board.document import (
    Anchors,
    BulletList,
    Cell,
    Code,
    Column,
    Document,
    Field,
    Image,
    Line,
    Paragraph,
    Section,
    Span,
    Table,
)
from bench.board.markdown import to_markdown
from bench.board.power import POWER
from bench.board.references import BELOW_BAR, below_bar, competitors
from bench.board.sections import number, ordered_categories, reliability_sections, suite_sections, track_title
from bench.board.significance import RANKED
from bench.board.stats import CELL, TRACK, with_training
from bench.metrics.base import CATEGORIES
from bench.run.results import digest, ordinary_rows


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _cell(r: pd.Series, effect: float | None = None, below_bar: bool = False) -> Cell:
    ci = f" ± {r['half']:.2g}" if np.isfinite(r["half"]) else ""
    if r.get("control"):  # a reference row: its value and CI, no rank
        return Cell(f"{_fmt(r['value'])}{ci} (ref)", number(r["value"]), reference=True)
    group = f" {r['group']}" if r.get("group") else ""
    versus = f"; r {effect:+.2f}" if effect is not None and np.isfinite(effect) else ""
    return Cell(f"{_fmt(r['value'])}{ci} ({r['rank']}{group}{versus})", number(r["value"]),
                BELOW_BAR if below_bar else None)


def _effects_vs_leader(cells: pd.DataFrame, tests: pd.DataFrame) -> dict[tuple[str, str], float]:
    """(metric, method) → rank-biserial effect of the method against the metric's leader in the track
    (rank 1, best mean; < 0: worse than the leader), from the paired tests of the competitors."""
    out = {}
    cells = competitors(cells)
    if "family" in tests:
        tests = tests[tests["family"] == RANKED]
    for metric, g in cells.groupby("metric", sort=True):
        sign = -1.0 if g["direction"].iloc[0] == "lower" else 1.0
        leader = min(g.itertuples(index=False), key=lambda c: (c.rank, -sign * c.value, c.method_label)).method_label
        for t in tests[tests["metric"] == metric].itertuples(index=False):
            if leader in (t.method_a, t.method_b):
                other = t.method_b if t.method_a == leader else t.method_a
                out[(metric, other)] = -t.effect if t.method_a == leader else t.effect
    return out


def _arrow(direction: str) -> str:
    return "↑" if direction == "higher" else "↓"


def sql_literal(text: object) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def cell_query(cell: Mapping[str, object], globs: Sequence[str]) -> str:
    """DuckDB SQL reproducing a cell's value from the Parquet rows (mean over jobs of job means)."""
    def cond(c: str) -> str:
        if c == "training":  # derived, not stored: match the split factor inside the canonical recipe JSON
            sf = int(str(cell[c])[3:]) if cell[c] else 1
            return f"model_recipe LIKE '%\"split_factor\":{sf},%'"
        return f"{c} = {sql_literal(cell[c])}"

    where = " AND ".join(cond(c) for c in CELL)
    return f"SELECT avg(value) FROM read_parquet([{', '.join(map(sql_literal, globs))}]) WHERE {where}"


def _shell_double_quoted(text: str) -> str:
    return '"' + re.sub(r'(["\\$`])', r"\\\1", text) + '"'


def render(rows: pd.DataFrame, suites: Sequence[str], command: str, **kwargs: object) -> str:
    """The board as Markdown (``leaderboard.md``); arguments as :func:`board_document`."""
    return to_markdown(board_document(rows, suites, command, **kwargs))


def board_document(rows: pd.DataFrame, suites: Sequence[str], command: str, *, samples: pd.DataFrame | None = None,
                   config: BoardConfig | None = None, sanity: Mapping[str, Mapping[str, float]] | None = None,
                   plots: Sequence[tuple[str, str]] = (), globs: Sequence[str] = (),
                   method_citations: Mapping[str, str] | None = None, board: Board | None = None,
                   cd_images: Mapping[str, str] | None = None) -> Document:
    """The board's content, for either serialiser. ``plots``: (title, path relative to the Markdown
    board); ``globs``: the Parquet row files (as the reader will type them) for the DuckDB example;
    ``board``: the computed board if the caller has it (else computed here); ``cd_images``: suite → its
    critical-difference diagram (path relative to the Markdown board)."""
    rows = with_training(rows)
    config = config or BoardConfig()
    board = board or compute_board(rows, samples, config, sanity)
    cells, over = board.cells, board.overall
    with_suite = rows["suite"].nunique() > 1
    tracks = sorted(over.groupby(TRACK).groups)
    bootstrap_share = (cells["ci"] == "bootstrap").mean()
    ids = Anchors()

    sections = [*suite_sections(board, cd_images or {}, ids),
                *(_track_section(rows, board, t, with_suite, ids, config) for t in tracks),
                *reliability_sections(board, with_suite, ids)]
    if plots:
        sections.append(Section(ids.new("plots"), "Plots", 2))
        sections += [Section(ids.new("plot", title), title, 3, [Image(title, path)], suite=_plot_suite(title, rows))
                     for title, path in plots]
    sections += _legend(cells, config, sanity or {}, bootstrap_share, globs, method_citations or {}, ids,
                        board.controls)
    return Document(config.title, _header(rows, suites, config), command, sections)


def _plot_suite(title: str, rows: pd.DataFrame) -> str | None:
    """Every plot's title ends with "(suite)" (bench.board.plots): the page filters plots by it."""
    return next((s for s in sorted(rows["suite"].unique(), key=len, reverse=True)
                 if title.endswith(f"({s})")), None)


def _header(rows: pd.DataFrame, suites: Sequence[str], config: BoardConfig) -> list[Field]:
    created = str(rows["created_at"].max()) if "created_at" in rows and rows["created_at"].notna().any() else "unknown"
    versions = sorted({str(v) for v in rows.get("bench_version", pd.Series(dtype=str)).dropna() if v}) or ["unknown"]
    commits = sorted({str(v) for v in rows.get("git_commit", pd.Series(dtype=str)).dropna() if v}) or ["unknown"]
    return [
        Field("Board version", (Span(config.version, "strong"),)),
        Field("Results digest", (Span(f"sha256:{digest(rows)}", "code"),)),
        Field("Date", (f"{created} (the latest result's timestamp)",)),
        Field("GradBench", (f"{', '.join(versions)}; commit {', '.join(commits)}",)),
        Field("Suites", (f"{', '.join(suites)}; jobs: {rows['job_id'].nunique()}; result rows: {len(rows)}",)),
    ]


def _method_cell(method: str, flagged: bool) -> Cell:
    return Cell(method, method, "⚠" if flagged else None)


def _reference_row(method: str, cells: pd.DataFrame, metrics: Sequence[str], categories: Sequence[str],
                   tail: list[Cell]) -> list[Cell]:
    """A control's row: its cells' values and CIs, no rank anywhere, greyed in HTML."""
    mine = cells[cells["method_label"] == method].set_index("metric")
    return [Cell(f"{method} (reference)", method, reference=True), Cell("–", reference=True),
            *(Cell("–", reference=True) for _ in categories),
            *(_cell(mine.loc[m]) if m in mine.index else Cell("–", reference=True) for m in metrics), *tail]


def _mde_line(mde: pd.DataFrame, metrics: Sequence[str], config: BoardConfig) -> Line:
    """Per metric: the smallest mean paired difference between two methods the data can detect."""
    by_metric = mde.set_index("metric")
    parts = [f"{m} {by_metric.loc[m, 'mde']:.2g} (n {by_metric.loc[m, 'pairs']})" for m in metrics
             if m in by_metric.index and np.isfinite(by_metric.loc[m, "mde"])]
    return (f"Minimum detectable effect (mean paired difference detected with power {POWER:g} at α = "
            f"{config.alpha:g}, two-sided; n pairs = inputs × training seeds): {', '.join(parts)}.",)


def _track_section(rows: pd.DataFrame, board: Board, track: tuple, with_suite: bool, ids: Anchors,
                   config: BoardConfig) -> Section:
    cells, cat, over, part, spend = (_in_track(t, track) for t in (board.cells, board.categories, board.overall,
                                                                   ordinary_rows(rows), board.cost))
    metrics = sorted(cells["metric"].unique(), key=lambda m: (_category_order(cells, m), m))
    categories = ordered_categories(set(cat["category"]))
    directions = cells.groupby("metric")["direction"].first()
    metric_category = cells.groupby("metric")["category"].first()
    unreliable = {m: board.metric_flags[(*track, m)] for m in metrics if (*track, m) in board.metric_flags}
    acc = part["model_test_accuracy"].mean() if "model_test_accuracy" in part else float("nan")
    seeds = sorted(part["model_seed"].unique()) if "model_seed" in part else []

    section = Section(ids.new("track", *track), track_title(track, with_suite), 2, suite=str(track[0]))
    section.blocks.append(Paragraph([(
        f"Model test accuracy {acc:.3f} (mean over training seeds: {', '.join(map(str, seeds))}); "
        f"n = per-sample values per cell (inputs × training seeds).",)]))
    columns = [Column("method"), Column("overall"), *(Column(f"{c} rank", category=c) for c in categories),
               *(Column(f"{m} {_arrow(directions[m])}" + (" ⚑" if m in unreliable else ""),
                        category=metric_category[m]) for m in metrics),
               Column("n"), Column("maps/s"), Column("passes/map"), Column("device")]
    cost = spend.set_index("method_label")
    effects = _effects_vs_leader(cells, _in_track(board.tests, track))
    missed = below_bar(board.bar)
    body = []
    for o in over.sort_values(["overall", "method_label"]).itertuples(index=False):
        mine = cells[cells["method_label"] == o.method_label].set_index("metric")
        my_cat = cat[cat["method_label"] == o.method_label].set_index("category")["rank"]
        flagged = (*track, o.method_label) in board.flags
        body.append([_method_cell(o.method_label, flagged), Cell(f"{o.overall:.2f} ({o.rank})", number(o.overall)),
                     *(Cell(str(my_cat[c]), int(my_cat[c])) if c in my_cat else Cell("–") for c in categories),
                     *(_cell(mine.loc[m], effects.get((m, o.method_label)), (*track, m, o.method_label) in missed)
                       if m in mine.index else Cell("–") for m in metrics),
                     _n_cell(mine), *_cost_cells(cost.loc[o.method_label] if o.method_label in cost.index else None)])
    for control in board.controls:
        if control in set(cells["method_label"]):
            mine = cells[cells["method_label"] == control].set_index("metric")
            body.append(_reference_row(control, cells, metrics, categories,
                                       [_n_cell(mine), *_cost_cells(cost.loc[control] if control in cost.index
                                                                    else None)]))
    section.blocks.append(Table(ids.new(section.id, "table"), columns, body))
    notes = [_mde_line(_in_track(board.mde, track), metrics, config)] if len(_in_track(board.mde, track)) else []
    notes += [(f"⚑ {m}: {'; '.join(why)}",) for m, why in unreliable.items()]
    notes += [(f"⚠ {key[-1]}: {'; '.join(why)}",)
              for key, why in sorted(board.flags.items()) if key[:-1] == tuple(track)]
    if notes:
        section.blocks.append(Paragraph(notes))
    return section


def _n_cell(mine: pd.DataFrame) -> Cell:
    ns = sorted(set(mine["n"]))
    return Cell("/".join(map(str, ns)), int(ns[0]) if ns else None)


def _cost_cells(c: pd.Series | None) -> list[Cell]:
    if c is None:
        return [Cell("–"), Cell("–"), Cell("–")]
    return [Cell(f"{c['maps_per_second']:.3g}", number(c["maps_per_second"])),
            Cell(f"{c['passes_per_map']:.3g}", number(c["passes_per_map"])), Cell(str(c["devices"]), str(c["devices"]))]


def _in_track(table: pd.DataFrame, track: Sequence[object]) -> pd.DataFrame:
    return table[np.logical_and.reduce([table[c] == v for c, v in zip(TRACK, track, strict=True)])]


def _category_order(cells: pd.DataFrame, metric: str) -> int:
    c = cells.loc[cells["metric"] == metric, "category"].iloc[0]
    return CATEGORIES.index(c) if c in CATEGORIES else len(CATEGORIES)


def _legend(cells: pd.DataFrame, config: BoardConfig, sanity: Mapping[str, Mapping[str, float]],
            bootstrap_share: float, globs: Sequence[str], method_citations: Mapping[str, str],
            ids: Anchors, controls: Sequence[str] = ()) -> list[Section]:
    level = f"{100 * config.confidence:g}%"
    items: list[Line] = [
        (f"Cell: mean ± half-width of the {level} confidence interval (rank, letters; r = effect size against "
         "the metric's leader in the track: matched-pairs rank-biserial correlation of the paired differences, "
         "−1 … 1, negative = worse than the leader). The mean is over training seeds of the per-job mean over "
         "test inputs.",),
        (f"CI: percentile bootstrap, {config.bootstrap_resamples} resamples, seeded per cell (base seed "
         f"{config.bootstrap_seed}); with several training seeds it is nested: seeds are resampled, then "
         "inputs within each seed."
         + ("" if bootstrap_share == 1 else " Cells without per-sample values use mean ± z·stderr (normal "
            "approximation)."),),
        (f"Rank (per metric, ↑ higher / ↓ lower is better): 1 + the number of methods significantly better, "
         "from paired two-sided Wilcoxon signed-rank tests (Pratt's zeros) on the per-sample values both methods "
         "have on the same inputs and training seeds, Holm-corrected over the metric's method pairs at "
         f"α = {config.alpha:g}; letters: methods sharing a letter are not significantly different (compact "
         "letter display). A rank may contradict the order of the means: the test ranks paired differences. "
         "ΔEF is tested on each job's values signed by its mean (their mean is the |mean| shown); the "
         "information level on per-image AUCs. Where a pair shares fewer than 6 inputs or values are missing, "
         "the metric keeps the CI-overlap rank (no letters): methods whose CIs overlap the leader's share "
         "its rank. The pairs are (input, training seed) units treated as independent: the test speaks for "
         "these inputs on these trained models.",),
        ("Category rank: methods ranked by their mean metric rank within the category. Overall: mean of "
         "the category ranks (lower is better).",),
        ("Summary per suite: only methods present on every track of the suite. Per category, the blocks are "
         "(track, metric) pairs; overall, (track, category) pairs ranked by mean metric rank, so every "
         "category weighs the same. Cells: the mean Friedman rank (1 = best), in brackets the Nemenyi rank "
         f"(1 + the number of methods better by at least the critical difference at α = {config.alpha:g}; all "
         "1 where Friedman does not reject). The blocks share models and inputs, unlike the independent data "
         "sets Demšar's procedure assumes. Metrics flagged unreliable (⚑) on a track are shown in its table "
         "but left out of the summary's blocks (the line under each summary names them).",),
        *_control_items(controls, config),
        ("Cost: maps per second (inputs explained per second of the method's own time, summed over its jobs) "
         "and model passes (forward or backward) per map, on the device named.",),
    ]
    rules = sorted({f"{k.rsplit('_', 1)[0]} {'≤' if k.endswith('_max') else '≥'} {v:g}"
                    for s in sanity.values() for k, v in s.items()})
    bound = Span("[sanity]", "verbatim")  # the suite file's table name, written as typed
    items.append(("⚠ Randomisation sanity check: a method is marked when it breaks a suite's ", bound,
                  f" bound ({', '.join(rules)}): its map survives weight randomisation, so it explains little "
                  "about the model.") if rules else
                 ("⚠ Randomisation sanity check: no ", bound, " bounds declared by the suites shown."))
    out = [Section(ids.new("legend"), "Legend", 2, [BulletList(items)]), _metric_table(cells, ids),
           _method_table(cells, method_citations, ids)]
    return out + _reproduce(cells, globs, ids)


def _control_items(controls: Sequence[str], config: BoardConfig) -> list[Line]:
    """The legend's lines on reference rows and the bar (none on a board without controls)."""
    if not controls:
        return []
    bar = controls[0]
    return [(f"Controls ({', '.join(controls)}: methods the registry declares controls, maps that owe nothing "
             "to the model) are reference rows: shown with their value and CI (\"ref\"; greyed on the page), never "
             "ranked — no rank or letters, not in the category, overall or summary ranks, the Friedman/Nemenyi "
             "tests, the CD diagrams or the agreement of metrics. Their paired tests form a Holm family of their "
             "own, so they do not make the competitors' corrections stricter.",),
            (f"{BELOW_BAR} on a cell: the method is not better than {bar} (the noise control, the bar every method "
             "has to clear) on that metric: not significantly better in the paired Wilcoxon test against it "
             f"(Holm over the metric's pairs with a control, α = {config.alpha:g}), or, where the metric was not "
             f"tested, its CI not entirely on the better side of {bar}'s. The summary's \"> {bar}\" column counts "
             f"the suite's (track, metric) cells on which the method beats {bar}.",)]


def _metric_table(cells: pd.DataFrame, ids: Anchors) -> Section:
    body = []
    for m, g in cells.groupby("metric", sort=True):
        entry = registry.metrics.get(m) if m in registry.metrics else None
        direction, category = g["direction"].iloc[0], g["category"].iloc[0]
        body.append([Cell(m, m), Cell(f"{_arrow(direction)} {direction}", direction), Cell(category, category),
                     *(Cell(t, t) for t in (entry.description if entry else "", entry.citation if entry else ""))])
    columns = [Column(c) for c in ("metric", "direction", "category", "description", "citation")]
    return Section(ids.new("metrics"), "Metrics", 3, [Table(ids.new("metrics", "table"), columns, body)])


def _method_table(cells: pd.DataFrame, method_citations: Mapping[str, str], ids: Anchors) -> Section:
    body = []
    for m, g in cells.groupby("method_label", sort=True):
        base = g["method_label"].iloc[0]
        name = base.split("(", 1)[0]
        cite = method_citations.get(name) or (registry.methods.get(name).citation if name in registry.methods else "")
        body.append([Cell(m, m), Cell(cite, cite)])
    table = Table(ids.new("methods", "table"), [Column("method"), Column("citation")], body)
    return Section(ids.new("methods"), "Methods", 3, [table])


def _reproduce(cells: pd.DataFrame, globs: Sequence[str], ids: Anchors) -> list[Section]:
    if not globs or not len(cells):
        return []
    first = cells.sort_values(CELL).iloc[0]
    sql = cell_query(first, globs)
    text = (f"The mean of any cell is one DuckDB query over the Parquet rows; e.g. the {first['method_label']} / "
            f"{first['metric']} cell of {track_title([first[c] for c in TRACK], True)} ({_fmt(first['value'])}):")
    return [Section(ids.new("reproduce"), "Reproduce a cell", 3,
                    [Paragraph([(text,)]), Code(f"duckdb -c {_shell_double_quoted(sql)}", "sh")])]
