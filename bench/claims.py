"""Paper claims as checks on results: HOLDS / DOES NOT HOLD / INCONCLUSIVE, judged on seeds.

Each ``[[claims]]`` table of a suite names a metric and either a trend along an axis or a
comparison of two groups of jobs. Uncertainty is the board's bootstrap (``bench.board.stats``: the
same function, resample count, base seed and confidence as the board's CIs, from
``registry/board.toml``), nested: resample training seeds, then the test images inside each
resampled seed (so a claim never rests on tight image-level CIs when the models themselves
disagree). Each group of jobs is seeded from the claim id and the group's key, as a board cell is.
A claim holds when the CI of its statistic lies wholly on the claimed side of zero, fails when it
lies wholly on the other side, and is inconclusive otherwise. A claim that does not hold on our
data is reported as such.

Claim kinds (``expect`` says the direction):
- trend:       ``metric`` along ``along`` (``beta`` | ``param:<name>`` | ``recipe:<field>``),
               statistic = least-squares slope of the group means on the axis ranks;
               expect ``increasing`` | ``decreasing``; ``fill`` gives jobs without the axis a value.
- compare:     ``metric`` of group ``a`` minus group ``b`` (``where``-style filters); expect ``a > b`` | ``a < b``.
- faster_drop: relative drop 1 − m(last)/m(first) along ``along`` of ``metric`` minus that of
               ``versus``; expect ``metric``'s drop to be larger (``faster``).
- extreme:     the point ``at`` of the axis ``along`` (``at = "inf"``: ReLU on ``beta``) against every
               other point: m(at) − max(others) for expect ``highest`` (min(others) − m(at) for ``lowest``).
- within:      group ``a`` inside the range of the groups ``range`` (a list of filters):
               min(a − min(range), max(range) − a) > 0.
- cap_met:     every model of the rows (``where``) reached its accuracy cap: min over models of held-out
               accuracy − cap, exact (no resampling; the models are the population).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.board import stats
from bench.board.config import BoardConfig, load_board_config
from bench.claim_spec import KINDS, check_claims  # noqa: F401  (re-exported: the suite loader's check)
from bench.errors import ResultsError, SuiteError


@dataclass
class Verdict:
    id: str
    text: str
    verdict: str
    statistic: float
    ci: tuple[float, float]
    points: list[tuple[str, float, float, float]]  # (label, mean, lo, hi)
    seeds: int
    note: str = ""
    scale: str = ""
    pairing: str = ""
    dataset: str = ""  # the dataset the claim was judged on (a suite judges every claim on each of its own)
    mde: float = math.nan  # minimum detectable |statistic| at 80% power (t over seeds, the bootstrap's SE)


def axis_value(row: pd.Series, along: str) -> float:
    if along == "beta":  # SP(β); ReLU is the β → ∞ limit; other activations have no β
        act = row["activation"]
        if act == "relu":
            return math.inf
        return float(act.split(":", 1)[1]) if act.startswith("softplus:") else math.nan
    kind, _, name = along.partition(":")
    source = {"param": "method_params", "recipe": "model_recipe"}.get(kind)
    if source is None or not name:
        raise SuiteError(f"claim axis '{along}' must be 'beta', 'param:<name>' or 'recipe:<field>'")
    value = json.loads(row[source]).get(name)
    return math.nan if value is None else float(value)


def _matches(rows: pd.DataFrame, where: dict[str, Any]) -> pd.Series:
    keep = pd.Series(True, index=rows.index)
    for key, want in where.items():
        if key.startswith(("param:", "recipe:")) or key == "beta":
            col = rows.apply(lambda r, k=key: axis_value(r, k), axis=1)
        elif key in rows.columns:
            col = rows[key]
        else:
            raise SuiteError(f"claim filter '{key}' is not a result column, 'beta', 'param:…' or 'recipe:…'")
        keep &= col.isin(want if isinstance(want, list) else [want])
    return keep


@dataclass
class _Points:
    """The groups a claim's statistic is a function of, as one unit × seed × image array: a unit is
    a group's pooled jobs, or (``per_job`` groups) one job configuration of it over its seeds."""

    labels: list[str]
    values: np.ndarray
    owner: np.ndarray  # the group of each unit
    seeds: int
    pair_seeds: bool
    pair_images: bool

    @property
    def pairing(self) -> str:
        if self.pair_seeds and self.pair_images:
            return "paired: same resampled seeds and images for every group"
        if self.pair_seeds:
            return "paired on seeds; images resampled per group (the groups use different test images)"
        return "unpaired: the groups share no training seeds"


