"""One track's part of its suite page: an overview table (overall and category ranks), one table per
category of its metrics (value, CI, rank, letters), a cost table, and the notes under them (MDE, ⚑, ⚠).

A track had one table of up to 17 columns; split this way no table passes ~10 columns (a category
with more than ``METRICS_PER_TABLE`` metrics continues in a second table), and the page's category
filter hides whole tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bench.board.compute import Board
from bench.board.config import BoardConfig
from bench.board.document import Anchors, Block, Cell, Column, Line, Paragraph, Section, Table
from bench.board.power import POWER
from bench.board.references import BELOW_BAR, below_bar, competitors
from bench.board.sections import number, ordered_categories, track_title
from bench.board.significance import RANKED
from bench.board.stats import TRACK
from bench.metrics.base import CATEGORIES
from bench.run.results import ordinary_rows

METRICS_PER_TABLE = 8  # + method and category rank: 10 columns at most


def fmt(v: float) -> str:
    return f"{v:.4g}"


def arrow(direction: str) -> str:
    return "↑" if direction == "higher" else "↓"


def in_track(table: pd.DataFrame, track: Sequence[object]) -> pd.DataFrame:
    return table[np.logical_and.reduce([table[c] == v for c, v in zip(TRACK, track, strict=True)])]


def value_cell(r: pd.Series, effect: float | None = None, below_bar: bool = False) -> Cell:
    ci = f" ± {r['half']:.2g}" if np.isfinite(r["half"]) else ""
    if r.get("control"):  # a reference row: its value and CI, no rank
        return Cell(f"{fmt(r['value'])}{ci} (ref)", number(r["value"]), reference=True)
    group = f" {r['group']}" if r.get("group") else ""
    versus = f"; r {effect:+.2f}" if effect is not None and np.isfinite(effect) else ""
    return Cell(f"{fmt(r['value'])}{ci} ({r['rank']}{group}{versus})", number(r["value"]),
                BELOW_BAR if below_bar else None)


def effects_vs_leader(cells: pd.DataFrame, tests: pd.DataFrame) -> dict[tuple[str, str], float]:
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


def category_order(cells: pd.DataFrame, metric: str) -> int:
    c = cells.loc[cells["metric"] == metric, "category"].iloc[0]
    return CATEGORIES.index(c) if c in CATEGORIES else len(CATEGORIES)


def method_cell(method: str, flagged: bool, links: Mapping[str, str], reference: bool = False) -> Cell:
    text = f"{method} (reference)" if reference else method
    return Cell(text, method, "⚠" if flagged else None, reference=reference, link=links.get(method))


def mde_line(mde: pd.DataFrame, metrics: Sequence[str], config: BoardConfig) -> Line:
    """Per metric: the smallest mean paired difference between two methods the data can detect."""
    by_metric = mde.set_index("metric")
    parts = [f"{m} {by_metric.loc[m, 'mde']:.2g} (n {by_metric.loc[m, 'pairs']})" for m in metrics
             if m in by_metric.index and np.isfinite(by_metric.loc[m, "mde"])]
    return (f"Minimum detectable effect (mean paired difference detected with power {POWER:g} at α = "
            f"{config.alpha:g}, two-sided; n pairs = inputs × training seeds): {', '.join(parts)}.",)


class _Track:
    """One track's numbers, sliced from the board once for its tables."""

    def __init__(self, rows: pd.DataFrame, board: Board, track: tuple) -> None:
        self.track = track
        self.cells, self.cat, over = (in_track(t, track) for t in (board.cells, board.categories, board.overall))
        self.metrics = sorted(self.cells["metric"].unique(), key=lambda m: (category_order(self.cells, m), m))
        self.categories = ordered_categories(set(self.cat["category"]))
        self.directions = self.cells.groupby("metric")["direction"].first()
        self.metric_category = self.cells.groupby("metric")["category"].first()
        self.unreliable = {m: board.metric_flags[(*track, m)] for m in self.metrics
                           if (*track, m) in board.metric_flags}
        self.cost = in_track(board.cost, track).set_index("method_label")
        self.effects = effects_vs_leader(self.cells, in_track(board.tests, track))
        self.missed = below_bar(board.bar)
        self.part = in_track(ordinary_rows(rows), track)
        present = set(self.cells["method_label"])
        self.order = [o.method_label for o in over.sort_values(["overall", "method_label"]).itertuples(index=False)]
        self.controls = [c for c in board.controls if c in present]
        self.overall = over.set_index("method_label")
        self.flagged = {m for m in present if (*track, m) in board.flags}

    def mine(self, method: str) -> pd.DataFrame:
        return self.cells[self.cells["method_label"] == method].set_index("metric")

    def category_rank(self, method: str, category: str) -> Cell:
        ranks = self.cat[self.cat["method_label"] == method].set_index("category")["rank"]
        return Cell(str(ranks[category]), int(ranks[category])) if category in ranks else Cell("–")


