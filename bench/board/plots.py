"""Figures linked from the board: each is drawn only when its data exists in the results.

- EF vs β: the ``ef`` metric over the ``softplus:β`` activations of a (suite, dataset, model);
- agreement vs split factor: agreement-category metrics over the split factor of their models;
- stability / fidelity vs σ: over the smoothing σ (or α) of a method's parameter grid;
- radial power spectra: from ``results/<suite>/_spectra/``;
- a saliency grid per track: maps recomputed via the registry for a few inputs, from cached models only
  (a plot never trains a model).
"""

from __future__ import annotations

import functools
import json
import math
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from bench.board.stats import TRACK as BOARD_TRACK  # noqa: E402

# A figure spans the board's trainings: the split factor is an axis of the agreement plot, and a
# saliency grid shows one model per (suite, dataset, model, activation).
TRACK = [c for c in BOARD_TRACK if c != "training"]
PNG_METADATA = {"Software": None}  # no version string: the same data gives the same bytes
# Okabe & Ito's colour-blind-safe qualitative palette (yellow last: weakest on white); past eight
# methods the line style changes too, so no two curves of a figure look alike.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
LINESTYLES = ("-", "--", ":", "-.")
Z95 = 1.959963984540054  # the normal 97.5% quantile: the bands are 95% CIs


CONTROL_GREYS = ("#555555", "#999999")  # controls are references on the board: grey, dashed, unmarked