def _config_without_seed(part: pd.DataFrame) -> pd.Series:
    """A job's configuration less its training seed: the jobs of one method on one recipe, over seeds."""
    def recipe(text: str) -> str:
        return json.dumps({k: v for k, v in json.loads(text).items() if k != "seed"}, sort_keys=True)

    return part["method_label"].astype(str) + "|" + part["model_recipe"].map(recipe)


def _stack(labels: list[str], parts: list[pd.DataFrame], samples: pd.DataFrame, per_job: list[bool]) -> _Points:
    """Per unit, per training seed, per test image: the mean over the unit's jobs of that image."""
    cells, owner = [], []
    for g, (part, split) in enumerate(zip(parts, per_job, strict=True)):
        part = part[["job_id", "metric", "model_seed"]].assign(
            _unit=_config_without_seed(part) if split else "")
        merged = samples.merge(part, on=["job_id", "metric"])
        for _, unit in merged.groupby("_unit", sort=True):
            cells.append(unit.groupby(["model_seed", "sample"])["value"].mean())
            owner.append(g)
    seed_sets = [set(c.index.get_level_values(0)) for c in cells]
    seeds = sorted(set().union(*seed_sets))
    images = sorted(set().union(*(set(c.index.get_level_values(1)) for c in cells)))
    full = pd.MultiIndex.from_product([seeds, images])
    values = np.stack([c.reindex(full).to_numpy().reshape(len(seeds), len(images)) for c in cells])
    # Jobs share test images when they draw the same inputs: same dataset, sample count and seed.
    inputs = {tuple(r) for p in parts for r in p[[c for c in ("dataset", "samples", "seed") if c in p]]
              .drop_duplicates().itertuples(index=False)}
    pair_seeds = all(s == seed_sets[0] for s in seed_sets)
    n_seeds = len(seeds) if pair_seeds else min(len(s) for s in seed_sets)
    return _Points(labels, values, np.asarray(owner), n_seeds, pair_seeds, pair_seeds and len(inputs) <= 1)


