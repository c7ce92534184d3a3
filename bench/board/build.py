"""Build the board: find the result roots and submissions, draw the plots, render and write it.

Also the board's citation (BibTeX naming its version and results digest).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from bench.board.compute import compute_board
from bench.board.config import BoardConfig, load_board_config
from bench.board.render import board_site
from bench.board.site import Layout, prune_stale, write_site
from bench.errors import GradBenchError, ResultsError
from bench.run.results import (
    digest,
    drop_jobs,
    ignored_note,
    is_uri,
    join,
    load_rows,
    load_samples,
    ordinary_rows,
    stale_jobs,
)
from bench.suite import load_suite

SUBMISSIONS = "submissions"
PUBLISHED = Path("leaderboard.md")  # the published board (relative to the working directory)
PUBLISHED_PAGE = Path("board") / "index.html"  # its HTML page, under RESULTS


def board_paths(results: Path | str, suites: Sequence[str], out: Path | str | None = None) -> tuple[Path, Path]:
    """Where a board of ``suites`` is written and where its plots go.

    The published board (``leaderboard.md``, plots in ``RESULTS/plots``) is the board of
    ``registry/board.toml``'s suites only; any other board goes to ``out`` (default
    ``RESULTS/boards/<suites>/leaderboard.md``) with its plots beside it, in ``<out dir>/plots``."""
    full = set(suites) == set(load_board_config().suites)
    if out is None:
        out = PUBLISHED if full else Path(results) / "boards" / "+".join(suites) / PUBLISHED.name
    out = Path(out)
    if out.resolve() == PUBLISHED.resolve():
        if not full:
            raise ResultsError(f"{out} is the published board of suites {', '.join(load_board_config().suites)}; "
                               f"write the board of {', '.join(suites)} elsewhere: leave out --out (default "
                               f"{Path(results) / 'boards' / '+'.join(suites) / PUBLISHED.name}) or name another file")
        return out, Path(results) / "plots"
    return out, out.parent / "plots"


def page_path(results: Path | str, out: Path | str) -> Path:
    """Where the HTML page of the Markdown board ``out`` goes: ``RESULTS/board/index.html`` for the
    published board, else beside ``out`` with the suffix ``.html``."""
    out = Path(out)
    if out.resolve() == PUBLISHED.resolve():
        return Path(results) / PUBLISHED_PAGE
    page = out.with_suffix(".html")
    if page.resolve() == out.resolve():
        raise ResultsError(f"--out {out} names the Markdown board and its HTML page is written beside it; "
                           f"name a .md file (e.g. {out.with_suffix('.md')})")
    return page


def pages_dir(results: Path | str, out: Path | str) -> Path:
    """The folder of the board's suite pages (and, on the site, method and metric pages):
    ``RESULTS/board`` for the published board, else ``board/`` beside ``out``."""
    out = Path(out)
    return Path(results) / PUBLISHED_PAGE.parent if out.resolve() == PUBLISHED.resolve() else out.parent / "board"


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


def current_only(results: Path | str, suites: Sequence[str], *frames: pd.DataFrame) -> tuple[list[pd.DataFrame],
                                                                                               list[str]]:
    """The frames without the jobs stored under ``results/<suite>`` that the suite's current definition
    no longer has (an edited suite must not pool old and new results), and a note per suite that had some.
    A suite that does not resolve (results only) is kept whole; submissions' jobs are never in the
    suite folder, so they stay."""
    notes, out = [], list(frames)
    for s in suites:
        try:
            suite = load_suite(s)
        except GradBenchError:
            continue
        s = suite.name
        stale = set(stale_jobs(join(results, s), {j.id for j in suite.jobs}))
        ignored = out[0].loc[out[0]["job_id"].isin(stale), "job_id"].nunique()
        out = [drop_jobs(f, stale) for f in out]
        if ignored:
            notes.append(ignored_note(int(ignored), s))
    if out and out[0].empty:
        raise ResultsError(f"no results of the current jobs of {', '.join(suites)} under {results} "
                           f"({'; '.join(notes)}); run 'bench run {suites[0]}'")
    return out, notes


def suite_sanity(suites: Sequence[str]) -> dict[str, dict[str, float]]:
    """``[sanity]`` thresholds of the named suites that resolve (a results-only suite has none)."""
    out = {}
    for s in suites:
        try:
            out[s] = dict(load_suite(s).sanity)
        except GradBenchError:
            out[s] = {}
    return out


def leaderboard_command(suites: Sequence[str], results: Path | str, out: Path | str, plots: bool = True) -> str:
    """The canonical command line that regenerates the board (written into it, so it must not vary)."""
    parts = ["bench", "leaderboard", *suites, "--results", str(results), "--out", str(out)]
    return " ".join(shlex.quote(p) for p in parts) + ("" if plots else " --no-plots")


def write_board(results: Path | str, suites: Sequence[str], out: Path | str | None = None, *,
                plots: bool = True, saliency: bool = True, html: bool = True,
                sanity: Mapping[str, Mapping[str, float]] | None = None) -> tuple[Path, pd.DataFrame, list[str]]:
    """Load rows (submissions included), draw the plots, render and atomically write the board: the
    front (Markdown ``out`` and, with ``html``, its page), a page per suite (Markdown and HTML) and, with
    ``html``, a page per method and per metric — every page from one computed board.

    ``out`` and the plots' folder: :func:`board_paths`; the front page: :func:`page_path`; the other
    pages: :func:`pages_dir`. Returns the front's path, the rows it shows and notes on skipped plots."""
    if is_uri(results):
        raise ResultsError(f"bench leaderboard renders from a local results folder, not {results}: copy it "
                           f"down first (e.g. 'aws s3 sync {results} results') and pass --results results")
    out, plots_dir = board_paths(results, suites, out)
    page = page_path(results, out) if html else None
    roots = result_roots(results, suites)
    (rows, samples), notes = current_only(results, suites, load_rows(*roots), load_samples(*roots))
    config = load_board_config()
    sanity = sanity if sanity is not None else suite_sanity(suites)
    board = compute_board(rows, samples, config, sanity)
    links, cd_images = [], {}
    if plots:
        from bench.board.cd_diagram import suite_cd_diagrams  # matplotlib only when drawing
        from bench.board.plots import make_plots

        made, plot_notes = make_plots(ordinary_rows(rows), roots, plots_dir, saliency=saliency)
        notes += plot_notes
        links = [(t, _relative(p, out)) for t, p in made]
        diagrams = suite_cd_diagrams(board.summary, plots_dir, config.alpha)
        cd_images = {suite: _relative(p, out) for suite, _, p in diagrams}
        prune_stale(plots_dir, [p for _, p in made] + [p for _, _, p in diagrams], out.name)
    citations = {n: r.get("citation", "") for n, r in load_submissions(results).items()}
    site = board_site(rows, suites, leaderboard_command(suites, results, out, plots), samples=samples,
                      config=config, sanity=sanity, plots=links,
                      globs=board_globs(results, suites, out.resolve().parent), method_citations=citations,
                      board=board, cd_images=cd_images, profiles=html)
    pages = pages_dir(results, out)
    prune_stale(pages, write_site(site, Layout(out, page, pages)), out.name)
    return out, rows, notes


def _relative(path: Path, board: Path) -> str:
    """``path`` as the Markdown board at ``board`` links it."""
    return Path(os.path.relpath(path.resolve(), board.resolve().parent)).as_posix()


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
