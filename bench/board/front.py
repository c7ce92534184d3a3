"""The board's front page: per suite one methods × categories table, read at a glance.

Each cell is a method's mean Friedman rank in the category across the suite's tracks and reliable
metrics, with its Nemenyi letters; the best of each column is bold, and the page colours cells by
letter group (a heatmap). Controls are reference rows, never ranked. A line or two under each
table says what is left out and how sure the order is; everything longer (track tables, power,
reliability, plots, legend) is on the suite's own page, which the section links.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bench.board.compute import Board
from bench.board.config import BoardConfig
from bench.board.document import Anchors, Cell, Column, Document, Field, Line, Paragraph, Section, Span, Table
from bench.board.friedman import OVERALL, nemenyi_letters
from bench.board.sections import bar_cell, bar_counts, number, ordered_categories
from bench.board.stats import TRACK
from bench.run.results import digest

FRONT = "index"  # the front page's key among the board's pages


def header(rows: pd.DataFrame, suites: Sequence[str], config: BoardConfig) -> list[Field]:
    """A page's facts: version, the digest of the rows it shows, their latest date, commits, size."""
    created = str(rows["created_at"].max()) if "created_at" in rows and rows["created_at"].notna().any() else "unknown"
    versions = sorted({str(v) for v in rows.get("bench_version", pd.Series(dtype=str)).dropna() if v}) or ["unknown"]
    commits = sorted({str(v) for v in rows.get("git_commit", pd.Series(dtype=str)).dropna() if v}) or ["unknown"]
    return [
        Field("Board version", (Span(config.version, "strong"),)),
        Field("Results digest", (Span(f"sha256:{digest(rows)}", "code"),)),
        Field("Date", (f"{created} (the latest result's timestamp)",)),
        Field("GradBench", (f"{', '.join(versions)}; commit {', '.join(commits)}",)),
        Field("Suites", (f"{', '.join(suites)}; jobs: {rows['job_id'].nunique()}; result rows: {len(rows)}",)),
    ]


def front_document(rows: pd.DataFrame, board: Board, suites: Sequence[str], command: str, config: BoardConfig,
                   suite_pages: Mapping[str, str], method_pages: Mapping[str, str]) -> Document:
    """The front; ``suite_pages`` / ``method_pages``: suite / method label → its page's key."""
    ids = Anchors()
    bar = board.controls[0] if board.controls else "random"
    intro = Paragraph([
        ("Which method, for what? Per suite: each method's mean rank (1 = best) per category across the suite's "
         "tracks and reliable metrics, with Nemenyi letters (methods sharing a letter are not told apart at "
         f"α = {config.alpha:g}); bold: the best of the column; rank: the overall Nemenyi rank.",),
        (f"Controls are reference rows, never ranked; \"> {bar}\": the suite's track × metric cells on which a "
         "method beats the noise control. Track tables, power, reliability, plots and the legend: each suite's "
         "page.",)])
    sections = [_suite_section(board, suite, ids, config, suite_pages, method_pages)
                for suite in sorted(set(board.summary.tests["suite"]))]
    return Document(config.title, header(rows, suites, config), command, sections, intro=[intro])