class _Bootstrap:
    """The board's bootstrap settings; one paired draw per claim, seeded by the claim id."""

    def __init__(self, claim_id: str, config: BoardConfig | None) -> None:
        self.stats, self.claim_id = stats, claim_id
        self.config = config or load_board_config()
        self.kinds: dict[str, str] = {}  # metric → its declared aggregate (rows' "aggregate"; default mean)

    def replicates(self, pts: _Points, absolute: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per group: its estimate and its ``resamples`` paired replicates. A unit of an ``absolute``
        group (ΔEF) takes |mean| per seed — per job, as the board's value — before any pooling, so
        signed differences of different jobs never cancel."""
        seed = self.stats.cell_seed(self.config.bootstrap_seed, [self.claim_id])
        per_seed = self.stats.paired_bootstrap_seed_means(pts.values, self.config.bootstrap_resamples, seed,
                                                          pts.pair_seeds, pts.pair_images)
        est_seed = self.stats.seed_means(pts.values)
        flip = absolute[pts.owner]
        per_seed[flip], est_seed[flip] = np.abs(per_seed[flip]), np.abs(est_seed[flip])
        with np.errstate(invalid="ignore"):
            unit_reps, unit_est = np.nanmean(per_seed, axis=-1), np.nanmean(est_seed, axis=-1)
        groups = range(len(pts.labels))
        return (np.array([unit_est[pts.owner == g].mean() for g in groups]),
                np.stack([unit_reps[pts.owner == g].mean(0) for g in groups]))

    def ci(self, estimate: float, replicates: np.ndarray, seeds: int) -> tuple[float, float]:
        return self.stats.t_interval(estimate, replicates, seeds, self.config.confidence)


def _verdict(ci: tuple[float, float], positive: bool) -> str:
    lo, hi = ci if positive else (-ci[1], -ci[0])
    return "HOLDS" if lo > 0 else "DOES NOT HOLD" if hi < 0 else "INCONCLUSIVE"


def evaluate(claim: dict[str, Any], rows: pd.DataFrame, samples: pd.DataFrame,
             config: BoardConfig | None = None) -> Verdict:
    """Judge one claim; ``config`` (default: ``registry/board.toml``) sets the bootstrap. Rows of jobs
    on perturbed models (a suite's ``noise_resilience``) are no part of any claim: they are left out
    here, and their samples with them (``_stack`` takes the samples of the rows it is given)."""
    from bench.run.results import ordinary_rows

    rows = ordinary_rows(rows)
    kind = claim.get("kind", "trend")
    if kind not in KINDS:
        raise SuiteError(f"claim '{claim.get('id')}': kind must be one of {KINDS}")
    text = claim.get("text", claim["id"])
    if kind == "cap_met":
        return _cap_met(claim, rows, text)
    for metric in (claim["metric"], claim.get("versus")):
        if metric is not None and not (rows["metric"] == metric).any():
            return Verdict(claim["id"], text, "NOT COMPUTABLE", math.nan, (math.nan, math.nan), [], 0,
                           f"not computable: metric {metric} has no rows")
    boot = _Bootstrap(claim["id"], config)
    if "aggregate" in rows:
        boot.kinds = {m: k for m, k in zip(rows["metric"], rows["aggregate"], strict=True) if isinstance(k, str)}
    base = rows[_matches(rows, claim.get("where", {}))]
    exclude = {k: v for k, v in claim.get("exclude", {}).items() if k != claim.get("along")}
    if exclude:
        base = base[~_matches(base, exclude)]
    (labels, parts), statistic, positive = {"compare": _compare, "trend": _trend, "faster_drop": _faster_drop,
                                            "extreme": _extreme, "within": _within}[kind](claim, base)
    # Each group's statistic is its metric's declared aggregate of the mean; ΔEF's is |mean| per job.
    absolute = np.array([boot.kinds.get(str(p["metric"].iloc[0]), "mean") == "abs_mean" if len(p) else False
                         for p in parts])
    pts = _stack(labels, parts, samples, list(absolute))
    est, reps = boot.replicates(pts, absolute)
    stat_reps, stat = statistic(reps), float(statistic(est[:, None])[0])
    ci = boot.ci(stat, stat_reps, pts.seeds)
    mde = boot.stats.t_detectable_effect(stat_reps, pts.seeds, boot.config.confidence)
    points = [(label, float(e), *boot.ci(float(e), r, pts.seeds))
              for label, e, r in zip(pts.labels, est, reps, strict=True)]
    notes = ["fewer than 3 training seeds: the verdict rests on too few models"] if pts.seeds < 3 else []
    if boot.kinds.get(claim["metric"]) == "reported":  # e.g. information_level: AUC of the median curve
        notes.append(f"judged on the mean of per-image {claim['metric']} values; the board shows the metric's "
                     "reported aggregate, which resampling cannot rebuild from per-image values")
    note = "; ".join(notes)
    return Verdict(claim["id"], text, _verdict(ci, positive), stat, ci, points, pts.seeds, note,
                   _scale(base[base["metric"] == claim["metric"]]), pts.pairing, mde=mde)


Groups = tuple[list[str], list[pd.DataFrame]]


def _group(claim: dict[str, Any], base: pd.DataFrame, where: dict[str, Any], metric: str) -> pd.DataFrame:
    part = base[(base["metric"] == metric) & _matches(base, where)]
    if part.empty:
        raise SuiteError(f"claim '{claim['id']}': no result rows for metric '{metric}' with {where}")
    return part


def _along_axis(claim: dict[str, Any], base: pd.DataFrame, metric: str) -> tuple[list[float], list[pd.DataFrame]]:
    part = base[base["metric"] == metric].copy()
    part["_axis"] = part.apply(lambda r: axis_value(r, claim["along"]), axis=1)
    if "fill" in claim:  # e.g. grad has no σ: it is SmoothGrad's σ = 0 limit
        part["_axis"] = part["_axis"].fillna(float(claim["fill"]))
    dropped = claim.get("exclude", {}).get(claim["along"], [])
    part = part[part["_axis"].notna() & ~part["_axis"].isin(dropped if isinstance(dropped, list) else [dropped])]
    xs = sorted(part["_axis"].unique())
    if len(xs) < 2:
        raise SuiteError(f"claim '{claim['id']}': needs ≥ 2 values of {claim['along']} for '{metric}'")
    return xs, [part[part["_axis"] == x] for x in xs]


def _compare(claim: dict[str, Any], base: pd.DataFrame):
    """Statistic: mean of group a minus mean of group b."""
    parts = [_group(claim, base, claim[k], claim["metric"]) for k in ("a", "b")]
    labels = [f"a {claim['a']}", f"b {claim['b']}"]
    return (labels, parts), lambda m: m[0] - m[1], claim.get("expect", "a > b") == "a > b"


def _trend(claim: dict[str, Any], base: pd.DataFrame):
    """Statistic: least-squares slope of the group means on the ranks of the axis values (β = ∞ has a rank)."""
    xs, parts = _along_axis(claim, base, claim["metric"])
    centred = np.arange(len(xs), dtype=float) - (len(xs) - 1) / 2

    def slope(m: np.ndarray) -> np.ndarray:
        return (centred[:, None] * m).sum(0) / (centred**2).sum()

    labels = [f"{claim['along']}={x:g}" for x in xs]
    return (labels, parts), slope, claim.get("expect", "increasing") == "increasing"


def _faster_drop(claim: dict[str, Any], base: pd.DataFrame):
    """Statistic: relative drop 1 − m(last)/m(first) of ``metric`` minus that of ``versus``."""
    xs, parts = _along_axis(claim, base, claim["metric"])
    vxs, vparts = _along_axis(claim, base, claim["versus"])
    labels = [f"{claim['metric']} at {claim['along']}={xs[0]:g}", f"{claim['metric']} at {xs[-1]:g}",
              f"{claim['versus']} at {vxs[0]:g}", f"{claim['versus']} at {vxs[-1]:g}"]
    return (labels, [parts[0], parts[-1], vparts[0], vparts[-1]]), \
        lambda m: (1 - m[1] / m[0]) - (1 - m[3] / m[2]), True


def _extreme(claim: dict[str, Any], base: pd.DataFrame):
    """Statistic: m(at) − max of the other axis points (``highest``), or min of the others − m(at)."""
    xs, parts = _along_axis(claim, base, claim["metric"])
    at = float(claim["at"])
    if at not in xs:
        raise SuiteError(f"claim '{claim['id']}': {claim['along']}={claim['at']} is not among the axis values "
                         f"{', '.join(f'{x:g}' for x in xs)}")
    i, highest = xs.index(at), claim.get("expect", "highest") == "highest"

    def margin(m: np.ndarray) -> np.ndarray:
        others = np.delete(m, i, axis=0)
        return m[i] - others.max(0) if highest else others.min(0) - m[i]

    return ([f"{claim['along']}={x:g}" for x in xs], parts), margin, True


def _within(claim: dict[str, Any], base: pd.DataFrame):
    """Statistic: min(a − min(range), max(range) − a), > 0 when a lies inside the baselines' range."""
    wheres = [claim["a"], *claim["range"]]
    parts = [_group(claim, base, w, claim["metric"]) for w in wheres]

    def inside(m: np.ndarray) -> np.ndarray:
        return np.minimum(m[0] - m[1:].min(0), m[1:].max(0) - m[0])

    return ([f"a {claim['a']}", *(f"range {w}" for w in claim["range"])], parts), inside, True


def _cap_met(claim: dict[str, Any], rows: pd.DataFrame, text: str) -> Verdict:
    models = rows[_matches(rows, claim.get("where", {}))].drop_duplicates("model_hash")
    if models.empty:
        return Verdict(claim["id"], text, "NOT COMPUTABLE", math.nan, (math.nan, math.nan), [], 0,
                       "not computable: no models match the claim's filter")
    cap = models["model_recipe"].map(lambda r: json.loads(r).get("accuracy_cap"))
    if cap.isna().any():
        raise SuiteError(f"claim '{claim['id']}': a cap_met claim needs models trained under an accuracy_cap")
    margin = models["model_accuracy"] - cap.astype(float)
    stat = float(margin.min())
    points = [(str(act), float(m.min()), float(m.min()), float(m.max()))
              for act, m in margin.groupby(models["activation"], sort=True)]
    return Verdict(claim["id"], text, "HOLDS" if stat >= 0 else "DOES NOT HOLD", stat, (stat, stat), points,
                   int(models["model_seed"].nunique()),
                   f"exact over {len(models)} models: held-out accuracy − cap, min per activation [min, max]",
                   _scale(models), "not resampled: every model of the suite is counted")


def _scale(rows: pd.DataFrame) -> str:
    """Where the verdict was reached: data, models, inputs per job, the models' test accuracy."""
    parts = []
    if {"dataset", "model"} <= set(rows.columns):
        parts.append(f"{', '.join(sorted(set(rows['dataset'])))} × {', '.join(sorted(set(rows['model'])))}")
    if "n" in rows:
        parts.append(f"{int(rows['n'].max())} test inputs per job")
    if "model_test_accuracy" in rows:
        acc = rows.drop_duplicates("model_hash" if "model_hash" in rows else "job_id")["model_test_accuracy"]
        parts.append(f"model test accuracy {acc.min():.2f}–{acc.max():.2f}")
    return "; ".join(parts)


def format_verdicts(verdicts: list[Verdict]) -> str:
    lines = []
    for v in verdicts:
        on = f" (on {v.dataset})" if v.dataset else ""
        lines.append(f"[{v.verdict}] {v.id}{on}: {v.text}")
        if v.verdict == "NOT COMPUTABLE":
            lines.append(f"    {v.note}")
            continue
        lines.append(f"    statistic {v.statistic:+.4g}, 95% CI [{v.ci[0]:+.4g}, {v.ci[1]:+.4g}] (t-interval, "
                     f"bootstrap SE), {v.seeds} training seed(s); detectable at 80% power: |statistic| ≥ {v.mde:.3g}"
                     + (f" — {v.note}" if v.note else ""))
        lines.append(f"    {v.pairing}")
        if v.scale:
            lines.append(f"    scale: {v.scale}")
        for label, mean, lo, hi in v.points:
            lines.append(f"      {label}: {mean:.4g} [{lo:.4g}, {hi:.4g}]")
    return "\n".join(lines)


def judge_suite(suite: Any, results: str = "results", config: BoardConfig | None = None) -> list[Verdict]:
    """Every ``[[claims]]`` of a loaded ``bench.suite.Suite`` judged on its results under ``results``.

    Takes the suite, not its name: the loaded suite says which jobs are current.
    """
    from bench.run.results import drop_jobs, ignored_note, join, load_rows, load_samples, stale_jobs

    if not suite.claims:
        return []
    root = join(results, suite.name)
    stale = set(stale_jobs(root, {j.id for j in suite.jobs}))  # an edited suite must not pool old results
    try:
        rows, samples = drop_jobs(load_rows(root), stale), drop_jobs(load_samples(root), stale)
    except ResultsError:  # no results at all: the same as none of the current jobs
        rows, samples = pd.DataFrame(), pd.DataFrame()
    if stale:
        print(f"note: {ignored_note(len(stale), suite.name)}", file=sys.stderr)
    datasets = list(dict.fromkeys(j.recipe.dataset for j in suite.jobs))  # the suite's order
    if samples.empty:  # said per claim, so a report over several suites still judges the others
        note = f"not computable: no results of the suite's current jobs in {root} (bench run {suite.name})"
        return [Verdict(c["id"], c.get("text", c["id"]), "NOT COMPUTABLE", math.nan, (math.nan, math.nan), [], 0,
                        note, dataset=d) for c in suite.claims for d in datasets]
    # Every claim on each dataset by itself: the same statistic, never pooled over datasets.
    out = []
    for claim in suite.claims:
        for d in datasets:
            v = evaluate(claim, rows[rows["dataset"] == d], samples, config)
            v.dataset = d
            out.append(v)
    return out


def format_markdown(judged: list[tuple[str, list[Verdict]]]) -> str:
    """The README table: one row per (claim, dataset); suite and claim named on their first row."""
    lines = ["| suite | claim | dataset | verdict | statistic [95% CI] | MDE (80%) | seeds |",
             "|---|---|---|---|---|---|---|"]
    for suite, verdicts in judged:
        last = None
        for i, v in enumerate(verdicts):
            stat = (v.note if v.verdict == "NOT COMPUTABLE"
                    else f"{v.statistic:+.3g} [{v.ci[0]:+.3g}, {v.ci[1]:+.3g}]")
            seeds = str(v.seeds) if v.seeds else "–"
            mde = f"{v.mde:.2g}" if math.isfinite(v.mde) else "–"
            text = v.text if v.id != last else ""
            last = v.id
            cells = [suite if i == 0 else "", text, v.dataset, v.verdict, stat, mde, seeds]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
