"""The board's content as ``Document`` pages built from one computed ``Board``: the front (``front``), one
page per suite (its summary, tracks, reliability, plots, legend, a DuckDB example) and, for the static
site, one per method and per metric (``profiles``). ``markdown`` and ``html`` write each page; neither
recomputes, and ``site`` says where each page lives and how they link.

The content depends only on the rows (its date is their latest ``created_at``, never the wall clock), so
regenerating from the same results gives the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from bench import registry
from bench.board.compute import Board, compute_board
from bench.board.config import BoardConfig
from bench.board.document import (
    Anchors,
    BulletList,
    Cell,
    Code,
    Column,
    Document,
    Field,
    Image,
    Line,
    Paragraph,
    Section,
    Span,
    Table,
)
from bench.board.front import FRONT, front_document, header
from bench.board.markdown import to_markdown
from bench.board.references import BELOW_BAR
from bench.board.sections import reliability_sections, suite_sections, track_title
from bench.board.stats import CELL, TRACK, with_training
from bench.board.tracks import arrow, fmt, track_section


@dataclass
class Site:
    """The board's pages by key (``FRONT`` first, then each suite's, then ``html_only`` ones: pages the
    static site has and the Markdown does not)."""
    pages: dict[str, Document]
    html_only: set[str] = field(default_factory=set)


def page_keys(names: Sequence[str], prefix: str = "") -> dict[str, str]:
    """Name → a page key usable as a file name (``prefix`` + a slug; unique, never the front's)."""
    ids = Anchors()
    ids.taken.add(FRONT)
    return {n: prefix + ids.new(n) for n in sorted(set(names))}


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


def render(rows: pd.DataFrame, suites: Sequence[str], command: str, **kwargs: object) -> str:
    """Every Markdown page of the board (front, then each suite's) as one text, for tools and tests;
    arguments as :func:`board_site`."""
    site = board_site(rows, suites, command, **kwargs)
    return "\n".join(to_markdown(doc) for key, doc in site.pages.items() if key not in site.html_only)


def board_site(rows: pd.DataFrame, suites: Sequence[str], command: str, *, samples: pd.DataFrame | None = None,
               config: BoardConfig | None = None, sanity: Mapping[str, Mapping[str, float]] | None = None,
               plots: Sequence[tuple[str, str]] = (), globs: Sequence[str] = (),
               method_citations: Mapping[str, str] | None = None, board: Board | None = None,
               cd_images: Mapping[str, str] | None = None, profiles: bool = False) -> Site:
    """The board's pages, for either serialiser. ``plots``: (title, path relative to the Markdown
    front); ``globs``: the Parquet row files (as the reader will type them) for the DuckDB example;
    ``board``: the computed board if the caller has it (else computed here); ``cd_images``: suite → its
    critical-difference diagram (path relative to the Markdown front); ``profiles``: add the static
    site's page per method and per metric."""
    rows = with_training(rows)
    config = config or BoardConfig()
    board = board or compute_board(rows, samples, config, sanity)
    shown = sorted(set(board.cells["suite"]))
    suite_keys = page_keys(shown)
    method_keys = page_keys(board.cells["method_label"], "method/") if profiles else {}
    metric_keys = page_keys(board.cells["metric"], "metric/") if profiles else {}
    pages = {FRONT: front_document(rows, board, suites, command, config, suite_keys, method_keys)}
    for suite in shown:
        pages[suite_keys[suite]] = _suite_document(
            rows, board, suite, command, config, sanity or {}, plots, globs, method_citations or {},
            (cd_images or {}).get(suite), method_keys, metric_keys)
    site = Site(pages)
    if profiles:
        from bench.board.profiles import method_pages, metric_pages

        extra = {**method_pages(rows, board, command, config, method_keys, suite_keys, plots),
                 **metric_pages(board, command, config, metric_keys, suite_keys, method_keys)}
        site.pages.update(extra)
        site.html_only = set(extra)
    return site


def _suite_document(rows: pd.DataFrame, board: Board, suite: str, command: str, config: BoardConfig,
                    sanity: Mapping[str, Mapping[str, float]], plots: Sequence[tuple[str, str]],
                    globs: Sequence[str], method_citations: Mapping[str, str], cd_image: str | None,
                    method_keys: Mapping[str, str], metric_keys: Mapping[str, str]) -> Document:
    """A suite's page: its summary in full (tests, ties, CD diagram), its tracks, its metrics'
    reliability, its plots and the legend of what it shows."""
    ids = Anchors()
    mine = rows[rows["suite"] == suite]
    cells = board.cells[board.cells["suite"] == suite]
    sections = suite_sections(board, {suite: cd_image} if cd_image else {}, ids, only=suite)
    sections += [track_section(rows, board, t, False, ids, config, method_keys)
                 for t in sorted(board.overall[board.overall["suite"] == suite].groupby(TRACK).groups)]
    sections += reliability_sections(board, False, ids, suite=suite)
    shown = [(t, p) for t, p in plots if _plot_suite(t, rows) == suite]
    if shown:
        sections.append(Section(ids.new("plots"), "Plots", 2))
        sections += [Section(ids.new("plot", t), t, 3, [Image(t, p)]) for t, p in shown]
    sections += _legend(cells, config, {suite: sanity.get(suite, {})} if suite in sanity else {},
                        float((cells["ci"] == "bootstrap").mean()) if len(cells) else 1.0, globs,
                        method_citations, ids, board.controls, method_keys, metric_keys)
    front = Field("Front", (Span("all suites at a glance", "link", FRONT),))
    return Document(f"{config.title}: {suite}", [front, *header(mine, [suite], config)], command, sections)


def _plot_suite(title: str, rows: pd.DataFrame) -> str | None:
    """Every plot's title ends with "(suite)" (bench.board.plots): a suite page shows its own."""
    return next((s for s in sorted(rows["suite"].unique(), key=len, reverse=True)
                 if title.endswith(f"({s})")), None)


def _legend(cells: pd.DataFrame, config: BoardConfig, sanity: Mapping[str, Mapping[str, float]],
            bootstrap_share: float, globs: Sequence[str], method_citations: Mapping[str, str],
            ids: Anchors, controls: Sequence[str] = (), method_keys: Mapping[str, str] | None = None,
            metric_keys: Mapping[str, str] | None = None) -> list[Section]:
    """The legend, the metrics and methods shown (each linked to its page where the site has one:
    ``*_keys``, name → page key) and a DuckDB example."""
    level = f"{100 * config.confidence:g}%"
    items: list[Line] = [
        (f"Cell: mean ± half-width of the {level} confidence interval (rank, letters; r = effect size against "
         "the metric's leader in the track: matched-pairs rank-biserial correlation of the paired differences, "
         "−1 … 1, negative = worse than the leader). The mean is over training seeds of the per-job mean over "
         "test inputs.",),
        (f"CI: percentile bootstrap, {config.bootstrap_resamples} resamples, seeded per cell (base seed "
         f"{config.bootstrap_seed}); with several training seeds it is nested: seeds are resampled, then "
         "inputs within each seed."
         + ("" if bootstrap_share == 1 else " Cells without per-sample values use mean ± z·stderr (normal "
            "approximation)."),),
        (f"Rank (per metric, ↑ higher / ↓ lower is better): 1 + the number of methods significantly better, "
         "from paired two-sided Wilcoxon signed-rank tests (Pratt's zeros) on the per-sample values both methods "
         "have on the same inputs and training seeds, Holm-corrected over the metric's method pairs at "
         f"α = {config.alpha:g}; letters: methods sharing a letter are not significantly different (compact "
         "letter display). A rank may contradict the order of the means: the test ranks paired differences. "
         "ΔEF is tested on each job's values signed by its mean (their mean is the |mean| shown); the "
         "information level on per-image AUCs. Where a pair shares fewer than 6 inputs or values are missing, "
         "the metric keeps the CI-overlap rank (no letters): methods whose CIs overlap the leader's share "
         "its rank. The pairs are (input, training seed) units treated as independent: the test speaks for "
         "these inputs on these trained models.",),
        ("Category rank: methods ranked by their mean metric rank within the category. Overall: mean of "
         "the category ranks (lower is better).",),
        ("Summary per suite: only methods present on every track of the suite. Per category, the blocks are "
         "(track, metric) pairs; overall, (track, category) pairs ranked by mean metric rank, so every "
         "category weighs the same. Cells: the mean Friedman rank (1 = best), in brackets the Nemenyi rank "
         f"(1 + the number of methods better by at least the critical difference at α = {config.alpha:g}; all "
         "1 where Friedman does not reject). The blocks share models and inputs, unlike the independent data "
         "sets Demšar's procedure assumes. Metrics flagged unreliable (⚑) on a track are shown in its table "
         "but left out of the summary's blocks (the line under each summary names them).",),
        *_control_items(controls, config),
        ("Cost: maps per second (inputs explained per second of the method's own time, summed over its jobs) "
         "and model passes (forward or backward) per map, on the device named.",),
    ]
    rules = sorted({f"{k.rsplit('_', 1)[0]} {'≤' if k.endswith('_max') else '≥'} {v:g}"
                    for s in sanity.values() for k, v in s.items()})
    bound = Span("[sanity]", "verbatim")  # the suite file's table name, written as typed
    items.append(("⚠ Randomisation sanity check: a method is marked when it breaks a suite's ", bound,
                  f" bound ({', '.join(rules)}): its map survives weight randomisation, so it explains little "
                  "about the model.") if rules else
                 ("⚠ Randomisation sanity check: no ", bound, " bounds declared by the suites shown."))
    out = [Section(ids.new("legend"), "Legend", 2, [BulletList(items)]), _metric_table(cells, ids, metric_keys or {}),
           _method_table(cells, method_citations, ids, method_keys or {})]
    return out + _reproduce(cells, globs, ids)


def _control_items(controls: Sequence[str], config: BoardConfig) -> list[Line]:
    """The legend's lines on reference rows and the bar (none on a board without controls)."""
    if not controls:
        return []
    bar = controls[0]
    return [(f"Controls ({', '.join(controls)}: methods the registry declares controls, maps that owe nothing "
             "to the model) are reference rows: shown with their value and CI (\"ref\"; greyed on the page), never "
             "ranked — no rank or letters, not in the category, overall or summary ranks, the Friedman/Nemenyi "
             "tests, the CD diagrams or the agreement of metrics. Their paired tests form a Holm family of their "
             "own, so they do not make the competitors' corrections stricter.",),
            (f"{BELOW_BAR} on a cell: the method is not better than {bar} (the noise control, the bar every method "
             "has to clear) on that metric: not significantly better in the paired Wilcoxon test against it "
             f"(Holm over the metric's pairs with a control, α = {config.alpha:g}), or, where the metric was not "
             f"tested, its CI not entirely on the better side of {bar}'s. The summary's \"> {bar}\" column counts "
             f"the suite's (track, metric) cells on which the method beats {bar}.",)]


def _metric_table(cells: pd.DataFrame, ids: Anchors, links: Mapping[str, str]) -> Section:
    body = []
    for m, g in cells.groupby("metric", sort=True):
        entry = registry.metrics.get(m) if m in registry.metrics else None
        direction, category = g["direction"].iloc[0], g["category"].iloc[0]
        body.append([Cell(m, m, link=links.get(m)), Cell(f"{arrow(direction)} {direction}", direction),
                     Cell(category, category),
                     *(Cell(t, t) for t in (entry.description if entry else "", entry.citation if entry else ""))])
    columns = [Column(c) for c in ("metric", "direction", "category", "description", "citation")]
    return Section(ids.new("metrics"), "Metrics", 3, [Table(ids.new("metrics", "table"), columns, body)])


def _method_table(cells: pd.DataFrame, method_citations: Mapping[str, str], ids: Anchors,
                  links: Mapping[str, str]) -> Section:
    body = []
    for m, g in cells.groupby("method_label", sort=True):
        base = g["method_label"].iloc[0]
        name = base.split("(", 1)[0]
        cite = method_citations.get(name) or (registry.methods.get(name).citation if name in registry.methods else "")
        body.append([Cell(m, m, link=links.get(m)), Cell(cite, cite)])
    table = Table(ids.new("methods", "table"), [Column("method"), Column("citation")], body)
    return Section(ids.new("methods"), "Methods", 3, [table])


def _reproduce(cells: pd.DataFrame, globs: Sequence[str], ids: Anchors) -> list[Section]:
    if not globs or not len(cells):
        return []
    first = cells.sort_values(CELL).iloc[0]
    sql = cell_query(first, globs)
    text = (f"The mean of any cell is one DuckDB query over the Parquet rows; e.g. the {first['method_label']} / "
            f"{first['metric']} cell of {track_title([first[c] for c in TRACK], True)} ({fmt(first['value'])}):")
    return [Section(ids.new("reproduce"), "Reproduce a cell", 3,
                    [Paragraph([(text,)]), Code(f"duckdb -c {_shell_double_quoted(sql)}", "sh")])]
