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
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bench.aggregates import aggregate_values
from bench.errors import SuiteError

if TYPE_CHECKING:
    from bench.board.config import BoardConfig

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


class _Bootstrap:
    """The board's bootstrap, seeded per group of jobs by the claim id and the group's key."""

    def __init__(self, claim_id: str, config: BoardConfig | None) -> None:
        # Imported here, not at the top: bench.suite imports this module for check_claims, and the
        # suite layer must not load the board.
        from bench.board import stats
        from bench.board.config import load_board_config

        self.stats, self.claim_id = stats, claim_id
        self.config = config or load_board_config()
        self.kinds: dict[str, str] = {}  # metric → its declared aggregate (rows' "aggregate"; default mean)

    def means(self, groups: dict[int, np.ndarray], *key: object) -> np.ndarray:
        """Replicates of the mean over seeds of the per-seed image means (seeds in ascending order)."""
        seed = self.stats.cell_seed(self.config.bootstrap_seed, [self.claim_id, *key])
        return self.stats.bootstrap_means([groups[s] for s in sorted(groups)], self.config.bootstrap_resamples, seed,
                                          self.kinds.get(str(key[0]), "mean"))

    def ci(self, replicates: np.ndarray) -> tuple[float, float]:
        return self.stats.percentile_ci(replicates, self.config.confidence)


def _verdict(ci: tuple[float, float], positive: bool) -> str:
    lo, hi = ci if positive else (-ci[1], -ci[0])
    return "HOLDS" if lo > 0 else "DOES NOT HOLD" if hi < 0 else "INCONCLUSIVE"


Judged = tuple[float, tuple[float, float], bool, list[tuple[str, float, float, float]], int]


def evaluate(claim: dict[str, Any], rows: pd.DataFrame, samples: pd.DataFrame,
             config: BoardConfig | None = None) -> Verdict:
    """Judge one claim; ``config`` (default: ``registry/board.toml``) sets the bootstrap."""
    kind = claim.get("kind", "trend")
    if kind not in KINDS:
        raise SuiteError(f"claim '{claim.get('id')}': kind must be one of {KINDS}")
    boot = _Bootstrap(claim["id"], config)
    if "aggregate" in rows:
        boot.kinds = {m: k for m, k in zip(rows["metric"], rows["aggregate"], strict=True) if isinstance(k, str)}
    base = rows[_matches(rows, claim.get("where", {}))]
    judge = {"compare": _compare, "trend": _trend, "faster_drop": _faster_drop}[kind]
    stat, ci, positive, points, seeds = judge(claim, base, samples, boot)
    note = "fewer than 3 training seeds: the verdict rests on too few models" if seeds < 3 else ""
    return Verdict(claim["id"], claim.get("text", claim["id"]), _verdict(ci, positive), stat, ci, points, seeds,
                   note, _scale(base[base["metric"] == claim["metric"]]))


def _group(claim: dict[str, Any], base: pd.DataFrame, samples: pd.DataFrame, where: dict[str, Any],
           metric: str) -> dict[int, np.ndarray]:
    part = base[(base["metric"] == metric) & _matches(base, where)]
    if part.empty:
        raise SuiteError(f"claim '{claim['id']}': no result rows for metric '{metric}' with {where}")
    return _seed_samples(part, samples)


def _along_axis(claim: dict[str, Any], base: pd.DataFrame, samples: pd.DataFrame, metric: str,
                boot: _Bootstrap) -> tuple[list[float], list[np.ndarray], int]:
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
        boots.append(boot.means(g, metric, f"{claim['along']}={float(x)!r}"))  # repr: exact, numpy-free
    return xs, boots, n_seeds


def _compare(claim: dict[str, Any], base: pd.DataFrame, samples: pd.DataFrame, boot: _Bootstrap) -> Judged:
    ga, gb = _group(claim, base, samples, claim["a"], claim["metric"]), _group(claim, base, samples, claim["b"],
                                                                               claim["metric"])
    ba = boot.means(ga, claim["metric"], "a", json.dumps(claim["a"], sort_keys=True, default=str))
    bb = boot.means(gb, claim["metric"], "b", json.dumps(claim["b"], sort_keys=True, default=str))
    kind = boot.kinds.get(claim["metric"], "mean")
    stat = float(np.mean([aggregate_values(kind, v) for v in ga.values()])
                 - np.mean([aggregate_values(kind, v) for v in gb.values()]))
    points = [(f"a {claim['a']}", float(ba.mean()), *boot.ci(ba)), (f"b {claim['b']}", float(bb.mean()), *boot.ci(bb))]
    return stat, boot.ci(ba - bb), claim.get("expect", "a > b") == "a > b", points, min(len(ga), len(gb))


def _trend(claim: dict[str, Any], base: pd.DataFrame, samples: pd.DataFrame, boot: _Bootstrap) -> Judged:
    xs, boots, seeds = _along_axis(claim, base, samples, claim["metric"], boot)
    ranks = np.arange(len(xs), dtype=float)
    centred = ranks - ranks.mean()
    slopes = (centred[:, None] * np.stack(boots)).sum(0) / (centred**2).sum()
    points = [(f"{claim['along']}={x:g}", float(b.mean()), *boot.ci(b)) for x, b in zip(xs, boots, strict=True)]
    return float(slopes.mean()), boot.ci(slopes), claim.get("expect", "increasing") == "increasing", points, seeds


def _faster_drop(claim: dict[str, Any], base: pd.DataFrame, samples: pd.DataFrame, boot: _Bootstrap) -> Judged:
    xs, boots, seeds = _along_axis(claim, base, samples, claim["metric"], boot)
    _, vboots, _ = _along_axis(claim, base, samples, claim["versus"], boot)
    drop = 1 - boots[-1] / boots[0]
    vdrop = 1 - vboots[-1] / vboots[0]
    diff = drop - vdrop
    points = [(f"{claim['metric']} drop {claim['along']} {xs[0]:g}→{xs[-1]:g}", float(drop.mean()), *boot.ci(drop)),
              (f"{claim['versus']} drop", float(vdrop.mean()), *boot.ci(vdrop))]
    return float(diff.mean()), boot.ci(diff), True, points, seeds


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
