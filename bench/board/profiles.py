"""The static site's page per method and per metric, from the same computed board as every other page.

A method's page: its parameters and citation, its rank in each suite's summary, its ranks and cost
per track, and the saliency grids already drawn for its tracks (a page never computes a map). A
metric's page: what it measures, whether it can tell an explanation from noise on each track
(reactivity to the controls, noise resilience, ⚑) and how much it separates the methods (significant
pairs, letter groups, minimum detectable effect).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bench import registry
from bench.board.compute import Board
from bench.board.config import BoardConfig
from bench.board.document import Cell, Column, Document, Field, Image, Paragraph, Section, Span, Table
from bench.board.friedman import OVERALL
from bench.board.front import FRONT
from bench.board.references import CONTROL, NOT_MEASURED, competitors
from bench.board.sections import bar_cell, bar_counts, number, track_title
from bench.board.significance import RANKED
from bench.board.stats import TRACK
from bench.board.tracks import arrow

SALIENCY = "Saliency maps: "  # the title plots.saliency_grids gives its figures


def _front() -> Field:
    return Field("Front", (Span("all suites at a glance", "link", FRONT),))


def _track_key(r: object) -> tuple:
    return tuple(getattr(r, c) for c in TRACK)


def method_pages(rows: pd.DataFrame, board: Board, command: str, config: BoardConfig, keys: Mapping[str, str],
                 suite_keys: Mapping[str, str], plots: Sequence[tuple[str, str]]) -> dict[str, Document]:
    """Method label → its page (by ``keys``)."""
    return {keys[m]: _method_page(rows, board, m, command, config, suite_keys, plots) for m in sorted(keys)}


def _parameters(rows: pd.DataFrame, method: str) -> str:
    mine = rows[rows["method_label"] == method]
    if "method_params" not in mine:
        return "–"
    params = sorted({json.dumps(json.loads(p or "{}"), sort_keys=True) for p in mine["method_params"].dropna()})
    return "; ".join(params) or "–"


def _method_page(rows: pd.DataFrame, board: Board, method: str, command: str, config: BoardConfig,
                 suite_keys: Mapping[str, str], plots: Sequence[tuple[str, str]]) -> Document:
    mine = board.cells[board.cells["method_label"] == method]
    name = str(mine["method"].iloc[0]) if "method" in mine and len(mine) else method
    entry = registry.methods.get(name) if name in registry.methods else None
    control = str(mine[CONTROL].iloc[0]) if CONTROL in mine and len(mine) else ""
    header = [_front(), Field("Method", (Span(method, "strong"),)), Field("Parameters", (_parameters(rows, method),)),
              Field("Citation", (entry.citation if entry else "–",)),
              Field("Role", (f"control ({control}): a reference row, never ranked" if control else "ranked",))]
    suites = sorted(set(mine["suite"]))
    sections = [_summary_ranks(board, method, suites, suite_keys), _track_ranks(board, method)]
    grids = [(t, p) for t, p in plots if t.startswith(SALIENCY) and any(t.endswith(f"({s})") for s in suites)]
    if grids:
        sections.append(Section("saliency", "Saliency examples", 2, [
            Paragraph([("The grids already drawn for the tracks this method ran on (every method of the track, "
                        "the same inputs; the colour scale is symmetric about 0 per map).",)]),
            *(Image(t, p) for t, p in grids)]))
    return Document(f"{config.title}: {method}", header, command, sections)


def _summary_ranks(board: Board, method: str, suites: Sequence[str], suite_keys: Mapping[str, str]) -> Section:
    ranks = board.summary.ranks
    ranks = ranks[(ranks["method_label"] == method) & (ranks["scope"] == OVERALL)].set_index("suite")
    columns = [Column("suite"), Column("overall mean rank"), Column("Nemenyi rank"), Column("methods ranked")]
    if board.controls:
        columns.append(Column(f"> {board.controls[0]}"))
    size = board.summary.tests
    size = size[size["scope"] == OVERALL].set_index("suite")["methods"]
    body = []
    for s in suites:
        k = int(size[s]) if s in size.index else 0
        r = ranks.loc[s] if s in ranks.index else None
        row = [Cell(s, s, link=suite_keys.get(s)),
               Cell(f"{r['mean_rank']:.2f}", number(r["mean_rank"])) if r is not None else Cell("–"),
               Cell(str(int(r["rank"])), int(r["rank"])) if r is not None else Cell("–"), Cell(str(k), k)]
        if board.controls:
            row.append(bar_cell(bar_counts(board, s), method))
        body.append(row)
    return Section("suites", "Rank in each suite's summary", 2, [
        Paragraph([("Mean Friedman rank over the suite's tracks and categories (1 = best) and the Nemenyi rank; "
                    "– where the method is a control or not on every track of the suite.",)]),
        Table("suites-table", columns, body)])


def _track_ranks(board: Board, method: str) -> Section:
    over = board.overall[board.overall["method_label"] == method]
    cost = board.cost[board.cost["method_label"] == method].set_index(list(TRACK))
    columns = [Column("track"), Column("overall (rank)"), Column("maps/s"), Column("passes/map")]
    body = []
    for r in board.cells[board.cells["method_label"] == method][list(TRACK)].drop_duplicates().sort_values(
            list(TRACK)).itertuples(index=False):
        key = _track_key(r)
        o = over[np.logical_and.reduce([over[c] == v for c, v in zip(TRACK, key, strict=True)])]
        c = cost.loc[key] if key in cost.index else None
        body.append([Cell(track_title(key, True), track_title(key, True)),
                     Cell(f"{o['overall'].iloc[0]:.2f} ({o['rank'].iloc[0]})", number(o["overall"].iloc[0]))
                     if len(o) else Cell("reference", reference=True),
                     Cell(f"{c['maps_per_second']:.3g}", number(c["maps_per_second"])) if c is not None else Cell("–"),
                     Cell(f"{c['passes_per_map']:.3g}", number(c["passes_per_map"])) if c is not None else Cell("–")])
    return Section("tracks", "Per track: rank and cost", 2, [Table("tracks-table", columns, body)])


def metric_pages(board: Board, command: str, config: BoardConfig, keys: Mapping[str, str],
                 suite_keys: Mapping[str, str], method_keys: Mapping[str, str]) -> dict[str, Document]:
    """Metric → its page (by ``keys``)."""
    return {keys[m]: _metric_page(board, m, command, config, method_keys) for m in sorted(keys)}


def _metric_page(board: Board, metric: str, command: str, config: BoardConfig,
                 method_keys: Mapping[str, str]) -> Document:
    mine = board.cells[board.cells["metric"] == metric]
    entry = registry.metrics.get(metric) if metric in registry.metrics else None
    direction = str(mine["direction"].iloc[0]) if len(mine) else ""
    header = [_front(), Field("Metric", (Span(metric, "strong"),)),
              Field("Direction", (f"{arrow(direction)} {direction} is better",)),
              Field("Category", (str(mine["category"].iloc[0]) if len(mine) else "–",)),
              Field("Measures", (entry.description if entry else "–",)),
              Field("Citation", (entry.citation if entry else "–",))]
    return Document(f"{config.title}: {metric}", header, command,
                    [_reliability(board, metric), _separation(board, metric, method_keys)])


def _reliability(board: Board, metric: str) -> Section:
    react = board.reactivity[board.reactivity["metric"] == metric]
    noise = board.noise.set_index([*TRACK, "metric"]) if len(board.noise) else None
    columns = [Column("track"), *(Column(f"vs {c}") for c in board.controls), Column("noise resilience"),
               Column("reliable")]
    body = []
    for r in react.sort_values(list(TRACK)).itertuples(index=False):
        key = (*_track_key(r), metric)
        nr = noise.loc[key, "nr"] if noise is not None and key in noise.index else None
        flags = board.metric_flags.get(key, [])
        body.append([Cell(track_title(key[:-1], True), track_title(key[:-1], True)),
                     *(Cell(str(getattr(r, f"vs_{c}", NOT_MEASURED))) for c in board.controls),
                     Cell(f"{nr:.2g}", number(nr)) if nr is not None else Cell(NOT_MEASURED),
                     Cell("no ⚑: " + "; ".join(flags) if flags else "yes", 0 if flags else 1)])
    return Section("reliability", "Reliability per track", 2, [
        Paragraph([("Can the metric tell an explanation from noise? The gradient against each control (paired "
                    "Wilcoxon–Holm) and the change under a harmless weight perturbation (noise resilience); "
                    "a flagged (⚑) metric is shown on the board but not counted in the summaries.",)]),
        Table("reliability-table", columns, body)])


def _separation(board: Board, metric: str, method_keys: Mapping[str, str]) -> Section:
    cells = competitors(board.cells[board.cells["metric"] == metric])
    tests = board.tests[(board.tests["metric"] == metric)]
    if "family" in tests:
        tests = tests[tests["family"] == RANKED]
    mde = board.mde[board.mde["metric"] == metric].set_index(list(TRACK)) if len(board.mde) else None
    columns = [Column("track"), Column("methods"), Column("pairs told apart"), Column("letter groups"),
               Column("leader"), Column("MDE")]
    body = []
    for key, g in cells.groupby(list(TRACK), sort=True):
        t = tests[np.logical_and.reduce([tests[c] == v for c, v in zip(TRACK, key, strict=True)])]
        apart, tested = int(t["significant"].sum()) if len(t) else 0, len(t)
        letters = {ch for grp in g["group"].fillna("") for ch in str(grp)}
        leader = sorted(g.loc[g["rank"] == g["rank"].min(), "method_label"])
        m = mde.loc[key, "mde"] if mde is not None and key in mde.index else float("nan")
        body.append([Cell(track_title(key, True), track_title(key, True)), Cell(str(len(g)), len(g)),
                     Cell(f"{apart}/{tested}", apart / tested if tested else None),
                     Cell(str(len(letters)) if letters else "–", len(letters) or None),
                     Cell(", ".join(leader), ", ".join(leader), link=method_keys.get(leader[0]) if len(leader) == 1
                          else None),
                     Cell(f"{m:.2g}" if np.isfinite(m) else "–", number(m))])
    return Section("separation", "Which methods it separates", 2, [
        Paragraph([("Per track: the competitor pairs the paired tests tell apart (Holm, α as the board's), the "
                    "letter groups they form, the leader (rank 1) and the minimum detectable effect.",)]),
        Table("separation-table", columns, body)])
