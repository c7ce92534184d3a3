"""Paired significance within a track: which methods a metric tells apart on the same inputs.

Per (track, metric), every two methods are compared on the per-sample values they share: pairs are
matched on (``model_seed``, ``sample``) — ``sample`` is the input's index in the job's batch (the
runner keeps it when it leaves out inputs with constant maps), so only inputs both methods scored on
the same trained model pair up. The test is the two-sided Wilcoxon signed-rank test
(``scipy.stats.wilcoxon``) on the differences of direction-oriented values (higher = better), the
p-values of a metric's method pairs are Holm-corrected together, and the effect size is the
matched-pairs rank-biserial correlation.

What is tested per aggregate kind (``bench.aggregates``):
- ``mean``: the per-sample values.
- ``abs_mean`` (ΔEF: the job value is |mean of signed differences|): each job's values multiplied by
  the sign of that job's mean, so that their mean is the job's value; two methods are then compared
  on how far each sits from zero on the same inputs.
- ``reported`` (PIC's information level: the job value is the AUC of the median curve): the
  per-sample values (per-image AUCs); the test speaks about them, not about the reported value.

Zeros: a difference within float noise (``ZERO_TOLERANCE`` of the values' scale) counts as zero and
zeros are handled by Pratt's method (``zero_method="pratt"``: they take part in the ranking, then
leave the statistic), so inputs where two methods agree weigh against a difference instead of
vanishing; two methods equal on every input are not different (p = 1, effect 0).

Controls (``bench.board.references``) are tested against every method too, but their pairs form a
Holm family of their own (family ``control``): they are the bar, not competitors, so they neither
rank nor make the competitors' corrections stricter.

Ranks: rank(m) = 1 + the number of methods significantly better than m (ties share), and a compact
letter display (Piepho 2004): methods sharing a letter are not significantly different. Only the
competitors (family ``rank``) are ranked; a control's cell has rank 0 and test ``reference``. A metric
whose methods lack per-sample values, or where some pair shares fewer than ``MIN_PAIRS`` inputs,
keeps the CI-overlap rank (``stats.ci_ranks``); ``test`` says which rule ranked it.

Caveat worth stating on the board: the pairs of one metric are (input, training seed) units and the
test treats them as independent; inputs evaluated on one model share that model, so the test asks
"on these inputs and these trained models", not "over new training runs".
"""

from __future__ import annotations

import string
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata, wilcoxon

from bench.board.references import CONTROL, competitors, controls_of
from bench.board.stats import TRACK, ci_ranks, with_training
from bench.run.results import PERTURBATION, ordinary_rows  # noqa: F401  (PERTURBATION: re-exported)

MIN_PAIRS = 6  # below it, even an exact two-sided Wilcoxon test cannot reach p < 0.05 (2/2^5 = 0.0625)
ZERO_TOLERANCE = 1e-12  # relative: differences smaller than this times the values' scale are zeros
WILCOXON = "wilcoxon-holm"
CI_OVERLAP = "ci-overlap"
REFERENCE_ROW = "reference"  # a control's cell: shown, never ranked
RANKED, CONTROLLED = "rank", "control"  # Holm families: pairs of competitors; pairs with a control
TEST_COLUMNS = [*TRACK, "metric", "method_a", "method_b", "family", "pairs", "statistic", "p", "p_holm", "effect",
                "better", "significant"]


# -- rows the board ranks ---------------------------------------------------------------------------
# -- the statistics ---------------------------------------------------------------------------------
def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979): the i-th smallest of m is multiplied by
    m − i + 1, made non-decreasing in that order and capped at 1. Reject where adjusted ≤ α."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = stepped
    return out


