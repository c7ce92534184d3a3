"""Aggregate result rows into a ranked, citable board and render ``leaderboard.md``.

A *cell* is (suite, dataset, model, activation, method, metric): its value is the mean over jobs
(training seeds) of the per-job means, its 95% CI a seeded percentile bootstrap of that statistic
over the per-sample values (nested where a cell has several jobs: resample jobs, then samples within
each), and ``n`` the number of per-sample values. A *track* is (suite, dataset, model, activation).

Ranks are per (track, metric) and direction-aware; methods whose CI overlaps the best's share its
rank. Category rank = rank of the mean metric rank within a category; overall = mean of category
ranks. The rendered file depends only on the rows (its date is their latest ``created_at``), so
regenerating from the same results gives the same bytes.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from bench import registry
from bench.errors import ResultsError
from bench.metrics.base import CATEGORIES
from bench.run.results import digest, is_uri, load_rows, load_samples, write_file

TRACK = ["suite", "dataset", "model", "activation", "training"]  # training: '' or 'sf=N' (split factor)
CELL = [*TRACK, "method_label", "metric"]
SUBMISSIONS = "submissions"
BOOTSTRAP_CHUNK = 4_000_000  # resampled values held in memory at once


@dataclass(frozen=True)
class BoardConfig:
    version: str = "0.0.0"
    title: str = "GradBench leaderboard"
    url: str = ""
    bootstrap_resamples: int = 1000
    bootstrap_seed: int = 0
    confidence: float = 0.95
    suites: tuple[str, ...] = ("default",)  # what `bench leaderboard` shows when no suite is named


def load_board_config(path: Path | None = None) -> BoardConfig:
    path = path or registry.REGISTRY_DIR / "board.toml"
    if not path.exists():
        raise ResultsError(f"{path} is missing; it declares the board version (version = \"1.0.0\")")
    with path.open("rb") as f:
        spec = tomllib.load(f)
    known = set(BoardConfig.__dataclass_fields__)
    unknown = set(spec) - known
    if unknown:
        raise ResultsError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(known)}")
    if not re.fullmatch(r"\d+\.\d+\.\d+", str(spec.get("version", ""))):
        raise ResultsError(f"{path}: version must be semver MAJOR.MINOR.PATCH, got {spec.get('version')!r}")
    if "suites" in spec:
        spec["suites"] = tuple(spec["suites"])
    return BoardConfig(**spec)


# -- loading ------------------------------------------------------------------------------------
def result_roots(results: Path | str, suites: Sequence[str]) -> list[Path]:
    """``results/<suite>`` and every ``results/submissions/<name>/<suite>`` that exists."""
    results = Path(results)
    roots = []
    for s in suites:
        roots += [p for p in [results / s, *sorted((results / SUBMISSIONS).glob(f"*/{s}"))]
                  if p.is_dir() and not p.parent.name.startswith(".")]
    if not roots:
        raise ResultsError(f"no results for suite(s) {', '.join(suites)} under {results}; "
                           f"run 'bench run {suites[0] if suites else 'default'}' first")
    return roots


def load_submissions(results: Path | str) -> dict[str, dict]:
    """``submission.json`` of each submitted method: its source, parameters and citation."""
    out = {}
    for p in sorted((Path(results) / SUBMISSIONS).glob("*/submission.json")):
        record = json.loads(p.read_text(encoding="utf-8"))
        out[record.get("name", p.parent.name)] = record
    return out


# -- confidence intervals -----------------------------------------------------------------------
def bootstrap_ci(groups: Sequence[np.ndarray], resamples: int = 1000, seed: int | np.random.SeedSequence = 0,
                 confidence: float = 0.95) -> tuple[float, float]:
    """Percentile-bootstrap CI of the mean of group means.

    One group: the ordinary bootstrap of the mean (what ``scipy.stats.bootstrap(method="percentile")``
    computes). Several groups (training seeds): nested — each resample draws groups with replacement,
    then samples with replacement within each drawn group — so the CI carries both the seed-to-seed
    and the input-to-input variation. Vectorised: one index tensor per chunk of resamples.
    """
    groups = [np.asarray(g, dtype=np.float64).ravel() for g in groups]
    if not groups or any(len(g) == 0 for g in groups):
        raise ValueError("bootstrap_ci needs non-empty groups of per-sample values")
    rng = np.random.default_rng(seed)
    lengths = np.array([len(g) for g in groups])
    n_max, k = int(lengths.max()), len(groups)
    padded = np.zeros((k, n_max))
    for i, g in enumerate(groups):
        padded[i, : len(g)] = g
    stats = np.empty(resamples)
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
        stats[s : s + b] = ((values * valid).sum(-1) / lens).mean(-1)
    alpha = (1 - confidence) / 2
    low, high = np.percentile(stats, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def cell_seed(base: int, key: Sequence[object]) -> np.random.SeedSequence:
    """A seed per cell from its key: a cell's CI does not change when other cells are added."""
    h = hashlib.sha256(json.dumps([str(k) for k in key]).encode()).digest()
    return np.random.SeedSequence([base, int.from_bytes(h[:8], "little")])


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
    """One row per cell: value, CI ``low``/``high``, ``half`` (half-width), ``n``, ``jobs``, ``ci``.

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
            low, high = bootstrap_ci(groups, config.bootstrap_resamples,
                                     cell_seed(config.bootstrap_seed, key), config.confidence)
            method = "bootstrap"
        else:
            half = z * float(np.sqrt((g["stderr"].astype(float) ** 2).sum())) / len(g)
            low, high, method = value - half, value + half, "normal"
        out.append({**dict(zip(CELL, key, strict=True)), "direction": g["direction"].iloc[0],
                    "category": g["category"].iloc[0], "value": value, "low": low, "high": high,
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


def _min_rank(scores: pd.Series) -> pd.Series:
    return scores.round(9).rank(method="min").astype(int)


def category_ranks(ranked: pd.DataFrame) -> pd.DataFrame:
    """Per (track, method, category): ``score`` = mean metric rank, ``rank`` among the track's methods."""
    cat = ranked.groupby([*TRACK, "method_label", "category"], as_index=False)["rank"].mean()
    cat = cat.rename(columns={"rank": "score"})
    cat["rank"] = cat.groupby([*TRACK, "category"])["score"].transform(_min_rank)
    return cat


