"""Can a metric be trusted on a track, and what does a method cost?

- Reactivity to controls: the control methods (those the registry declares controls,
  ``bench.board.references``: ``random``, uniform noise maps, and ``sobel``, an edge map of the
  input, blind to the model) run as ordinary methods. A metric that does not rank the plain
  gradient (``grad``) significantly above the noise control in the paired test
  (``significance.paired_tests``; CI non-overlap where the metric fell back to CI overlap) cannot
  tell an explanation from noise on that track: it is flagged. ``grad`` vs every other control is
  reported. "not measured" where the track lacks one of the two methods.
- Noise resilience: rows with a non-empty ``model_perturbation`` are the same jobs on a minor weight
  perturbation of the model (accuracy unchanged). NR = mean over methods of |v_perturbed −
  v_ordinary| (job values matched on method and training seed, averaged over the seeds) over the
  standard deviation across those methods of their ordinary values (population std, ddof = 0): how
  far a perturbation that changes nothing the model does moves a score, in units of how far apart
  the methods are. Flagged above ``BoardConfig.noise_resilience_max``.
- Concordance: Kendall's W of the rankings the metrics of a category give the methods in a track.
- Cost: maps per second and model passes per map, per (track, method), from the jobs' own timings.

Only ordinary rows enter rankings, concordance and cost; perturbed rows only enter NR.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.board.friedman import block_rank_matrix, friedman, kendall_w, oriented
from bench.board.references import NOT_MEASURED, controls_of, ordered_controls, pairs_by_key, versus
from bench.board.stats import TRACK, with_training
from bench.run.results import PERTURBATION, ordinary_rows, perturbed_rows

REFERENCE = "grad"  # the method a reliable metric must rank above the noise control
NR_COLUMNS = [*TRACK, "metric", "perturbation", "methods", "jobs", "shift", "spread", "nr", "flagged"]
CONCORDANCE_COLUMNS = [*TRACK, "category", "metrics", "methods", "w", "chi2", "p"]
COST_COLUMNS = [*TRACK, "method_label", "jobs", "maps", "explain_seconds", "maps_per_second", "passes_per_map",
                "devices"]


# -- reactivity ---------------------------------------------------------------------------------
def reactivity(cells: pd.DataFrame, tests: pd.DataFrame, reference: str = REFERENCE,
               controls: Sequence[str] | None = None) -> pd.DataFrame:
    """Per (track, metric): ``vs_<control>`` ('better' | 'not different' | 'worse' | 'not measured'),
    ``p_<control>`` (Holm-adjusted) and ``effect_<control>`` (rank-biserial, > 0: the reference better)
    for each control (default: the cells' declared controls, the noise control first), ``basis``
    ('wilcoxon-holm' | 'ci-overlap') and ``unreactive``: the reference is measured against the first
    control and not significantly better."""
    controls = tuple(controls) if controls is not None else ordered_controls(controls_of(cells))
    pairs = pairs_by_key(tests)
    out = []
    for key, g in cells.groupby([*TRACK, "metric"], sort=True):
        by_method = g.set_index("method_label")
        row: dict[str, object] = dict(zip([*TRACK, "metric"], key, strict=True))
        basis = "ci-overlap"
        for control in controls:
            verdict, p, effect, how = versus(key, by_method, pairs, reference, control)
            basis = "wilcoxon-holm" if how == "wilcoxon-holm" else basis
            row |= {f"vs_{control}": verdict, f"p_{control}": p, f"effect_{control}": effect}
        first = row[f"vs_{controls[0]}"] if controls else NOT_MEASURED
        out.append(row | {"basis": basis, "unreactive": first not in ("better", NOT_MEASURED)})
    columns = [*TRACK, "metric", *(f"{x}_{c}" for c in controls for x in ("vs", "p", "effect")), "basis", "unreactive"]
    return pd.DataFrame(out, columns=columns)


def reactivity_controls(react: pd.DataFrame) -> list[str]:
    """The controls a ``reactivity`` table measured, in its order (the bar first)."""
    return [c[3:] for c in react.columns if c.startswith("vs_")]


# -- noise resilience -----------------------------------------------------------------------------
def noise_resilience(rows: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """Per (track, metric, perturbation): NR and whether it exceeds ``threshold`` (``NR_COLUMNS``).

    ``jobs``: matched (method, seed) pairs; ``shift``: mean over methods of the mean |Δ| over their
    seeds; ``spread``: std over the same methods of their mean ordinary value on the same seeds.
    spread 0: NR is inf if anything moved (flagged), NaN if nothing did. Empty without perturbed rows."""
    rows = with_training(rows)
    moved = perturbed_rows(rows)
    if moved.empty:
        return pd.DataFrame(columns=NR_COLUMNS)
    key = [*TRACK, "metric", "method_label", "model_seed"]
    base = ordinary_rows(rows).groupby(key, as_index=False)["value"].mean()
    moved = moved[[*key, PERTURBATION, "value"]].rename(columns={"value": "perturbed"})
    both = moved.merge(base, on=key, how="inner")
    both["delta"] = (both["perturbed"] - both["value"]).abs()
    out = []
    for k, g in both.groupby([*TRACK, "metric", PERTURBATION], sort=True):
        per_method = g.groupby("method_label")[["delta", "value"]].mean()
        shift = float(per_method["delta"].mean())
        spread = float(per_method["value"].std(ddof=0))
        nr = shift / spread if spread > 0 else (np.inf if shift > 0 else np.nan)
        out.append({**dict(zip([*TRACK, "metric", "perturbation"], k, strict=True)), "methods": len(per_method),
                    "jobs": len(g), "shift": shift, "spread": spread, "nr": nr, "flagged": bool(nr > threshold)})
    return pd.DataFrame(out, columns=NR_COLUMNS)


# -- concordance ----------------------------------------------------------------------------------
def concordance(cells: pd.DataFrame) -> pd.DataFrame:
    """Kendall's W per (track, category) of its metrics' rankings of the methods that every one of
    those metrics scored (``CONCORDANCE_COLUMNS``; χ² = W·m(k − 1) and its Friedman p). Categories
    with one metric are left out: one ranking agrees with itself."""
    out = []
    scored = cells.assign(score=oriented(cells))
    for key, g in scored.groupby([*TRACK, "category"], sort=True):
        wide = g.pivot_table(index="metric", columns="method_label", values="score", aggfunc="first")
        wide = wide.dropna(axis=1).sort_index().sort_index(axis=1)
        m, k = wide.shape
        if m < 2:
            continue
        w = kendall_w(wide.to_numpy()) if k >= 2 else np.nan
        stat, p = friedman(block_rank_matrix(wide.to_numpy())) if k >= 2 else (np.nan, np.nan)
        out.append({**dict(zip([*TRACK, "category"], key, strict=True)), "metrics": m, "methods": k,
                    "w": w, "chi2": stat, "p": p})
    return pd.DataFrame(out, columns=CONCORDANCE_COLUMNS)


# -- cost -----------------------------------------------------------------------------------------
def _maps_per_job(jobs: pd.DataFrame, rows: pd.DataFrame) -> pd.Series:
    """Inputs each job explained: its ``samples`` (constant maps are explained, then left out), else
    the most values any of its metrics kept plus its constant maps."""
    if "samples" in jobs and jobs["samples"].notna().all():
        return jobs["samples"].astype(float)
    n = rows.groupby("job_id")["n"].max()
    constant = rows.groupby("job_id")["n_constant_maps"].max() if "n_constant_maps" in rows else 0
    return jobs["job_id"].map(n + constant).astype(float)


def _total(jobs: pd.DataFrame, column: str) -> float:
    """Σ of a timing column; NaN where it is not recorded (hand-made or pre-timing rows)."""
    return float(jobs[column].sum()) if column in jobs and jobs[column].notna().all() else float("nan")


def cost(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (track, method) over its ordinary jobs (``COST_COLUMNS``): maps explained, explain seconds,
    maps per second = Σ maps / Σ explain_seconds, passes per map = Σ explain_passes / Σ maps (a pass:
    one input row through the model), and the devices measured on ('; '-joined).

    A job's timing is repeated on each of its metric rows: each job counts once."""
    rows = with_training(ordinary_rows(rows))
    jobs = rows.sort_values(["job_id", "metric"]).drop_duplicates("job_id")
    jobs = jobs.assign(maps=_maps_per_job(jobs, rows).to_numpy())
    out = []
    for key, g in jobs.groupby([*TRACK, "method_label"], sort=True):
        maps, seconds = float(g["maps"].sum()), _total(g, "explain_seconds")
        passes = _total(g, "explain_passes")
        out.append({**dict(zip([*TRACK, "method_label"], key, strict=True)), "jobs": len(g), "maps": int(maps),
                    "explain_seconds": seconds, "maps_per_second": maps / seconds if seconds > 0 else np.nan,
                    "passes_per_map": passes / maps if maps > 0 and np.isfinite(passes) else np.nan,
                    "devices": "; ".join(sorted(g["device"].dropna().astype(str).unique()))
                    if "device" in g else ""})
    return pd.DataFrame(out, columns=COST_COLUMNS)


# -- flags for the board --------------------------------------------------------------------------
def metric_flags(react: pd.DataFrame, nr: pd.DataFrame, reference: str = REFERENCE) -> dict[tuple, list[str]]:
    """(track…, metric) → reasons it is unreliable on that track, sorted (for a ⚑ beside the metric)."""
    out: dict[tuple, list[str]] = {}
    control = next(iter(reactivity_controls(react)), "")
    for r in react[react["unreactive"]].itertuples(index=False):
        key = tuple(getattr(r, c) for c in [*TRACK, "metric"])
        out.setdefault(key, []).append(f"does not rank {reference} above {control} ({getattr(r, f'vs_{control}')})")
    for r in nr[nr["flagged"]].itertuples(index=False):
        key = tuple(getattr(r, c) for c in [*TRACK, "metric"])
        out.setdefault(key, []).append(f"noise resilience {r.nr:.2g} under {r.perturbation}")
    return {k: sorted(v) for k, v in sorted(out.items())}
