"""Across tracks: the Friedman test, Nemenyi's critical difference and Kendall's W (Demšar 2006).

A suite's summary compares the methods that ran on every one of its tracks (the others are listed
as left out, with the tracks they lack). A *block* is one ranking of those methods:
- per category: a (track, metric) of the category, methods ranked by their cell value
  (direction-aware, 1 = best, ties share the average rank);
- ``overall``: a (track, category), methods ranked by their mean metric rank within the category —
  so every category weighs the same, whatever its number of metrics (as the board's overall score).
Blocks where some kept method has no value are dropped (counted in ``dropped_blocks``).

The Friedman statistic is computed in rank form with the tie correction (what
``scipy.stats.friedmanchisquare`` computes from values); Iman–Davenport's F is reported beside it.
The Nemenyi post-hoc runs only where Friedman rejects at α: two methods differ when their mean ranks
differ by at least CD = q_α·√(k(k+1)/(6N)), q_α = studentized range quantile(1 − α, k, ∞)/√2, and
rank(m) = 1 + the number of methods whose mean rank is lower than m's by CD or more (as within a
track). Caveat: blocks of one suite share models and inputs, so they are not the independent data
sets Demšar's procedure assumes; the test says how consistently the methods are ordered across the
suite's tracks and metrics, not how they would do on other data.

Kendall's W (with ties) of m rankings of k objects is Friedman's χ² normalised: W = χ²/(m(k − 1)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import chi2, f, rankdata, studentized_range

from bench.board.significance import letter_display
from bench.board.stats import TRACK

OVERALL = "overall"
SUMMARY_COLUMNS = ["suite", "scope", "methods", "blocks", "dropped_blocks", "chi2", "p", "iman_davenport",
                   "p_iman_davenport", "q_alpha", "cd"]
RANK_COLUMNS = ["suite", "scope", "method_label", "mean_rank", "rank"]
LEFT_OUT_COLUMNS = ["suite", "method_label", "reason"]


# -- the statistics ---------------------------------------------------------------------------------
def block_rank_matrix(scores: np.ndarray) -> np.ndarray:
    """N×k ranks (1 = best) of an N×k matrix of scores (higher = better), ties averaged per row."""
    return rankdata(-np.asarray(scores, dtype=np.float64), method="average", axis=1)


def _tie_sum(ranks: np.ndarray) -> float:
    """Σ over rows and tie groups of t³ − t."""
    total = 0.0
    for row in np.asarray(ranks):
        _, t = np.unique(row, return_counts=True)
        total += float((t**3 - t).sum())
    return total


def friedman(ranks: np.ndarray) -> tuple[float, float]:
    """(χ²_F, p) of an N×k matrix of within-block ranks, tie-corrected (Friedman 1937; as scipy).

    All blocks all tied: χ² = 0, p = 1 (nothing tells the methods apart)."""
    r = np.asarray(ranks, dtype=np.float64)
    n, k = r.shape
    if n < 1 or k < 2:
        return float("nan"), float("nan")
    sums = r.sum(0)
    raw = 12.0 / (n * k * (k + 1)) * float((sums**2).sum()) - 3.0 * n * (k + 1)
    correction = 1.0 - _tie_sum(r) / (n * k * (k * k - 1))
    if correction <= 0:
        return 0.0, 1.0
    stat = max(raw / correction, 0.0)
    return stat, float(chi2.sf(stat, k - 1))


def iman_davenport(stat: float, n: int, k: int) -> tuple[float, float]:
    """Iman–Davenport's F = (N − 1)χ²/(N(k − 1) − χ²) and its p on (k − 1, (k − 1)(N − 1)) df."""
    if not np.isfinite(stat) or n < 2 or k < 2:
        return float("nan"), float("nan")
    denominator = n * (k - 1) - stat
    if denominator <= 0:  # every block ranks the methods alike
        return float("inf"), 0.0
    value = (n - 1) * stat / denominator
    return value, float(f.sf(value, k - 1, (k - 1) * (n - 1)))


def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """q_α of the Nemenyi test for k methods: the studentized range quantile at df = ∞ over √2."""
    return float(studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2))


