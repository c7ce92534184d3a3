"""The board's statistics — the one implementation, also used by the claims report.

A *cell* is (suite, dataset, model, activation, training, method, metric): its value is the mean over
jobs (training seeds) of the per-job means, its 95% CI a seeded percentile bootstrap of that statistic
over the per-sample values (nested where a cell has several jobs: resample jobs, then samples within
each), and ``n`` the number of per-sample values. A *track* is (suite, dataset, model, activation,
training).

Ranks are per (track, metric) and direction-aware; methods whose CI overlaps the best's share its
rank. Category rank = rank of the mean metric rank within a category; overall = mean of category
ranks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bench.aggregates import aggregate_values
from bench.board.config import BoardConfig

TRACK = ["suite", "dataset", "model", "activation", "training"]  # training: '' or 'sf=N' (split factor)
CELL = [*TRACK, "method_label", "metric"]
BOOTSTRAP_CHUNK = 4_000_000  # resampled values held in memory at once


# -- bootstrap ----------------------------------------------------------------------------------
def bootstrap_means(groups: Sequence[np.ndarray], resamples: int = 1000,
                    seed: int | np.random.SeedSequence = 0, kind: str = "mean") -> np.ndarray:
    """``resamples`` bootstrap replicates of the mean of group means.

    One group: the ordinary bootstrap of the mean (what ``scipy.stats.bootstrap`` resamples). Several
    groups (training seeds): nested — each resample draws groups with replacement, then samples with
    replacement within each drawn group — so the spread carries both the seed-to-seed and the
    input-to-input variation. Vectorised: one index tensor per chunk of resamples. ``kind``: the
    metric's per-job statistic (``bench.aggregates``; ``abs_mean``: |mean| of each resampled group).
    """
    groups = [np.asarray(g, dtype=np.float64).ravel() for g in groups]
    if not groups or any(len(g) == 0 for g in groups):
        raise ValueError("bootstrap needs non-empty groups of per-sample values")
    rng = np.random.default_rng(seed)
    lengths = np.array([len(g) for g in groups])
    n_max, k = int(lengths.max()), len(groups)
    padded = np.zeros((k, n_max))
    for i, g in enumerate(groups):
        padded[i, : len(g)] = g
    stats = np.empty(resamples)
    # The chunking is part of the random stream: changing BOOTSTRAP_CHUNK changes every published CI.
    step = max(1, BOOTSTRAP_CHUNK // (k * n_max))
    for s in range(0, resamples, step):
        b = min(step, resamples - s)
        if k == 1:  # the plain bootstrap: no group draw, so the stream matches the textbook resampling
            which = np.zeros((b, 1), dtype=np.int64)
        else:
            which = rng.integers(0, k, size=(b, k))
        lens = lengths[which]  # b×k
        idx = (rng.random((b, k, n_max)) * lens[..., None]).astype(np.int64)
        values = padded[which[..., None], idx]
        valid = np.arange(n_max) < lens[..., None]
        stats[s : s + b] = aggregate_values(kind, values, valid).mean(-1)
    return stats


def percentile_ci(replicates: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    low, high = np.percentile(replicates, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def bootstrap_ci(groups: Sequence[np.ndarray], resamples: int = 1000, seed: int | np.random.SeedSequence = 0,
                 confidence: float = 0.95, kind: str = "mean") -> tuple[float, float]:
    """Percentile-bootstrap CI of the mean of group statistics (see ``bootstrap_means``)."""
    return percentile_ci(bootstrap_means(groups, resamples, seed, kind), confidence)


def cell_seed(base: int, key: Sequence[object]) -> np.random.SeedSequence:
    """A seed per cell from its key: a cell's CI does not change when other cells are added."""
    h = hashlib.sha256(json.dumps([str(k) for k in key]).encode()).digest()
    return np.random.SeedSequence([base, int.from_bytes(h[:8], "little")])


# -- aggregation --------------------------------------------------------------------------------
def training_label(recipe_json: str) -> str:
    """'' for a model trained on the whole training set, 'sf=8' for one of eight disjoint parts."""
    sf = json.loads(recipe_json).get("split_factor", 1)
    return "" if sf == 1 else f"sf={sf}"