def overall_ranks(cat: pd.DataFrame) -> pd.DataFrame:
    """Per (track, method): ``overall`` = mean of its category ranks, ``rank`` by it (lower = better)."""
    over = cat.groupby([*TRACK, "method_label"], as_index=False)["rank"].mean().rename(columns={"rank": "overall"})
    over["rank"] = over.groupby(TRACK)["overall"].transform(_min_rank)
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


# -- Markdown -----------------------------------------------------------------------------------
def escape_md(text: object) -> str:
    """Make any string safe inside a Markdown table cell: no pipes, tags, code spans or newlines."""
    s = html.escape(str(text), quote=False).replace("\\", "&#92;")  # & < > first, then \ (no escapes)
    return (s.replace("|", "&#124;").replace("`", "&#96;").replace("\r", " ").replace("\n", " ")
            .replace("*", "\\*").replace("_", "\\_").replace("[", "\\[").replace("]", "\\]"))


def fence(text: str, lang: str = "") -> list[str]:
    """A fenced code block longer than any backtick run inside ``text``."""
    ticks = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    return [f"{ticks}{lang}", text, ticks]


def track_name(track: Sequence[object], with_suite: bool) -> str:
    suite, *rest = track
    return " · ".join(escape_md(x) for x in ([suite] if with_suite else []) + rest if x != "")


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _cell(r: pd.Series) -> str:
    ci = f" ± {r['half']:.2g}" if np.isfinite(r["half"]) else ""
    return f"{_fmt(r['value'])}{ci} ({r['rank']})"


def _arrow(direction: str) -> str:
    return "↑" if direction == "higher" else "↓"


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return [*lines, ""]


def sql_literal(text: object) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def cell_query(cell: Mapping[str, object], globs: Sequence[str]) -> str:
    """DuckDB SQL reproducing a cell's value from the Parquet rows (mean over jobs of job means)."""
    def cond(c: str) -> str:
        if c == "training":  # derived, not stored: match the split factor inside the canonical recipe JSON
            sf = int(str(cell[c])[3:]) if cell[c] else 1
            return f"model_recipe LIKE '%\"split_factor\":{sf},%'"
        return f"{c} = {sql_literal(cell[c])}"

    where = " AND ".join(cond(c) for c in CELL)
    return f"SELECT avg(value) FROM read_parquet([{', '.join(map(sql_literal, globs))}]) WHERE {where}"


def _shell_double_quoted(text: str) -> str:
    return '"' + re.sub(r'(["\\$`])', r"\\\1", text) + '"'


@dataclass(frozen=True)
class Board:
    """Everything the Markdown shows, computed once from the rows."""

    cells: pd.DataFrame  # aggregate + rank
    categories: pd.DataFrame
    overall: pd.DataFrame
    flags: dict[tuple, list[str]]


