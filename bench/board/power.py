"""Why two methods tie: equal, or too little data to tell? The board's power statements.

- Per (track, metric), the minimum detectable effect (MDE): the smallest mean paired difference
  between two methods that a two-sided paired test at α = 1 − ``confidence`` finds with probability
  ``power`` (0.8) at the metric's n pairs, ``stats.detectable_effect`` with SE = sd/√n on n − 1
  degrees of freedom (the t approximation of the board's Wilcoxon test, whose efficiency relative
  to t is ≥ 0.86 and 0.95 under normal differences). n: the (input, training seed) pairs both
  methods scored, the units the board's test treats as independent; sd: the median over the
  metric's competitor pairs of the standard deviation of their paired differences (higher =
  better, as the tests orient them). In the metric's own units.
- Per pair of methods the suite's overall summary does not tell apart (Nemenyi: mean ranks closer
  than CD, or Friedman not rejecting): how many training seeds the paired test would need to detect
  their observed mean difference on each reliable (track, metric) both ran, at the inputs per seed
  the track has (the median over those blocks; ∞ where the difference is 0), and how many summary
  blocks Nemenyi would need for their observed gap in mean rank, N = q_α²·k(k + 1)/(6·gap²). Seeds
  make each block's order surer; only blocks (tracks × metrics) narrow the summary's CD.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from bench.board.friedman import OVERALL, SuiteSummary
from bench.board.stats import TRACK, detectable_effect

POWER = 0.8
MAX_SEEDS = 10_000  # beyond this a difference is called undetectable (∞)
MDE_COLUMNS = [*TRACK, "metric", "pairs", "seeds", "sd", "mde"]
TIE_COLUMNS = ["suite", "method_a", "method_b", "gap", "blocks", "blocks_needed", "seeds", "seeds_needed"]


def paired_differences(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (track, metric, method pair, a < b): ``pairs``, ``seeds``, ``mean`` and ``sd`` (ddof 1) of the
    paired differences a − b of ``significance.oriented_samples`` scores (higher = better)."""
    out = []
    for key, g in scores.groupby([*TRACK, "metric"], sort=True):
        wide = g.pivot_table(index=["model_seed", "sample"], columns="method_label", values="score", aggfunc="first")
        methods = sorted(wide.columns)
        for i, a in enumerate(methods):
            for b in methods[i + 1:]:
                d = (wide[a] - wide[b]).dropna()
                out.append({**dict(zip([*TRACK, "metric"], key, strict=True)), "method_a": a, "method_b": b,
                            "pairs": len(d), "seeds": d.index.get_level_values("model_seed").nunique(),
                            "mean": float(d.mean()) if len(d) else np.nan,
                            "sd": float(d.std(ddof=1)) if len(d) > 1 else np.nan})
    return pd.DataFrame(out, columns=[*TRACK, "metric", "method_a", "method_b", "pairs", "seeds", "mean", "sd"])


def metric_mde(differences: pd.DataFrame, controls: set[str], confidence: float = 0.95,
               power: float = POWER) -> pd.DataFrame:
    """``MDE_COLUMNS`` per (track, metric) from the competitors' paired differences (medians of n and sd)."""
    mine = differences[~differences["method_a"].isin(controls) & ~differences["method_b"].isin(controls)]
    mine = mine[mine["pairs"] > 1]
    out = []
    for key, g in mine.groupby([*TRACK, "metric"], sort=True):
        n, sd = float(g["pairs"].median()), float(g["sd"].median())
        out.append({**dict(zip([*TRACK, "metric"], key, strict=True)), "pairs": int(n), "seeds": int(g["seeds"].max()),
                    "sd": sd, "mde": detectable_effect(sd / math.sqrt(n), n - 1, confidence, power)})
    return pd.DataFrame(out, columns=MDE_COLUMNS)


def seeds_needed(effect: float, sd: float, inputs_per_seed: float, confidence: float = 0.95,
                 power: float = POWER) -> float:
    """The fewest training seeds (each adding ``inputs_per_seed`` pairs) at which the MDE is at most
    |``effect``|; ∞ when the effect is 0 or would need more than ``MAX_SEEDS``."""
    if not np.isfinite(effect) or not np.isfinite(sd) or effect == 0 or inputs_per_seed <= 0:
        return math.inf
    if sd == 0:
        return 1.0

    def detects(k: int) -> bool:
        n = k * inputs_per_seed
        return detectable_effect(sd / math.sqrt(n), n - 1, confidence, power) <= abs(effect)

    if not detects(MAX_SEEDS):
        return math.inf
    lo, hi = 1, MAX_SEEDS  # detects() is monotone in k: bisect for the first k that detects
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if detects(mid) else (mid + 1, hi)
    return float(lo)


def blocks_needed(gap: float, q_alpha: float, methods: int) -> float:
    """Blocks at which Nemenyi's CD = q_α·√(k(k + 1)/(6N)) falls to ``gap``, rounded up; ∞ for gap 0."""
    if not np.isfinite(gap) or gap <= 0 or not np.isfinite(q_alpha):
        return math.inf
    return float(math.ceil(q_alpha**2 * methods * (methods + 1) / (6.0 * gap**2)))


def summary_ties(summary: SuiteSummary, differences: pd.DataFrame, blocks: Mapping[str, set[tuple]],
                 alpha: float = 0.05, confidence: float = 0.95, power: float = POWER) -> pd.DataFrame:
    """``TIE_COLUMNS`` for every pair of methods the overall summary of a suite does not tell apart.
    ``blocks``: suite → the (track…, metric) keys its summary counted (reliable ones)."""
    out = []
    tests = summary.tests[summary.tests["scope"] == OVERALL].set_index("suite")
    ranks = summary.ranks[summary.ranks["scope"] == OVERALL]
    for suite, g in ranks.groupby("suite", sort=True):
        t = tests.loc[suite]
        mean = dict(zip(g["method_label"], g["mean_rank"], strict=True))
        rejected = bool(t["p"] <= alpha)
        counted = blocks.get(suite, set())
        keys = differences[[*TRACK, "metric"]].itertuples(index=False, name=None)
        mine = differences[np.array([k in counted for k in keys], dtype=bool)]
        by_pair = {k: p for k, p in mine.groupby(["method_a", "method_b"], sort=False)}
        methods = sorted(mean)
        for i, a in enumerate(methods):
            for b in methods[i + 1:]:
                gap = abs(mean[a] - mean[b])
                if not np.isfinite(gap) or (rejected and np.isfinite(t["cd"]) and gap >= t["cd"]):
                    continue  # not ranked (no complete block), or told apart
                pair = by_pair.get((a, b), mine.iloc[:0])
                need = [seeds_needed(r.mean, r.sd, r.pairs / r.seeds, confidence, power)
                        for r in pair.itertuples(index=False) if r.seeds]
                out.append({"suite": suite, "method_a": a, "method_b": b, "gap": gap, "blocks": int(t["blocks"]),
                            "blocks_needed": blocks_needed(gap, float(t["q_alpha"]), int(t["methods"])),
                            "seeds": int(pair["seeds"].median()) if len(pair) else 0,
                            "seeds_needed": float(np.median(need)) if need else math.inf})
    return pd.DataFrame(out, columns=TIE_COLUMNS)