def _suite_section(board: Board, suite: str, ids: Anchors, config: BoardConfig, suite_pages: Mapping[str, str],
                   method_pages: Mapping[str, str]) -> Section:
    tests = board.summary.tests
    tests = tests[tests["suite"] == suite].set_index("scope")
    ranks = board.summary.ranks[board.summary.ranks["suite"] == suite]
    scopes = [*ordered_categories(set(tests.index) - {OVERALL}), OVERALL]
    wide = {s: ranks[ranks["scope"] == s].set_index("method_label") for s in scopes}
    letters = {s: nemenyi_letters(wide[s]["mean_rank"], tests.loc[s, "cd"], tests.loc[s, "p"] <= config.alpha)
               for s in scopes}
    best = {s: wide[s]["mean_rank"].min() for s in scopes}
    overall = wide[OVERALL].sort_values(["rank", "mean_rank"]).reset_index()
    bars = bar_counts(board, suite)
    top_bar = max((c / n for c, n in bars.values() if n), default=None)
    columns = [Column("rank"), Column("method"),
               *(Column(s, category=s if s != OVERALL else None) for s in scopes),
               *([Column(f"> {board.controls[0]}")] if bars else [])]
    body = []
    for r in overall.itertuples(index=False):
        m = r.method_label
        share = bar_cell(bars, m) if bars else None
        if share is not None:
            share.strong = share.sort is not None and top_bar is not None and share.sort == top_bar
        body.append([Cell(str(int(r.rank)), int(r.rank)), Cell(m, m, link=method_pages.get(m)),
                     *(_cell(wide[s], m, s, letters[s], best[s], tests.loc[s]) for s in scopes),
                     *([share] if share is not None else [])])
    present = set(board.cells.loc[board.cells["suite"] == suite, "method_label"])
    body += [[Cell("ref"), Cell(f"{c} (reference)", c, reference=True, link=method_pages.get(c)),
              *(Cell("–", reference=True) for _ in scopes), *([Cell("–", reference=True)] if bars else [])]
             for c in board.controls if c in present]
    section = Section(ids.new("suite", suite), suite, 2, suite=suite)
    section.blocks.append(Table(ids.new("suite", suite, "table"), columns, body))
    tracks = len(board.cells.loc[board.cells["suite"] == suite, list(TRACK)].drop_duplicates())
    more = (Span(f"{suite}: its tracks, power, reliability and plots", "link", suite_pages.get(suite, "")),
            f" ({_count(tracks, 'track')}, {_count(len(overall), 'method')} ranked).")
    section.blocks.append(Paragraph([*_notes(board, suite, tests.loc[OVERALL]), more]))
    return section


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _cell(scope: pd.DataFrame, method: str, name: str, letters: Mapping[str, str], best: float,
          test: pd.Series) -> Cell:
    if method not in scope.index or not np.isfinite(scope.loc[method, "mean_rank"]):
        return Cell("–")
    r = scope.loc[method]
    group = letters.get(method, "")
    tip = (f"{name}: mean rank {r['mean_rank']:.2f} among {int(test['methods'])} methods over "
           f"{int(test['blocks'])} blocks; Nemenyi rank {int(r['rank'])}, group {group}")
    return Cell(f"{r['mean_rank']:.2f} {group}".strip(), number(r["mean_rank"]), strong=bool(r["mean_rank"] == best),
                tone=ord(group[0]) - ord("a") if group else None, tip=tip)


def _notes(board: Board, suite: str, overall: pd.Series) -> list[Line]:
    """At most three short lines: what the ranks leave out and how sure the order is (the suite's page
    says why, per pair)."""
    lines: list[Line] = []
    flagged: dict[str, int] = {}
    for key in board.metric_flags:
        if key[0] == suite:
            flagged[key[-1]] = flagged.get(key[-1], 0) + 1
    if flagged:
        lines.append(("Not counted (⚑ unreliable): "
                      + ", ".join(f"{m} on {_count(n, 'track')}" for m, n in sorted(flagged.items())) + ".",))
    if np.isfinite(overall["chi2"]):
        p = overall["p"]
        sure = (f"Overall: Friedman p = {p:.2g} over {int(overall['blocks'])} blocks, Nemenyi CD "
                f"{overall['cd']:.2f}.")
    else:
        sure = f"Overall: {int(overall['blocks'])} block(s), too few to test."
    ties = board.ties[board.ties["suite"] == suite]
    if len(ties):
        needed = ties["blocks_needed"].replace(np.inf, np.nan).median()
        now = int(ties["blocks"].iloc[0])
        power = f" (median blocks needed {needed:.0f}, {now} now)" if np.isfinite(needed) else ""
        sure += f" {_count(len(ties), 'pair')} not told apart{power}: see power on the suite's page."
    lines.append((sure,))
    left = board.summary.left_out
    left = left[left["suite"] == suite]
    if len(left):
        lines.append((f"Left out (not on every track): {', '.join(left['method_label'])}.",))
    return lines