def build(rows: pd.DataFrame, samples: pd.DataFrame | None = None, config: BoardConfig | None = None,
          sanity: Mapping[str, Mapping[str, float]] | None = None) -> Board:
    cells = rank(aggregate(rows, samples, config))
    cat = category_ranks(cells)
    return Board(cells, cat, overall_ranks(cat), sanity_failures(cells, sanity or {}))


def render(rows: pd.DataFrame, suites: Sequence[str], command: str, *, samples: pd.DataFrame | None = None,
           config: BoardConfig | None = None, sanity: Mapping[str, Mapping[str, float]] | None = None,
           plots: Sequence[tuple[str, str]] = (), globs: Sequence[str] = (),
           method_citations: Mapping[str, str] | None = None) -> str:
    """The board as Markdown. ``plots``: (title, path relative to the board); ``globs``: the Parquet
    row files (as the reader will type them) for the DuckDB example."""
    rows = with_training(rows)
    config = config or BoardConfig()
    board = build(rows, samples, config, sanity)
    cells, over = board.cells, board.overall
    with_suite = rows["suite"].nunique() > 1
    tracks = sorted(over.groupby(TRACK).groups)
    bootstrap_share = (cells["ci"] == "bootstrap").mean()

    lines = [f"# {escape_md(config.title)}", "", "<!-- generated by GradBench; never edit by hand -->", ""]
    lines += _header(rows, suites, config)
    lines += ["Regenerate this file (byte for byte, from the same results):", "", *fence(command, "sh"), ""]

    lines += ["## Summary", "", "Overall score per track = mean of the method's category ranks (lower is better); "
              "the summary ranks methods by the mean over the tracks they ran on. "
              "⚠ = failed a randomisation sanity check (see the legend).", ""]
    lines += _summary(board, tracks, with_suite)

    for track in tracks:
        lines += _track_section(rows, board, track, with_suite)

    if plots:
        lines += ["## Plots", ""]
        for title, path in plots:
            lines += [f"### {escape_md(title)}", "", f"![{escape_md(title)}]({quote(path)})", ""]

    lines += _legend(cells, config, sanity or {}, bootstrap_share, globs, method_citations or {})
    return "\n".join(lines).rstrip("\n") + "\n"


def _header(rows: pd.DataFrame, suites: Sequence[str], config: BoardConfig) -> list[str]:
    created = str(rows["created_at"].max()) if "created_at" in rows and rows["created_at"].notna().any() else "unknown"
    versions = sorted({str(v) for v in rows.get("bench_version", pd.Series(dtype=str)).dropna() if v}) or ["unknown"]
    commits = sorted({str(v) for v in rows.get("git_commit", pd.Series(dtype=str)).dropna() if v}) or ["unknown"]
    return [
        f"- Board version: **{escape_md(config.version)}**",
        f"- Results digest: `sha256:{digest(rows)}`",
        f"- Date: {escape_md(created)} (the latest result's timestamp)",
        f"- GradBench: {', '.join(map(escape_md, versions))}; commit {', '.join(map(escape_md, commits))}",
        f"- Suites: {', '.join(escape_md(s) for s in suites)}; jobs: {rows['job_id'].nunique()}; "
        f"result rows: {len(rows)}",
        "",
    ]


def _method_name(method: str, flagged: bool) -> str:
    return escape_md(method) + (" ⚠" if flagged else "")


def _summary(board: Board, tracks: list[tuple], with_suite: bool) -> list[str]:
    over = board.overall
    wide = over.pivot_table(index="method_label", columns=TRACK, values="overall", aggfunc="first")
    mean = wide.mean(axis=1)
    order = sorted(wide.index, key=lambda m: (round(mean[m], 9), m))
    ranks = _min_rank(mean)
    flagged = {key[-1] for key in board.flags}
    header = ["rank", "method", "mean overall", *(track_name(t, with_suite) for t in tracks)]
    body = []
    for m in order:
        per = [f"{wide.loc[m, t]:.2f}" if t in wide.columns and pd.notna(wide.loc[m, t]) else "–" for t in tracks]
        body.append([str(ranks[m]), _method_name(m, m in flagged), f"{mean[m]:.2f}", *per])
    return _table(header, body)