def rank_biserial(d: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of differences ``d`` (Kerby 2014): (T+ − T−) / ΣR, ranks
    of |d| over all pairs (zeros included, as Pratt ranks them, so agreement shrinks it). In [−1, 1];
    positive when the first of the pair is larger."""
    d = np.asarray(d, dtype=np.float64)
    if not len(d) or not np.any(d):
        return 0.0
    r = rankdata(np.abs(d))
    return float((r[d > 0].sum() - r[d < 0].sum()) / r.sum())


def paired_test(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(statistic, p, effect) of the two-sided Wilcoxon signed-rank test of paired ``a`` − ``b``.

    statistic: scipy's (the smaller signed-rank sum); effect: ``rank_biserial`` (> 0: ``a`` larger)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d = a - b
    scale = max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(b), initial=0.0)), 1e-300)
    d[np.abs(d) <= ZERO_TOLERANCE * scale] = 0.0
    if not np.any(d):
        return 0.0, 1.0, 0.0
    with warnings.catch_warnings():  # scipy warns on small samples with zeros; the p-value stands
        warnings.simplefilter("ignore")
        res = wilcoxon(d, zero_method="pratt", alternative="two-sided", method="auto")
    return float(res.statistic), float(res.pvalue), rank_biserial(d)


# -- per-sample scores ----------------------------------------------------------------------------
def oriented_samples(rows: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Per-sample values as the tests compare them: TRACK…, metric, method_label, model_seed, sample,
    ``score`` (higher = better; ``abs_mean`` values turned by the sign of their job's mean)."""
    rows = with_training(ordinary_rows(rows))
    cols = [*TRACK, "job_id", "metric", "method_label", "model_seed", "direction"]
    kind = rows["aggregate"].fillna("mean") if "aggregate" in rows else pd.Series("mean", index=rows.index)
    jobs = rows[cols].assign(aggregate=kind.to_numpy())
    s = samples.merge(jobs, on=["job_id", "metric"], how="inner")
    if s.empty:
        return pd.DataFrame(columns=[*TRACK, "metric", "method_label", "model_seed", "sample", "score"])
    turn = s.groupby(["job_id", "metric"])["value"].transform("mean").map(lambda m: -1.0 if m < 0 else 1.0)
    value = s["value"] * np.where(s["aggregate"] == "abs_mean", turn, 1.0)
    s["score"] = np.where(s["direction"] == "lower", -value, value)
    out = s[[*TRACK, "metric", "method_label", "model_seed", "sample", "score"]]
    return out.sort_values([*TRACK, "metric", "method_label", "model_seed", "sample"], ignore_index=True)


def paired_tests(rows: pd.DataFrame, samples: pd.DataFrame, alpha: float = 0.05,
                 min_pairs: int = MIN_PAIRS) -> pd.DataFrame:
    """One row per (track, metric, method pair) with the pair's test (``TEST_COLUMNS``).

    ``method_a`` < ``method_b`` by name; ``family``: ``control`` when either is a control (the rows'
    ``control`` column), else ``rank``; ``pairs``: inputs × seeds both scored; ``effect``: rank-biserial
    of a − b (> 0: a better); ``p_holm``: Holm over the metric's pairs of one family that were tested; ``better``:
    the significantly better method's label, or ''. Pairs with fewer than ``min_pairs`` have NaN
    p-values (the metric then keeps its CI-overlap rank). Only ordinary rows take part."""
    scores = oriented_samples(rows, samples)
    controls = set(controls_of(rows))
    out = []
    for key, g in scores.groupby([*TRACK, "metric"], sort=True):
        wide = g.pivot_table(index=["model_seed", "sample"], columns="method_label", values="score", aggfunc="first")
        methods = sorted(wide.columns)
        values = wide[methods].to_numpy()
        present = ~np.isnan(values)
        tests = []
        for i, a in enumerate(methods):
            for j in range(i + 1, len(methods)):
                both = present[:, i] & present[:, j]
                pairs = int(both.sum())
                stat, p, effect = (paired_test(values[both, i], values[both, j]) if pairs >= min_pairs
                                   else (np.nan, np.nan, np.nan))
                family = CONTROLLED if {a, methods[j]} & controls else RANKED
                tests.append({**dict(zip([*TRACK, "metric"], key, strict=True)), "method_a": a,
                              "method_b": methods[j], "family": family, "pairs": pairs, "statistic": stat, "p": p,
                              "effect": effect})
        for family in (RANKED, CONTROLLED):
            tested = [t for t in tests if t["family"] == family and np.isfinite(t["p"])]
            for t, adjusted in zip(tested, holm([t["p"] for t in tested]), strict=True):
                t["p_holm"] = float(adjusted)
        for t in tests:
            t.setdefault("p_holm", np.nan)
            t["significant"] = bool(t["p_holm"] <= alpha)
            t["better"] = (t["method_a"] if t["effect"] > 0 else t["method_b"]) if t["significant"] else ""
        out += tests
    return pd.DataFrame(out, columns=TEST_COLUMNS)


# -- ranks from the tests ---------------------------------------------------------------------------
def significance_ranks(methods: Sequence[str], tests: pd.DataFrame) -> dict[str, int]:
    """rank(m) = 1 + number of methods significantly better than m (``tests``: one metric's rows)."""
    beaten = {m: 0 for m in methods}
    for t in tests.itertuples(index=False):
        if t.significant:
            beaten[t.method_b if t.better == t.method_a else t.method_a] += 1
    return {m: 1 + n for m, n in beaten.items()}


def letter_display(order: Sequence[str], different: set[frozenset[str]]) -> dict[str, str]:
    """Compact letter display by insert-and-absorb (Piepho 2004): methods sharing a letter are not
    significantly different. ``order``: best first (letters follow it); ``different``: the
    significantly different pairs."""
    columns: list[set[str]] = [set(order)]
    for pair in sorted(different, key=lambda p: sorted(order.index(m) for m in p)):
        i, j = pair
        split = []
        for col in columns:
            split += [col - {i}, col - {j}] if i in col and j in col else [col]
        # absorb: a column inside another says nothing more (keep the first of equal ones)
        columns = [c for n, c in enumerate(split)
                   if c and not any((c < o) or (c == o and m < n) for m, o in enumerate(split))]
    columns.sort(key=lambda c: sorted(order.index(m) for m in c))
    letters = _letters(len(columns))
    return {m: "".join(letters[k] for k, c in enumerate(columns) if m in c) for m in order}


def _letters(n: int) -> list[str]:
    alphabet = string.ascii_lowercase
    return [alphabet[k] if k < 26 else alphabet[k // 26 - 1] + alphabet[k % 26] for k in range(n)]


def rank_cells(cells: pd.DataFrame, tests: pd.DataFrame) -> pd.DataFrame:
    """``cells`` (``stats.aggregate``) with ``rank``, ``group`` (letters; '' under CI overlap) and
    ``test`` (``wilcoxon-holm`` | ``ci-overlap``) per (track, metric): the paired-test rank where every
    pair of the metric's competitors was tested, else the CI-overlap rank. Controls (``control``
    column) are not ranked: rank 0, no letters, test ``reference``."""
    out = cells.copy()
    out["rank"], out["group"], out["test"] = 0, "", CI_OVERLAP
    if CONTROL in out:
        out.loc[out[CONTROL].fillna("") != "", "test"] = REFERENCE_ROW
    ranked_tests = tests[tests["family"] == RANKED] if "family" in tests else tests
    by_metric = {k: g for k, g in ranked_tests.groupby([*TRACK, "metric"], sort=False)}
    for key, g in competitors(out).groupby([*TRACK, "metric"], sort=True):
        methods = sorted(g["method_label"])
        t = by_metric.get(key)
        pairs = len(methods) * (len(methods) - 1) // 2
        covered = (t is not None and len(t) == pairs and t["p"].notna().all()
                   and set(t["method_a"]) | set(t["method_b"]) == set(methods)) or len(methods) == 1
        if not covered:
            out.loc[g.index, "rank"] = ci_ranks(g["value"].to_numpy(), g["low"].to_numpy(), g["high"].to_numpy(),
                                                g["direction"].iloc[0])
            continue
        t = t if t is not None else ranked_tests.iloc[:0]
        ranks = significance_ranks(methods, t)
        sign = -1.0 if g["direction"].iloc[0] == "lower" else 1.0
        value = dict(zip(g["method_label"], g["value"], strict=True))
        order = sorted(methods, key=lambda m: (ranks[m], -sign * value[m], m))
        letters = letter_display(order, {frozenset((r.method_a, r.method_b)) for r in t.itertuples() if r.significant})
        out.loc[g.index, "rank"] = g["method_label"].map(ranks).to_numpy()
        out.loc[g.index, "group"] = g["method_label"].map(letters).to_numpy()
        out.loc[g.index, "test"] = WILCOXON
    return out