def critical_difference(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi's CD = q_α·√(k(k + 1)/(6N)) for k methods ranked on N blocks."""
    return nemenyi_q(k, alpha) * float(np.sqrt(k * (k + 1) / (6.0 * n)))


def nemenyi_groups(mean_ranks: Sequence[float], cd: float) -> list[tuple[int, int]]:
    """Maximal runs (first, last) of the ascending-sorted ``mean_ranks`` whose spread is below ``cd``
    (not significantly different); runs of one method are left out (the bars of a CD diagram)."""
    r = np.sort(np.asarray(mean_ranks, dtype=np.float64))
    if not np.isfinite(cd):
        return []
    groups: list[tuple[int, int]] = []
    for i in range(len(r)):
        j = int(np.searchsorted(r, r[i] + cd, side="left")) - 1  # last with r[j] − r[i] < cd
        if j > i and not (groups and groups[-1][1] >= j):
            groups.append((i, j))
    return groups


def kendall_w(scores: np.ndarray) -> float:
    """Kendall's W of m raters (rows) ranking k objects (columns) by score (higher = better), with the
    tie correction: W = 12S / (m²(k³ − k) − m·ΣT), T = Σ(t³ − t) per rater. NaN under 2 raters or
    objects, or when every rater ties everything."""
    ranks = block_rank_matrix(scores)
    m, k = ranks.shape
    if m < 2 or k < 2:
        return float("nan")
    sums = ranks.sum(0)
    s = float(((sums - sums.mean()) ** 2).sum())
    denominator = m * m * (k**3 - k) - m * _tie_sum(ranks)
    return 12.0 * s / denominator if denominator > 0 else float("nan")


def cd_ranks(mean_ranks: Sequence[float], cd: float) -> list[int]:
    """1 + the number of methods whose mean rank is lower by at least ``cd``."""
    r = np.asarray(mean_ranks, dtype=np.float64)
    return [1 + int(np.sum(x - r >= cd)) for x in r]


# -- a suite's summary ------------------------------------------------------------------------------
def oriented(cells: pd.DataFrame) -> pd.Series:
    """Cell values with higher = better."""
    return cells["value"].where(cells["direction"] != "lower", -cells["value"])


def complete_methods(cells: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cells of the methods present on every track of their suite, the others: ``LEFT_OUT_COLUMNS``)."""
    keep, left = [], []
    for suite, g in cells.groupby("suite", sort=True):
        tracks = set(g[TRACK].itertuples(index=False, name=None))
        for method, m in g.groupby("method_label", sort=True):
            mine = set(m[TRACK].itertuples(index=False, name=None))
            if mine == tracks:
                keep.append(m)
                continue
            missing = sorted(" · ".join(str(x) for x in t[1:] if x != "") for t in tracks - mine)
            left.append({"suite": suite, "method_label": method,
                         "reason": f"on {len(mine)} of {len(tracks)} tracks; not on {', '.join(missing)}"})
    kept = pd.concat(keep) if keep else cells.iloc[:0]
    return kept, pd.DataFrame(left, columns=LEFT_OUT_COLUMNS)


def _blocks(cells: pd.DataFrame, scope: str) -> tuple[list[str], np.ndarray, int]:
    """(methods, N×k within-block ranks, dropped blocks) of one suite's kept cells for ``scope``."""
    methods = sorted(cells["method_label"].unique())
    by_metric = cells.assign(score=oriented(cells)).pivot_table(
        index=[*TRACK, "category", "metric"], columns="method_label", values="score", aggfunc="first")
    by_metric = by_metric.reindex(columns=methods)
    if scope != OVERALL:
        by_metric = by_metric[by_metric.index.get_level_values("category") == scope]
    complete = by_metric.dropna()
    dropped = len(by_metric) - len(complete)
    ranks = block_rank_matrix(complete.to_numpy())
    if scope == OVERALL and len(complete):
        mean = pd.DataFrame(ranks, index=complete.index).groupby(level=[*TRACK, "category"], sort=True).mean()
        ranks = block_rank_matrix(-mean.to_numpy())  # lower mean rank = better
    return methods, ranks, dropped


@dataclass(frozen=True)
class SuiteSummary:
    tests: pd.DataFrame  # SUMMARY_COLUMNS, one row per (suite, scope)
    ranks: pd.DataFrame  # RANK_COLUMNS, one row per (suite, scope, method)
    left_out: pd.DataFrame  # LEFT_OUT_COLUMNS


def suite_summaries(cells: pd.DataFrame, alpha: float = 0.05) -> SuiteSummary:
    """Friedman + Nemenyi per suite, per category present and ``overall``, over the complete methods.

    ``cells``: ``stats.aggregate`` of ordinary rows. Scopes with fewer than 2 methods or blocks get NaN
    statistics and every method rank 1."""
    kept, left_out = complete_methods(cells)
    tests, ranks = [], []
    for suite, g in kept.groupby("suite", sort=True):
        for scope in [*sorted(g["category"].unique()), OVERALL]:
            methods, block, dropped = _blocks(g, scope)
            n, k = block.shape if block.ndim == 2 and len(block) else (0, len(methods))
            stat, p = friedman(block) if n >= 2 and k >= 2 else (float("nan"), float("nan"))
            ff, p_ff = iman_davenport(stat, n, k)
            q = nemenyi_q(k, alpha) if k >= 2 else float("nan")
            cd = critical_difference(k, n, alpha) if k >= 2 and n >= 1 else float("nan")
            mean = block.mean(0) if n else np.full(k, np.nan)
            rank = cd_ranks(mean, cd) if p <= alpha else [1] * k
            tests.append({"suite": suite, "scope": scope, "methods": k, "blocks": n, "dropped_blocks": dropped,
                          "chi2": stat, "p": p, "iman_davenport": ff, "p_iman_davenport": p_ff, "q_alpha": q,
                          "cd": cd})
            ranks += [{"suite": suite, "scope": scope, "method_label": m, "mean_rank": float(r), "rank": rk}
                      for m, r, rk in zip(methods, mean, rank, strict=True)]
    ranks_frame = pd.DataFrame(ranks, columns=RANK_COLUMNS).sort_values(["suite", "scope", "mean_rank", "method_label"],
                                                                         ignore_index=True)
    return SuiteSummary(pd.DataFrame(tests, columns=SUMMARY_COLUMNS), ranks_frame, left_out)


def nemenyi_letters(mean_ranks: pd.Series, cd: float, rejected: bool) -> dict[str, str]:
    """Compact letters of a summary scope (``mean_ranks``: method → mean rank): methods sharing a letter
    are not told apart by Nemenyi (mean ranks closer than ``cd``); all ``a`` where Friedman does not
    reject (``rejected`` False), as the summary's ranks are then all 1."""
    order = sorted(mean_ranks.index, key=lambda m: (mean_ranks[m], m))
    different = set()
    if rejected and np.isfinite(cd):
        different = {frozenset((a, b)) for i, a in enumerate(order) for b in order[i + 1:]
                     if abs(mean_ranks[a] - mean_ranks[b]) >= cd}
    return letter_display(order, different)