def track_section(rows: pd.DataFrame, board: Board, track: tuple, with_suite: bool, ids: Anchors,
                  config: BoardConfig, links: Mapping[str, str] | None = None) -> Section:
    """The track's tables and notes; ``links``: method label → its page's target (none: plain names)."""
    t, links = _Track(rows, board, track), links or {}
    acc = t.part["model_test_accuracy"].mean() if "model_test_accuracy" in t.part else float("nan")
    seeds = sorted(t.part["model_seed"].unique()) if "model_seed" in t.part else []
    section = Section(ids.new("track", *track), track_title(track, with_suite), 2, suite=str(track[0]))
    section.blocks.append(Paragraph([(
        f"Model test accuracy {acc:.3f} (mean over training seeds: {', '.join(map(str, seeds))}); "
        f"n = per-sample values per cell (inputs × training seeds).",)]))
    section.blocks.append(_overview(t, ids.new(section.id, "table"), links))
    for category in t.categories:
        metrics = [m for m in t.metrics if t.metric_category[m] == category]
        for k in range(0, len(metrics), METRICS_PER_TABLE):
            section.blocks.append(_category_table(t, category, metrics[k:k + METRICS_PER_TABLE],
                                                  ids.new(section.id, category), links))
    other = [m for m in t.metrics if t.metric_category[m] not in t.categories]  # metrics without a rank
    if other:
        section.blocks.append(_category_table(t, None, other, ids.new(section.id, "other"), links))
    section.blocks.append(_cost_table(t, ids.new(section.id, "cost"), links))
    section.blocks += _notes(t, board, config)
    return section


def _overview(t: _Track, table_id: str, links: Mapping[str, str]) -> Table:
    columns = [Column("method"), Column("overall"), *(Column(f"{c} rank", category=c) for c in t.categories),
               Column("n")]
    body = [[method_cell(m, m in t.flagged, links),
             Cell(f"{t.overall.loc[m, 'overall']:.2f} ({t.overall.loc[m, 'rank']})",
                  number(t.overall.loc[m, "overall"])),
             *(t.category_rank(m, c) for c in t.categories), _n_cell(t.mine(m))] for m in t.order]
    body += [[method_cell(c, False, links, reference=True), Cell("–", reference=True),
              *(Cell("–", reference=True) for _ in t.categories), _n_cell(t.mine(c))] for c in t.controls]
    return Table(table_id, columns, body)


def _category_table(t: _Track, category: str | None, metrics: Sequence[str], table_id: str,
                    links: Mapping[str, str]) -> Table:
    head = [Column(f"{category} rank", category=category)] if category else []
    columns = [Column("method"), *head,
               *(Column(f"{m} {arrow(t.directions[m])}" + (" ⚑" if m in t.unreliable else ""),
                        category=t.metric_category[m]) for m in metrics)]
    body = []
    for m in [*t.order, *t.controls]:
        mine, reference = t.mine(m), m in t.controls
        rank = ([Cell("–", reference=True)] if reference else [t.category_rank(m, category)]) if category else []
        body.append([method_cell(m, m in t.flagged, links, reference), *rank,
                     *(value_cell(mine.loc[k], t.effects.get((k, m)), (*t.track, k, m) in t.missed)
                       if k in mine.index else Cell("–") for k in metrics)])
    return Table(table_id, columns, body, category=category)


def _cost_table(t: _Track, table_id: str, links: Mapping[str, str]) -> Table:
    columns = [Column("method"), Column("maps/s"), Column("passes/map"), Column("device")]
    body = [[method_cell(m, m in t.flagged, links, m in t.controls),
             *_cost_cells(t.cost.loc[m] if m in t.cost.index else None)] for m in [*t.order, *t.controls]]
    return Table(table_id, columns, body)


def _notes(t: _Track, board: Board, config: BoardConfig) -> list[Block]:
    mde = in_track(board.mde, t.track)
    notes = [mde_line(mde, t.metrics, config)] if len(mde) else []
    notes += [(f"⚑ {m}: {'; '.join(why)}",) for m, why in t.unreliable.items()]
    notes += [(f"⚠ {key[-1]}: {'; '.join(why)}",)
              for key, why in sorted(board.flags.items()) if key[:-1] == tuple(t.track)]
    return [Paragraph(notes)] if notes else []


def _n_cell(mine: pd.DataFrame) -> Cell:
    ns = sorted(set(mine["n"]))
    return Cell("/".join(map(str, ns)), int(ns[0]) if ns else None)


def _cost_cells(c: pd.Series | None) -> list[Cell]:
    if c is None:
        return [Cell("–"), Cell("–"), Cell("–")]
    return [Cell(f"{c['maps_per_second']:.3g}", number(c["maps_per_second"])),
            Cell(f"{c['passes_per_map']:.3g}", number(c["passes_per_map"])), Cell(str(c["devices"]), str(c["devices"]))]