def _track_section(rows: pd.DataFrame, board: Board, track: tuple, with_suite: bool) -> list[str]:
    cells, cat, over, part = (_in_track(t, track) for t in (board.cells, board.categories, board.overall, rows))
    metrics = sorted(cells["metric"].unique(), key=lambda m: (_category_order(cells, m), m))
    categories = [c for c in [*CATEGORIES, *sorted(set(cat["category"]) - set(CATEGORIES))]
                  if c in set(cat["category"])]
    directions = cells.groupby("metric")["direction"].first()
    acc = part["model_test_accuracy"].mean() if "model_test_accuracy" in part else float("nan")
    seeds = sorted(part["model_seed"].unique()) if "model_seed" in part else []

    lines = [f"## {track_name(track, with_suite)}", "",
             f"Model test accuracy {acc:.3f} (mean over training seeds: {', '.join(map(str, seeds))}); "
             f"n = per-sample values per cell (inputs × training seeds).", ""]
    header = ["method", "overall", *(f"{escape_md(c)} rank" for c in categories),
              *(f"{escape_md(m)} {_arrow(directions[m])}" for m in metrics), "n"]
    body = []
    for o in over.sort_values(["overall", "method_label"]).itertuples(index=False):
        mine = cells[cells["method_label"] == o.method_label].set_index("metric")
        my_cat = cat[cat["method_label"] == o.method_label].set_index("category")["rank"]
        ns = sorted(set(mine["n"]))
        flagged = (*track, o.method_label) in board.flags
        body.append([_method_name(o.method_label, flagged), f"{o.overall:.2f} ({o.rank})",
                     *(str(my_cat[c]) if c in my_cat else "–" for c in categories),
                     *(_cell(mine.loc[m]) if m in mine.index else "–" for m in metrics),
                     "/".join(map(str, ns))])
    lines += _table(header, body)
    reasons = [(key[-1], why) for key, why in sorted(board.flags.items()) if key[:-1] == tuple(track)]
    for method, why in reasons:
        lines.append(f"⚠ {escape_md(method)}: {escape_md('; '.join(why))}")
    return lines + ([""] if reasons else [])


def _in_track(table: pd.DataFrame, track: Sequence[object]) -> pd.DataFrame:
    return table[np.logical_and.reduce([table[c] == v for c, v in zip(TRACK, track, strict=True)])]


def _category_order(cells: pd.DataFrame, metric: str) -> int:
    c = cells.loc[cells["metric"] == metric, "category"].iloc[0]
    return CATEGORIES.index(c) if c in CATEGORIES else len(CATEGORIES)


def _legend(cells: pd.DataFrame, config: BoardConfig, sanity: Mapping[str, Mapping[str, float]],
            bootstrap_share: float, globs: Sequence[str], method_citations: Mapping[str, str]) -> list[str]:
    level = f"{100 * config.confidence:g}%"
    lines = ["## Legend", "",
             f"- Cell: mean ± half-width of the {level} confidence interval (rank). The mean is over training "
             "seeds of the per-job mean over test inputs.",
             f"- CI: percentile bootstrap, {config.bootstrap_resamples} resamples, seeded per cell (base seed "
             f"{config.bootstrap_seed}); with several training seeds it is nested: seeds are resampled, then "
             "inputs within each seed."
             + ("" if bootstrap_share == 1 else " Cells without per-sample values use mean ± z·stderr (normal "
                "approximation)."),
             f"- Rank (per metric, ↑ higher / ↓ lower is better): the best mean leads; every method whose {level} "
             "CI overlaps the leader's shares its rank; the next best remaining method leads the next group; "
             "ranks skip by group size (1, 1, 3, …).",
             "- Category rank: methods ranked by their mean metric rank within the category. Overall: mean of "
             "the category ranks (lower is better).",
             ]
    rules = sorted({f"{k.rsplit('_', 1)[0]} {'≤' if k.endswith('_max') else '≥'} {v:g}"
                    for s in sanity.values() for k, v in s.items()})
    lines.append("- ⚠ Randomisation sanity check: " + (
        f"a method is marked when it breaks a suite's [sanity] bound ({escape_md(', '.join(rules))}): its map "
        "survives weight randomisation, so it explains little about the model."
        if rules else "no [sanity] bounds declared by the suites shown."))
    lines.append("")

    lines += ["### Metrics", ""]
    body = []
    for m, g in cells.groupby("metric", sort=True):
        entry = registry.metrics.get(m) if m in registry.metrics else None
        body.append([escape_md(m), f"{_arrow(g['direction'].iloc[0])} {escape_md(g['direction'].iloc[0])}",
                     escape_md(g["category"].iloc[0]), escape_md(entry.description if entry else ""),
                     escape_md(entry.citation if entry else "")])
    lines += _table(["metric", "direction", "category", "description", "citation"], body)

    lines += ["### Methods", ""]
    body = []
    for m, g in cells.groupby("method_label", sort=True):
        base = g["method_label"].iloc[0]
        name = base.split("(", 1)[0]
        cite = method_citations.get(name) or (registry.methods.get(name).citation if name in registry.methods else "")
        body.append([escape_md(m), escape_md(cite)])
    lines += _table(["method", "citation"], body)

    if globs and len(cells):
        first = cells.sort_values(CELL).iloc[0]
        sql = cell_query(first, globs)
        lines += ["### Reproduce a cell", "",
                  f"The mean of any cell is one DuckDB query over the Parquet rows; e.g. the "
                  f"{escape_md(first['method_label'])} / {escape_md(first['metric'])} cell of "
                  f"{track_name([first[c] for c in TRACK], True)} ({_fmt(first['value'])}):", "",
                  *fence(f"duckdb -c {_shell_double_quoted(sql)}", "sh"), ""]
    return lines


