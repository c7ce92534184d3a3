"""Everything the board shows, computed once from the rows: the one ``Board`` both serialisers read.

Within a track, per metric: the cells' values and bootstrap CIs (``stats.aggregate``), ranks from
paired Wilcoxon–Holm tests (``significance``; CI overlap where pairs are missing), category and
overall ranks per track. Across a suite's tracks: Friedman + Nemenyi over the methods present on
every track (``friedman``). Beside the scores: reactivity to the control methods, noise resilience,
concordance of a category's metrics and each method's cost (``reliability``). Only ordinary rows
(no ``model_perturbation``) are ranked; perturbed rows feed noise resilience alone. Controls
(``references``) are shown, never ranked: their cells are the reference every method is compared
with (``bar``), and they enter no category, overall or summary rank and no concordance. Metrics
flagged unreliable on a track (``metric_flags``) are left out of the suite summaries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from bench.board.config import BoardConfig
from bench.board.friedman import SuiteSummary, suite_summaries
from bench.board.power import metric_mde, paired_differences, summary_ties
from bench.board.references import bar_verdicts, competitors, controls_of, ordered_controls, with_controls
from bench.board.reliability import concordance, cost, metric_flags, noise_resilience, reactivity
from bench.board.significance import oriented_samples, paired_tests, rank_cells
from bench.board.stats import TRACK, aggregate, category_ranks, overall_ranks, sanity_failures, with_training
from bench.run.results import ordinary_rows


@dataclass(frozen=True)
class Board:
    """The board's numbers. ``cells``: aggregate + ``rank``, ``group``, ``test``; ``flags``: sanity
    (track…, method) → reasons; ``metric_flags``: (track…, metric) → why the metric is unreliable there;
    ``controls``: the controls' labels (the bar first); ``bar``: each method against the bar per metric
    (``references.BAR_COLUMNS``); ``mde`` and ``ties``: what the data can detect (``power``)."""

    cells: pd.DataFrame
    categories: pd.DataFrame
    overall: pd.DataFrame
    flags: dict[tuple, list[str]]
    tests: pd.DataFrame
    summary: SuiteSummary
    reactivity: pd.DataFrame
    noise: pd.DataFrame
    concordance: pd.DataFrame
    cost: pd.DataFrame
    metric_flags: dict[tuple, list[str]]
    controls: tuple[str, ...]
    bar: pd.DataFrame
    mde: pd.DataFrame  # power.MDE_COLUMNS: per (track, metric)
    ties: pd.DataFrame  # power.TIE_COLUMNS: the pairs each suite's overall summary does not tell apart


def compute_board(rows: pd.DataFrame, samples: pd.DataFrame | None = None, config: BoardConfig | None = None,
                  sanity: Mapping[str, Mapping[str, float]] | None = None) -> Board:
    config = config or BoardConfig()
    rows = with_controls(with_training(rows))
    ordinary = ordinary_rows(rows)
    samples = samples if samples is not None else pd.DataFrame(columns=["job_id", "metric", "sample", "value"])
    tests = paired_tests(ordinary, samples, config.alpha)
    cells = rank_cells(aggregate(ordinary, samples, config), tests)
    ranked = competitors(cells)
    cat = category_ranks(ranked)
    react = reactivity(cells, tests)
    nr = noise_resilience(rows, config.noise_resilience_max)
    flags = metric_flags(react, nr)
    counted = reliable(ranked, flags)
    summary = suite_summaries(counted, config.alpha)
    differences = paired_differences(oriented_samples(ordinary, samples))
    controls = controls_of(cells)
    blocks = {s: set(g[[*TRACK, "metric"]].itertuples(index=False, name=None)) for s, g in counted.groupby("suite")}
    return Board(cells, cat, overall_ranks(cat), sanity_failures(cells, sanity or {}), tests, summary, react, nr,
                 concordance(ranked), cost(ordinary), flags, ordered_controls(controls), bar_verdicts(cells, tests),
                 metric_mde(differences, set(controls), config.confidence),
                 summary_ties(summary, differences, blocks, config.alpha, config.confidence))


def reliable(cells: pd.DataFrame, flags: Mapping[tuple, object]) -> pd.DataFrame:
    """``cells`` without the (track, metric)s flagged unreliable: a metric that cannot tell the gradient
    from noise, or that a harmless weight perturbation moves, must not vote in a suite's summary.
    The track tables still show them (⚑)."""
    if not flags or not len(cells):
        return cells
    keys = cells[[*TRACK, "metric"]].itertuples(index=False, name=None)
    return cells[[key not in flags for key in keys]]