def style(i: int) -> dict[str, object]:
    """The i-th competitor's colour, line style and marker (methods are drawn in name order, so a
    method keeps its look across a figure's panels)."""
    return {"color": PALETTE[i % len(PALETTE)], "linestyle": LINESTYLES[(i // len(PALETTE)) % len(LINESTYLES)],
            "marker": "o", "markersize": 3.5, "linewidth": 1.4}


def styles(g: pd.DataFrame, key: str = "method_label") -> dict[str, dict[str, object]]:
    """Each ``key`` value of ``g`` → its curve's style: competitors take the palette in name order,
    controls (``references.control_kind`` of the row's method) grey dashed lines."""
    from bench.board.references import control_kind

    kinds = {k: control_kind(str(m)) for k, m in g[[key, "method" if "method" in g else key]]
             .drop_duplicates(key).itertuples(index=False)}
    out, i, j = {}, 0, 0
    for k in sorted(kinds):
        if kinds[k]:
            out[k] = {"color": CONTROL_GREYS[j % len(CONTROL_GREYS)], "linestyle": "--", "marker": None,
                      "linewidth": 1.1}
            j += 1
        else:
            out[k], i = style(i), i + 1
    return out


def curve_with_ci(ax, g: pd.DataFrame, x: str, label: str, look: dict[str, object]):
    """Mean over jobs of ``value`` per ``x`` with its 95% CI band (mean ± z·SE, the jobs' standard
    errors combined as independent: SE = √ΣSE²/n); the line drawn."""
    se = g["stderr"].fillna(0.0) if "stderr" in g else pd.Series(0.0, index=g.index)
    stats = g.assign(se2=se**2).groupby(x).agg(mean=("value", "mean"), se2=("se2", "sum"), n=("value", "size"))
    half = Z95 * np.sqrt(stats["se2"]) / stats["n"]
    line, = ax.plot(stats.index, stats["mean"], label=label, **look)
    if (half > 0).any():
        ax.fill_between(stats.index, stats["mean"] - half, stats["mean"] + half, color=line.get_color(), alpha=0.18,
                        linewidth=0)
    return line


def slug(*parts: object) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "_".join(map(str, parts))).strip("-") or "plot"


def save_figure(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata=PNG_METADATA)
    plt.close(fig)
    return path


def _beta(activation: str) -> float | None:
    m = re.fullmatch(r"softplus:([0-9.eE+-]+)", str(activation))
    return float(m.group(1)) if m else None


def ef_vs_beta(rows: pd.DataFrame, out_dir: Path) -> list[tuple[str, Path]]:
    ef = rows[rows["metric"] == "ef"].assign(beta=lambda d: d["activation"].map(_beta))
    out = []
    for (suite, dataset, model), g in ef.groupby(["suite", "dataset", "model"], sort=True):
        sp = g[g["beta"].notna()]
        if sp.empty:
            continue
        fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
        looks = styles(sp)
        for method, m in sp.groupby("method_label", sort=True):
            line = curve_with_ci(ax, m, "beta", method, looks[method])
            relu = g[(g["method_label"] == method) & (g["activation"] == "relu")]["value"]
            if len(relu):
                ax.axhline(relu.mean(), ls=(0, (1, 2)), lw=0.9, color=line.get_color())
        ax.set(xscale="log", xlabel="SoftPlus β (dimensionless, log scale; dotted: ReLU)",
               ylabel="EF (dimensionless; lower = simpler)",
               title=f"EF vs β — {dataset} · {model} (bands: 95% CI)")
        ax.legend(fontsize=7)
        title = f"EF vs β: {dataset} · {model} ({suite})"
        out.append((title, save_figure(fig, out_dir / f"{slug('ef_vs_beta', suite, dataset, model)}.png")))
    return out


def _json_field(text: object, key: str) -> object:
    try:
        return json.loads(text).get(key)
    except (TypeError, ValueError, AttributeError):
        return None


def _agreement_unit(metric: str) -> str:
    """The y label of an agreement metric: what its number is, in what unit."""
    if metric.endswith("_l2"):
        return "L2 distance (map units; lower = closer)"
    if metric.endswith("_corr"):
        return "Spearman ρ (−1 … 1)"
    return "fraction (0 … 1)"


def _same_for_every_method(g: pd.DataFrame) -> bool:
    """Whether every method has the same value on every model (a metric of the models' predictions, such
    as split_prediction_agreement): drawn per method, their bands would only stack on one another."""
    return g["method_label"].nunique() > 1 and bool((g.groupby("model_hash")["value"].nunique() == 1).all())


def agreement_vs_split(rows: pd.DataFrame, out_dir: Path) -> list[tuple[str, Path]]:
    agr = rows[rows["category"] == "agreement"].copy()
    if agr.empty:
        return []
    from_metric = agr["metric_params"].map(lambda s: _json_field(s, "split_factor"))
    from_model = agr["model_recipe"].map(lambda s: _json_field(s, "split_factor"))
    agr["sf"] = pd.to_numeric(from_metric.where(from_metric.notna(), from_model), errors="coerce")
    agr = agr[agr["sf"].notna()]
    out = []
    for (suite, dataset, model, act), g in agr.groupby(TRACK, sort=True):
        if g["sf"].nunique() < 2:
            continue
        metrics = sorted(g["metric"].unique())
        fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.6), squeeze=False,
                                 layout="constrained")
        looks = styles(g)
        for ax, metric in zip(axes[0], metrics, strict=True):
            of_metric = g[g["metric"] == metric]
            if _same_for_every_method(of_metric):  # the models' predictions: one curve, not n stacked bands
                curve_with_ci(ax, of_metric.drop_duplicates(["sf", "model_hash"]), "sf", "every method (the models')",
                              {"color": "black", "marker": "o", "markersize": 3.5, "linewidth": 1.4})
                ax.legend(fontsize=7)
            else:
                for method, m in of_metric.groupby("method_label", sort=True):
                    curve_with_ci(ax, m, "sf", method, looks[method])
            ax.set(xscale="log", ylabel=_agreement_unit(metric), title=metric)
        fig.supxlabel("split factor sf (each model trains on 1/sf of the data; log scale); bands: 95% CI")
        axes[0][0].legend(fontsize=7)
        title = f"Agreement vs split factor: {dataset} · {model} · {act} ({suite})"
        out.append((title, save_figure(fig, out_dir / f"{slug('agreement_vs_sf', suite, dataset, model, act)}.png")))
    return out


@functools.lru_cache(maxsize=256)
def _relative_sigma(dataset: str, dataset_params: str, method: str, method_params: str) -> float | None:
    """The method's own declared input noise (``Method.input_noise``), as mean σ over the mean input
    range on the dataset's test inputs (α for SmoothGrad); None for a method that adds no input noise."""
    from bench.data import load_dataset
    from bench.methods import create_method

    data = load_dataset(dataset, **json.loads(dataset_params or "{}"))
    x = data.x_test[:64]
    sigma = create_method(method, **json.loads(method_params or "{}")).input_noise(x, (data.x_min, data.x_max))
    if sigma is None:
        return None
    return float(sigma.expand_as(x).mean() / (data.x_max - data.x_min).mean())