def board_globs(results: Path | str, suites: Sequence[str], board_dir: Path | str = ".") -> list[str]:
    """The row-file globs of the suites, relative to the board's folder (as a reader would run them)."""
    results = Path(os.path.relpath(Path(results).resolve(), Path(board_dir).resolve()))
    out = []
    for s in suites:
        if (Path(board_dir) / results / s).is_dir():
            out.append((results / s / "*.parquet").as_posix())
        if any((Path(board_dir) / results / SUBMISSIONS).glob(f"*/{s}")):
            out.append((results / SUBMISSIONS / "*" / s / "*.parquet").as_posix())
    return out


def suite_sanity(suites: Sequence[str]) -> dict[str, dict[str, float]]:
    """``[sanity]`` thresholds of the named suites that resolve (a results-only suite has none)."""
    from bench.errors import GradBenchError
    from bench.suite import load_suite

    out = {}
    for s in suites:
        try:
            out[s] = dict(load_suite(s).sanity)
        except GradBenchError:
            out[s] = {}
    return out


def leaderboard_command(suites: Sequence[str], results: Path | str, out: Path | str, plots: bool = True) -> str:
    """The canonical command line that regenerates the board (written into it, so it must not vary)."""
    import shlex

    parts = ["bench", "leaderboard", *suites, "--results", str(results), "--out", str(out)]
    return " ".join(shlex.quote(p) for p in parts) + ("" if plots else " --no-plots")


def write_board(results: Path | str, suites: Sequence[str], out: Path | str = "leaderboard.md", *,
                plots: bool = True, saliency: bool = True,
                sanity: Mapping[str, Mapping[str, float]] | None = None) -> tuple[Path, pd.DataFrame, list[str]]:
    """Load rows (submissions included), draw the plots, render and atomically write the board.

    Returns the board path, the rows it shows and notes on skipped plots."""
    if is_uri(results):
        raise ResultsError(f"bench leaderboard renders from a local results folder, not {results}: copy it "
                           f"down first (e.g. 'aws s3 sync {results} results') and pass --results results")
    out = Path(out)
    roots = result_roots(results, suites)
    rows, samples = load_rows(*roots), load_samples(*roots)
    links, notes = [], []
    if plots:
        from bench.plots import make_plots

        made, notes = make_plots(rows, roots, Path(results) / "plots", saliency=saliency)
        links = [(t, Path(os.path.relpath(p.resolve(), out.resolve().parent)).as_posix()) for t, p in made]
    citations = {n: r.get("citation", "") for n, r in load_submissions(results).items()}
    text = render(rows, suites, leaderboard_command(suites, results, out, plots), samples=samples,
                  config=load_board_config(), sanity=sanity if sanity is not None else suite_sanity(suites),
                  plots=links, globs=board_globs(results, suites, out.resolve().parent),
                  method_citations=citations)
    write_file(out, text.encode("utf-8"))
    return out, rows, notes


def bibtex(rows: pd.DataFrame, suites: Sequence[str], config: BoardConfig | None = None) -> str:
    """A BibTeX entry naming the board version and the results digest."""
    config = config or load_board_config()
    date = str(rows["created_at"].max()) if "created_at" in rows else ""
    year = date[:4] if re.match(r"\d{4}", date) else "n.d."
    key = f"gradbench_board_{config.version.replace('.', '_')}"

    def braced(s: str) -> str:  # BibTeX has no escaping for unbalanced braces: drop them
        return s.replace("{", "").replace("}", "")

    fields = {
        "title": f"{{{braced(config.title)}}}, version {braced(config.version)}",
        "author": "{The GradBench contributors}",
        "year": year,
        "version": braced(config.version),
        "howpublished": braced(config.url),
        "note": braced(f"Suites: {', '.join(suites)}; results digest sha256:{digest(rows)}; "
                       f"latest result {date}"),
    }
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields.items() if v)
    return f"@misc{{{key},\n{body}\n}}\n"