def with_training(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows with the ``training`` track column ('' or 'sf=N'), derived from the recipe if absent."""
    if "training" in rows:
        return rows
    labels = rows["model_recipe"].map(training_label) if "model_recipe" in rows else ""
    return rows.assign(training=labels)


def aggregate(rows: pd.DataFrame, samples: pd.DataFrame | None = None,
              config: BoardConfig | None = None) -> pd.DataFrame:
    """One row per cell: value, CI ``low``/``high``, ``half`` (half-width), ``n``, ``jobs``, ``ci``, and
    ``control`` (the method's declared control kind where the rows carry it, '' otherwise:
    ``bench.board.references``).

    ``ci`` is ``bootstrap`` where every job of the cell has per-sample values, else ``normal``
    (± z·stderr of the mean of job means), and the legend says which cells are which.
    """
    rows = with_training(rows)
    config = config or BoardConfig()
    per_job: dict[tuple[str, str], np.ndarray] = {}
    if samples is not None and len(samples):
        s = samples.sort_values(["job_id", "metric", "sample"])
        per_job = {(j, m): g["value"].to_numpy() for (j, m), g in s.groupby(["job_id", "metric"], sort=False)}
    z = _normal_quantile(config.confidence)
    out = []
    for key, g in rows.groupby(CELL, sort=True, dropna=False):
        g = g.sort_values("job_id")
        value = float(g["value"].mean())
        groups = [per_job.get((j, key[-1])) for j in g["job_id"]]
        if all(x is not None for x in groups):
            kind = g["aggregate"].iloc[0] if "aggregate" in g and pd.notna(g["aggregate"].iloc[0]) else "mean"
            low, high = bootstrap_ci(groups, config.bootstrap_resamples,
                                     cell_seed(config.bootstrap_seed, key), config.confidence, kind)
            if kind == "reported":  # the spread of the per-sample mean, re-centred on the reported values
                shift = value - float(np.mean([aggregate_values("mean", x) for x in groups]))
                low, high = low + shift, high + shift
            method = "bootstrap"
        else:
            half = z * float(np.sqrt((g["stderr"].astype(float) ** 2).sum())) / len(g)
            low, high, method = value - half, value + half, "normal"
        out.append({**dict(zip(CELL, key, strict=True)), "direction": g["direction"].iloc[0],
                    "category": g["category"].iloc[0], "control": str(g["control"].iloc[0]) if "control" in g else "",
                    "value": value, "low": low, "high": high,
                    "half": (high - low) / 2, "n": int(g["n"].sum()), "jobs": int(g["job_id"].nunique()),
                    "ci": method})
    return pd.DataFrame(out)


def _normal_quantile(confidence: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + confidence / 2))


# -- ranking ------------------------------------------------------------------------------------
def ci_ranks(value: np.ndarray, low: np.ndarray, high: np.ndarray, direction: str) -> np.ndarray:
    """Competition ranks with CI-overlap ties.

    The best remaining method leads a group with every remaining method whose CI overlaps its own;
    the group shares rank 1 + (number of methods in better groups). Equal values always tie.
    """
    sign = 1.0 if direction == "lower" else -1.0
    order = sorted(range(len(value)), key=lambda i: (sign * value[i], i))
    ranks = np.zeros(len(value), dtype=int)
    placed = 0
    while order:
        lead = order[0]
        tied = [i for i in order if value[i] == value[lead] or (low[i] <= high[lead] and low[lead] <= high[i])]
        for i in tied:
            ranks[i] = placed + 1
        placed += len(tied)
        order = [i for i in order if i not in tied]
    return ranks


def rank(table: pd.DataFrame) -> pd.DataFrame:
    """Add ``rank`` per (track, metric): best = 1, direction-aware, CI overlap with the best ties."""
    out = table.copy()
    out["rank"] = 0
    for _, g in out.groupby([*TRACK, "metric"], sort=False):
        out.loc[g.index, "rank"] = ci_ranks(g["value"].to_numpy(), g["low"].to_numpy(), g["high"].to_numpy(),
                                            g["direction"].iloc[0])
    return out


def min_rank(scores: pd.Series) -> pd.Series:
    """Competition ranks of mean ranks; rounded first so float noise in a mean cannot split a tie."""
    return scores.round(9).rank(method="min").astype(int)


def category_ranks(ranked: pd.DataFrame) -> pd.DataFrame:
    """Per (track, method, category): ``score`` = mean metric rank, ``rank`` among the track's methods."""
    cat = ranked.groupby([*TRACK, "method_label", "category"], as_index=False)["rank"].mean()
    cat = cat.rename(columns={"rank": "score"})
    cat["rank"] = cat.groupby([*TRACK, "category"])["score"].transform(min_rank)
    return cat


def overall_ranks(cat: pd.DataFrame) -> pd.DataFrame:
    """Per (track, method): ``overall`` = mean of its category ranks, ``rank`` by it (lower = better)."""
    over = cat.groupby([*TRACK, "method_label"], as_index=False)["rank"].mean().rename(columns={"rank": "overall"})
    over["rank"] = over.groupby(TRACK)["overall"].transform(min_rank)
    return over


def sanity_failures(table: pd.DataFrame, thresholds: Mapping[str, Mapping[str, float]]) -> dict[tuple, list[str]]:
    """(track…, method) → reasons, for cells beyond a suite's ``[sanity] <metric>_max|_min``."""
    out: dict[tuple, list[str]] = {}
    for r in table.itertuples(index=False):
        for key, limit in sorted(thresholds.get(r.suite, {}).items()):
            metric, bound = key.rsplit("_", 1)
            if metric == r.metric and ((bound == "max" and r.value > limit) or (bound == "min" and r.value < limit)):
                track = tuple(getattr(r, c) for c in TRACK)
                out.setdefault((*track, r.method_label), []).append(
                    f"{metric} {r.value:.3g} {'>' if bound == 'max' else '<'} {limit:g}")
    return out


# -- paired bootstrap (claims) ------------------------------------------------------------------
def paired_bootstrap_means(values: np.ndarray, resamples: int = 1000, seed: int | np.random.SeedSequence = 0,
                           pair_seeds: bool = True, pair_images: bool = True) -> np.ndarray:
    """G×``resamples`` replicates of each group's mean over seeds of its per-seed image mean.

    ``values`` is G×S×I (group × training seed × test image), NaN where a group has no value for an
    image (a metric that leaves images out) or no model of a seed. Paired: every replicate draws ONE
    set of seed indices and, within each drawn seed, ONE set of image indices, used for every group,
    so a statistic of the groups (a difference, a slope) keeps the seed-to-seed and image-to-image
    components they share out of its spread. ``pair_images=False`` draws images per group (groups
    on different test images); ``pair_seeds=False`` also draws seeds per group (groups that share no
    models). Nested as ``bootstrap_means``: seeds with replacement, then images within each.
    """
    per_seed = paired_bootstrap_seed_means(values, resamples, seed, pair_seeds, pair_images)
    with np.errstate(invalid="ignore"):
        return np.nanmean(per_seed, axis=-1)


def paired_bootstrap_seed_means(values: np.ndarray, resamples: int = 1000, seed: int | np.random.SeedSequence = 0,
                                pair_seeds: bool = True, pair_images: bool = True) -> np.ndarray:
    """G×``resamples``×K: in each replicate of :func:`paired_bootstrap_means`, the image mean of each
    drawn seed (K draws; NaN where a group lacks the seed). A statistic that is not linear in the
    per-seed means — ΔEF's |mean| per job — is taken on these before the mean over seeds."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 3 or 0 in values.shape:
        raise ValueError("paired bootstrap needs a non-empty group × seed × image array")
    rng = np.random.default_rng(seed)
    if not pair_seeds:  # nothing shared: each group on its own stream, its own seeds
        streams = rng.spawn(len(values))
        parts = [paired_bootstrap_seed_means(_drop_empty_seeds(v[None]), resamples, s)[0]
                 for v, s in zip(values, streams, strict=True)]
        k = max(p.shape[-1] for p in parts)
        return np.stack([np.pad(p, ((0, 0), (0, k - p.shape[-1])), constant_values=np.nan) for p in parts])
    g, k, n = values.shape
    present = ~np.isnan(values)
    filled = np.where(present, values, 0.0)
    out = np.empty((g, resamples, k))
    step = max(1, BOOTSTRAP_CHUNK // (g * k * n))
    for s in range(0, resamples, step):
        b = min(step, resamples - s)
        which = rng.integers(0, k, size=(b, k))
        shape = (b, k, n) if pair_images else (b, g, k, n)
        idx = rng.integers(0, n, size=shape)
        if pair_images:
            idx = np.broadcast_to(idx[:, None], (b, g, k, n))
        seeds = np.broadcast_to(which[:, None, :, None], idx.shape)
        groups = np.broadcast_to(np.arange(g)[None, :, None, None], idx.shape)
        count = present[groups, seeds, idx].sum(-1)
        total = filled[groups, seeds, idx].sum(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_seed = total / count  # b×g×k; NaN only if every drawn image of a seed is missing
        out[:, s : s + b] = per_seed.transpose(1, 0, 2)
    return out


def _drop_empty_seeds(values: np.ndarray) -> np.ndarray:
    keep = ~np.isnan(values).all(axis=(0, 2))
    return values[:, keep]


def seed_means(values: np.ndarray) -> np.ndarray:
    """G×S per-seed image means of a G×S×I array (NaN = missing: a seed the group has no model of)."""
    values = np.asarray(values, dtype=np.float64)
    count = (~np.isnan(values)).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nansum(values, axis=-1) / count


def t_interval(estimate: float, replicates: np.ndarray, seeds: int, confidence: float = 0.95) -> tuple[float, float]:
    """``estimate`` ± t(seeds − 1) · SE, SE the bootstrap standard deviation corrected for few seeds.

    Why not the percentile interval: with k training seeds the resampled statistic's spread is the
    plug-in variance, which is (k − 1)/k of the unbiased one, and its quantiles are normal ones where
    a mean of k units follows Student's t(k − 1). At k = 5 the 95% percentile interval is 0.63 times
    the width it needs and covers the truth about 72% of the time. Rescaling the bootstrap SE by
    √(k/(k − 1)) and using t(k − 1) quantiles is the t-interval over seed means, with the SE carrying
    the image-level and pairing structure the bootstrap resampled; its coverage is tested by
    simulation (``tests/test_claims.py``). Needs ≥ 2 seeds.
    """
    from scipy.stats import t

    if seeds < 2:
        return float("-inf"), float("inf")
    se = float(np.nanstd(replicates)) * np.sqrt(seeds / (seeds - 1))
    half = float(t.ppf(0.5 + confidence / 2, seeds - 1)) * se
    return estimate - half, estimate + half


def t_detectable_effect(replicates: np.ndarray, seeds: int, confidence: float = 0.95, power: float = 0.8) -> float:
    """The smallest true statistic :func:`t_interval` excludes zero for with probability ``power``:
    (t(1 − α/2; k − 1) + t(power; k − 1)) · SE, the SE as in :func:`t_interval` (the usual
    one-sample t approximation, which ignores the noncentral t's skew). NaN below 2 seeds."""
    if seeds < 2:
        return float("nan")
    se = float(np.nanstd(replicates)) * np.sqrt(seeds / (seeds - 1))
    return detectable_effect(se, seeds - 1, confidence, power)


def detectable_effect(se: float, df: float, confidence: float = 0.95, power: float = 0.8) -> float:
    """The smallest true effect a two-sided t test at level 1 − ``confidence`` detects with probability
    ``power`` when its estimate has standard error ``se`` on ``df`` degrees of freedom:
    (t(1 − α/2; df) + t(power; df)) · se. The one formula behind the claims' and the board's MDE."""
    from scipy.stats import t

    if df < 1 or not np.isfinite(se):
        return float("nan")
    return float(t.ppf(0.5 + confidence / 2, df) + t.ppf(power, df)) * se