def metric_vs_sigma(rows: pd.DataFrame, out_dir: Path, metrics: Sequence[str] = ("stability", "fidelity")
                    ) -> list[tuple[str, Path]]:
    sel = rows[rows["metric"].isin(metrics)].copy()
    if sel.empty:
        return []
    sel["sigma"] = [_relative_sigma(*key) for key in
                    sel[["dataset", "dataset_params", "method", "method_params"]].itertuples(index=False)]
    sel = sel[sel["sigma"].notna()]
    out = []
    for (suite, dataset, model, act), g in sel.groupby(TRACK, sort=True):
        if g.groupby("method")["sigma"].nunique().max() < 2:
            continue
        present = [m for m in metrics if m in set(g["metric"])]
        fig, axes = plt.subplots(1, len(present), figsize=(4.5 * len(present), 3.6), squeeze=False,
                                 layout="constrained")
        looks = styles(g, "method")
        for ax, metric in zip(axes[0], present, strict=True):
            for method, m in g[g["metric"] == metric].groupby("method", sort=True):
                curve_with_ci(ax, m, "sigma", method, looks[method])
            ax.set(xlabel="input noise σ (fraction of the input range, α)",
                   ylabel="L2 distance of maps (map units)", title=f"{metric} (lower = better; bands: 95% CI)")
        axes[0][0].legend(fontsize=7)
        title = f"Stability / fidelity vs σ: {dataset} · {model} · {act} ({suite})"
        out.append((title, save_figure(fig, out_dir / f"{slug('sigma', suite, dataset, model, act)}.png")))
    return out


