"""Paper claims as checks on results: HOLDS / DOES NOT HOLD / INCONCLUSIVE, judged on seeds.

Each ``[[claims]]`` table of a suite names a metric and either a trend along an axis or a
comparison of two groups of jobs. Uncertainty is a two-stage bootstrap: resample training seeds,
then the test images inside each resampled seed (so a claim never rests on tight image-level CIs
when the models themselves disagree). A claim holds when the 95% CI of its statistic lies wholly
on the claimed side of zero, fails when it lies wholly on the other side, and is inconclusive
otherwise. A claim that does not hold on our data is reported as such.

Claim kinds (``expect`` says the direction):
- trend:       ``metric`` along ``along`` (``beta`` | ``param:<name>`` | ``recipe:<field>``),
               statistic = least-squares slope of the group means on the axis ranks;
               expect ``increasing`` | ``decreasing``; ``fill`` gives jobs without the axis a value.
- compare:     ``metric`` of group ``a`` minus group ``b`` (``where``-style filters); expect ``a > b`` | ``a < b``.
- faster_drop: relative drop 1 − m(last)/m(first) along ``along`` of ``metric`` minus that of
               ``versus``; expect ``metric``'s drop to be larger (``faster``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.errors import SuiteError

RESAMPLES = 2000
KINDS = ("trend", "compare", "faster_drop")


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


def _seed_samples(rows: pd.DataFrame, samples: pd.DataFrame) -> dict[int, np.ndarray]:
    """Per training seed, the per-image values of every matched job (pooled)."""
    merged = samples.merge(rows[["job_id", "metric", "model_seed"]], on=["job_id", "metric"])
    return {int(s): g["value"].to_numpy() for s, g in merged.groupby("model_seed")}


def boot_means(groups: dict[int, np.ndarray], rng: np.random.Generator, b: int = RESAMPLES) -> np.ndarray:
    """Two-stage bootstrap of the mean over seeds of the per-seed image means → ``b`` values."""
    seeds = sorted(groups)
    per_seed = np.stack([groups[s][rng.integers(len(groups[s]), size=(b, len(groups[s])))].mean(1)
                         for s in seeds])  # S×b: images resampled within each seed
    pick = rng.integers(len(seeds), size=(b, len(seeds)))  # seeds resampled
    return per_seed[pick, np.arange(b)[:, None]].mean(1)


def _ci(values: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def _verdict(ci: tuple[float, float], positive: bool) -> str:
    lo, hi = ci if positive else (-ci[1], -ci[0])
    return "HOLDS" if lo > 0 else "DOES NOT HOLD" if hi < 0 else "INCONCLUSIVE"


def evaluate(claim: dict[str, Any], rows: pd.DataFrame, samples: pd.DataFrame, seed: int = 0) -> Verdict:
    kind = claim.get("kind", "trend")
    if kind not in KINDS:
        raise SuiteError(f"claim '{claim.get('id')}': kind must be one of {KINDS}")
    rng = np.random.default_rng(seed)
    base = rows[_matches(rows, claim.get("where", {}))]

    def group(where: dict[str, Any], metric: str) -> dict[int, np.ndarray]:
        part = base[(base["metric"] == metric) & _matches(base, where)]
        if part.empty:
            raise SuiteError(f"claim '{claim['id']}': no result rows for metric '{metric}' with {where}")
        return _seed_samples(part, samples)

    def along_axis(metric: str) -> tuple[list[float], list[np.ndarray], int]:
        part = base[base["metric"] == metric].copy()
        part["_axis"] = part.apply(lambda r: axis_value(r, claim["along"]), axis=1)
        if "fill" in claim:  # e.g. grad has no σ: it is SmoothGrad's σ = 0 limit
            part["_axis"] = part["_axis"].fillna(float(claim["fill"]))
        part = part[part["_axis"].notna()]
        xs = sorted(part["_axis"].unique())
        if len(xs) < 2:
            raise SuiteError(f"claim '{claim['id']}': needs ≥ 2 values of {claim['along']} for '{metric}'")
        boots, n_seeds = [], 0
        for x in xs:
            g = _seed_samples(part[part["_axis"] == x], samples)
            n_seeds = max(n_seeds, len(g))
            boots.append(boot_means(g, rng))
        return xs, boots, n_seeds

    if kind == "compare":
        ga, gb = group(claim["a"], claim["metric"]), group(claim["b"], claim["metric"])
        ba, bb = boot_means(ga, rng), boot_means(gb, rng)
        diff = ba - bb
        stat = float(np.mean([v.mean() for v in ga.values()]) - np.mean([v.mean() for v in gb.values()]))
        points = [(f"a {claim['a']}", float(ba.mean()), *_ci(ba)), (f"b {claim['b']}", float(bb.mean()), *_ci(bb))]
        ci, positive, seeds = _ci(diff), claim.get("expect", "a > b") == "a > b", min(len(ga), len(gb))
    elif kind == "trend":
        xs, boots, seeds = along_axis(claim["metric"])
        ranks = np.arange(len(xs), dtype=float)
        centred = ranks - ranks.mean()
        slopes = (centred[:, None] * np.stack(boots)).sum(0) / (centred**2).sum()
        stat = float(slopes.mean())
        points = [(f"{claim['along']}={x:g}", float(b.mean()), *_ci(b)) for x, b in zip(xs, boots, strict=True)]
        ci, positive = _ci(slopes), claim.get("expect", "increasing") == "increasing"
    else:
        xs, boots, seeds = along_axis(claim["metric"])
        _, vboots, _ = along_axis(claim["versus"])
        drop = 1 - boots[-1] / boots[0]
        vdrop = 1 - vboots[-1] / vboots[0]
        diff = drop - vdrop
        stat = float(diff.mean())
        points = [(f"{claim['metric']} drop {claim['along']} {xs[0]:g}→{xs[-1]:g}", float(drop.mean()), *_ci(drop)),
                  (f"{claim['versus']} drop", float(vdrop.mean()), *_ci(vdrop))]
        ci, positive = _ci(diff), True
    note = "fewer than 3 training seeds: the verdict rests on too few models" if seeds < 3 else ""
    verdict = _verdict(ci, positive)
    return Verdict(claim["id"], claim.get("text", claim["id"]), verdict, stat, ci, points, seeds, note,
                   _scale(base[base["metric"] == claim["metric"]]))


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


def check_claims(claims: list[dict[str, Any]]) -> None:
    for i, c in enumerate(claims):
        if not isinstance(c, dict) or "id" not in c or "metric" not in c:
            raise SuiteError(f"claims[{i}] needs at least 'id' and 'metric'")
        kind = c.get("kind", "trend")
        need = {"trend": ("along",), "compare": ("a", "b"), "faster_drop": ("along", "versus")}.get(kind)
        if need is None:
            raise SuiteError(f"claims[{i}] ('{c['id']}'): kind must be one of {KINDS}")
        missing = [k for k in need if k not in c]
        if missing:
            raise SuiteError(f"claims[{i}] ('{c['id']}'): a {kind} claim needs {', '.join(missing)}")


def format_verdicts(verdicts: list[Verdict]) -> str:
    lines = []
    for v in verdicts:
        lines.append(f"[{v.verdict}] {v.id}: {v.text}")
        lines.append(f"    statistic {v.statistic:+.4g}, 95% CI [{v.ci[0]:+.4g}, {v.ci[1]:+.4g}], "
                     f"{v.seeds} training seed(s)" + (f" — {v.note}" if v.note else ""))
        if v.scale:
            lines.append(f"    scale: {v.scale}")
        for label, mean, lo, hi in v.points:
            lines.append(f"      {label}: {mean:.4g} [{lo:.4g}, {hi:.4g}]")
    return "\n".join(lines)