def load_spectra(roots: Sequence[Path]) -> pd.DataFrame:
    frames = [pq.read_table(f).to_pandas() for r in roots for f in sorted((Path(r) / "_spectra").glob("*.parquet"))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def power_spectra(rows: pd.DataFrame, spectra: pd.DataFrame, out_dir: Path) -> list[tuple[str, Path]]:
    if spectra.empty:
        return []
    jobs = rows.drop_duplicates("job_id")[["job_id", *TRACK, "method_label", *(["method"] if "method" in rows else [])]]
    data = spectra.merge(jobs, on="job_id")
    out = []
    for (suite, dataset, model, act), g in data.groupby(TRACK, sort=True):
        fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
        looks = styles(g)
        for method, m in g.groupby("method_label", sort=True):
            curve = m.groupby("frequency")["power"].mean()
            ax.plot(curve.index, curve.values / curve.values.sum(), label=method, **{**looks[method], "marker": None})
        ax.set(yscale="log", xlabel="radial frequency (fraction of the highest)",
               ylabel="power (fraction of the total; log scale)",
               title=f"Radial power spectra — {dataset} · {model} · {act}")
        ax.legend(fontsize=7)
        title = f"Radial power spectra: {dataset} · {model} · {act} ({suite})"
        out.append((title, save_figure(fig, out_dir / f"{slug('spectra', suite, dataset, model, act)}.png")))
    return out


RECORDED = {"model_accuracy": "accuracy", "model_epochs": "epochs", "model_test_accuracy": "test_accuracy"}


def _results_model(first: pd.Series):
    """The cached model the results were computed with (a ``TrainedModel``), or None and why not.

    The cache is keyed by the recipe, not the weights, and CPU training is not bitwise reproducible
    across thread counts (the reduction order of a kernel follows its threads): a model trained on a
    machine with other cores has the recipe's hash and other weights — measured: 1 thread instead of 2
    moves a cnn-small's weights by up to 0.057 and its saliency grid by up to 87/255 — while the
    published rows, computed once, do not move. The accuracies the rows record tell the models apart.
    """
    from bench.models.build import recipe_from_json, trained_model
    from bench.models.train import checkpoint_path

    recipe = recipe_from_json(first["model_recipe"])
    if not checkpoint_path(recipe).exists():
        return None, f"model {recipe.hash} not cached (bench train SUITE)"
    trained = trained_model(recipe, "cpu", progress=False)
    differ = [f"{col[6:]} {getattr(trained, attr):.6g} here, {float(first[col]):.6g} in the results"
              for col, attr in RECORDED.items() if col in first and pd.notna(first[col])
              and not math.isclose(getattr(trained, attr), float(first[col]), rel_tol=1e-9, abs_tol=1e-12)]
    if differ:
        return None, (f"cached model {recipe.hash} is not the one the results were computed with "
                      f"({', '.join(differ)}; trained on another machine or thread count: rerun the suite to use it)")
    return trained, ""


def map_colourbar(fig, axes) -> None:
    """The saliency grids' colour bar: each map is drawn on its own symmetric scale (±max |value|, so
    sign and relative size read alike across methods whose maps differ by orders of magnitude); the
    bar says so."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    bar = fig.colorbar(ScalarMappable(Normalize(-1.0, 1.0), "bwr"), ax=axes, shrink=0.8, ticks=[-1, 0, 1])
    bar.set_label("attribution / max |attribution| of its map", fontsize=7)
    bar.ax.tick_params(labelsize=7)


def saliency_grids(rows: pd.DataFrame, out_dir: Path, inputs: int = 4) -> tuple[list[tuple[str, Path]], list[str]]:
    """One grid per track (inputs × methods), drawn only from the model the track's results came from;
    other tracks keep the grid drawn earlier (or are skipped) with a note."""
    import torch

    from bench import registry
    from bench.methods import create_method
    from bench.models.build import recipe_data, scored_model

    out, notes = [], []
    for (suite, dataset, model, act), g in rows.groupby(TRACK, sort=True):
        first = g.sort_values(["model_seed", "job_id"]).iloc[0]
        title = f"Saliency maps: {dataset} · {model} · {act} ({suite})"
        path = out_dir / f"{slug('saliency', suite, dataset, model, act)}.png"
        jobs = g[g["model_hash"] == first["model_hash"]].drop_duplicates("method_label").sort_values("method_label")
        jobs = jobs[jobs["method"].map(lambda m: m in registry.methods)]
        trained, why = _results_model(first)
        if trained is None:
            # Keep a grid drawn earlier: the board must not depend on what this machine has cached.
            if path.exists():
                out.append((title, path))
            notes.append(f"saliency grid of {dataset} · {model} · {act}: {why}, "
                         f"{'kept the existing grid' if path.exists() else 'skipped'}")
            continue
        if jobs.empty:
            continue
        recipe = trained.recipe
        data = recipe_data(recipe)
        net = trained.model
        x, y = data.x_test[:inputs], data.y_test[:inputs]
        x_range = (data.x_min, data.x_max)
        images = (x * torch.tensor(data.std).view(1, -1, 1, 1) + torch.tensor(data.mean).view(1, -1, 1, 1)).clamp(0, 1)
        fig, axes = plt.subplots(len(x), 1 + len(jobs), figsize=(1.6 * (1 + len(jobs)), 1.6 * len(x)),
                                 squeeze=False)
        for i in range(len(x)):
            img = images[i].permute(1, 2, 0).numpy()
            axes[i][0].imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray")
        axes[0][0].set_title("input", fontsize=7)
        for j, job in enumerate(jobs.itertuples(index=False), start=1):
            scored = scored_model(net, job.output)
            target = scored(x).argmax(1) if job.target == "predicted" else y
            method = create_method(job.method, **json.loads(job.method_params))
            gen = torch.Generator().manual_seed(int(job.seed))
            maps = method(scored, x, target, x_range=x_range, generator=gen).detach().sum(1).numpy()
            for i in range(len(x)):
                lim = float(np.abs(maps[i]).max()) or 1.0
                axes[i][j].imshow(maps[i], cmap="bwr", vmin=-lim, vmax=lim)
            axes[0][j].set_title(column_title(job.method_label), fontsize=7)
        for ax in axes.ravel():
            ax.set_axis_off()
        map_colourbar(fig, axes[:, 1:])
        out.append((title, save_figure(fig, path)))
    return out, notes


def column_title(label: str, width: int = 16) -> str:
    """A method label as a grid column's title: its name, then its parameters wrapped at ``width``
    characters (columns are 1.6 inches wide; one-line labels ran into their neighbours)."""
    name, paren, params = label.partition("(")
    return "\n".join([name, *(textwrap.wrap(paren + params, width) if paren else [])])


def make_plots(rows: pd.DataFrame, roots: Sequence[Path], out_dir: Path | str, saliency: bool = True
               ) -> tuple[list[tuple[str, Path]], list[str]]:
    """Every plot whose data exists: (title, path) pairs and notes on what was skipped."""
    out_dir = Path(out_dir)
    for col in ("method_params", "metric_params", "model_recipe", "dataset_params"):  # hand-made or older tables
        if col not in rows:
            rows = rows.assign(**{col: "{}"})
    plots = ef_vs_beta(rows, out_dir) + agreement_vs_split(rows, out_dir) + metric_vs_sigma(rows, out_dir)
    plots += power_spectra(rows, load_spectra(roots), out_dir)
    notes: list[str] = []
    if saliency:
        grids, notes = saliency_grids(rows, out_dir)
        plots += grids
    return plots, notes
