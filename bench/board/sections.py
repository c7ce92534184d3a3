"""The board's cross-track parts as document sections: a summary per suite (Friedman + Nemenyi over
the methods present on every track, with its critical-difference diagram) and the metric
reliability tables (reactivity to controls, noise resilience, concordance)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bench.board.compute import Board
from bench.board.document import Anchors, Cell, Column, Image, Paragraph, Section, Table
from bench.board.friedman import OVERALL
from bench.board.references import NOT_MEASURED
from bench.board.reliability import REFERENCE
from bench.board.stats import TRACK
from bench.metrics.base import CATEGORIES


def number(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def track_title(track: Sequence[object], with_suite: bool) -> str:
    suite, *rest = track
    return " · ".join(str(x) for x in ([suite] if with_suite else []) + rest if x != "")


def ordered_categories(present: set[str]) -> list[str]:
    return [c for c in [*CATEGORIES, *sorted(present - set(CATEGORIES))] if c in present]


def _p(p: float) -> str:
    return "–" if not np.isfinite(p) else f"{p:.2g}"


# -- summary per suite -------------------------------------------------------------------------------
def suite_sections(board: Board, cd_images: Mapping[str, str], ids: Anchors, only: str | None = None
                   ) -> list[Section]:
    """One section per suite : its complete methods ranked per category and
    overall (mean Friedman rank, Nemenyi rank in brackets), the tests behind them, the methods left out
    and the CD diagram. ``only``: that suite's section alone."""
    out = []
    tests, ranks, left = board.summary.tests, board.summary.ranks, board.summary.left_out
    for suite in sorted(set(tests["suite"]) & ({only} if only is not None else set(tests["suite"]))):
        mine_tests = tests[tests["suite"] == suite].set_index("scope")
        mine = ranks[ranks["suite"] == suite]
        scopes = [*ordered_categories(set(mine_tests.index) - {OVERALL}), OVERALL]
        wide = {s: mine[mine["scope"] == s].set_index("method_label") for s in scopes}
        overall = wide[OVERALL].sort_values(["rank", "mean_rank"]).reset_index()
        bar = bar_counts(board, suite)
        columns = [Column("rank"), Column("method"),
                   *(Column(s if s != OVERALL else "overall", category=s if s != OVERALL else None) for s in scopes),
                   *([Column(f"> {board.controls[0]}")] if bar else [])]
        body = [[Cell(str(int(r["rank"])), int(r["rank"])), Cell(r["method_label"], r["method_label"]),
                 *(_rank_cell(wide[s], r["method_label"]) for s in scopes),
                 *([bar_cell(bar, r["method_label"])] if bar else [])] for _, r in overall.iterrows()]
        present = set(board.cells.loc[board.cells["suite"] == suite, "method_label"])
        body += [[Cell("ref"), Cell(f"{c} (reference)", c, reference=True),
                  *(Cell("–", reference=True) for _ in scopes), *([Cell("–", reference=True)] if bar else [])]
                 for c in board.controls if c in present]
        section = Section(ids.new("summary", suite), f"Summary: {suite}", 2, suite=suite)
        section.blocks.append(Table(ids.new("summary", suite, "table"), columns, body))
        section.blocks.append(Paragraph([(_unreliable_line(board, suite),),
                                         *((_test_line(s, mine_tests.loc[s]),) for s in scopes)]))
        ties = board.ties[board.ties["suite"] == suite]
        if len(ties):
            section.blocks += _ties_blocks(ties, ids.new("ties", suite, "table"))
        gone = left[left["suite"] == suite]
        if len(gone):
            section.blocks.append(Paragraph([(f"Left out (not on every track of {suite}): "
                                              + "; ".join(f"{r.method_label} ({r.reason})"
                                                          for r in gone.itertuples(index=False)),)]))
        if suite in cd_images:
            section.blocks.append(Image(f"Critical-difference diagram: {suite}", cd_images[suite]))
        out.append(section)
    return out


def _ties_blocks(ties: pd.DataFrame, table_id: str) -> list[Paragraph | Table]:
    """The pairs the overall summary does not tell apart, and what would: more blocks or more seeds."""
    rows = []
    for t in ties.sort_values(["gap", "method_a", "method_b"], ascending=[False, True, True]).itertuples(index=False):
        rows.append([Cell(f"{t.method_a} – {t.method_b}", f"{t.method_a} – {t.method_b}"),
                     Cell(f"{t.gap:.2f}", number(t.gap)),
                     Cell(f"{t.blocks} → {_count(t.blocks_needed)}", number(t.blocks_needed)),
                     Cell(f"{t.seeds} → {_count(t.seeds_needed)}", number(t.seeds_needed))])
    columns = [Column("tied pair"), Column("mean-rank gap"), Column("blocks: now → needed"),
               Column("seeds: now → needed")]
    return [Paragraph([("Ties, equal or underpowered? For each pair the overall summary does not tell apart: the "
                        "blocks Nemenyi would need for their gap in mean rank, and the training seeds the paired "
                        "test would need to detect their observed mean difference (median over the reliable "
                        "metrics × tracks both ran; power 0.8). Few seeds needed but many blocks: the methods "
                        "differ within tracks and the suite has too few tracks and metrics to rank them; ∞: "
                        "no difference was observed.",)]),
            Table(table_id, columns, rows)]


def _count(x: float) -> str:
    return "∞" if not np.isfinite(x) else str(int(x))


def _unreliable_line(board: Board, suite: str) -> str:
    """The line under a summary naming the flagged (⚑) metrics it leaves out of its ranks."""
    flagged = [key for key in board.metric_flags if key[0] == suite]
    if not flagged:
        return "Every metric of every track counts in these ranks: none is flagged unreliable (⚑)."
    where: dict[str, list[str]] = {}
    for key in flagged:
        where.setdefault(key[-1], []).append(track_title(key[:-1], False))
    listed = "; ".join(f"{m} on {', '.join(sorted(t))}" for m, t in sorted(where.items()))
    return (f"Not counted in these ranks (shown in the track tables, flagged ⚑ unreliable, see Metric "
            f"reliability): {listed}.")


def bar_counts(board: Board, suite: str) -> dict[str, tuple[int, int]]:
    """Method → (metrics × tracks of ``suite`` on which it beats the bar, those where it was compared)."""
    mine = board.bar[(board.bar["suite"] == suite) & (board.bar["verdict"] != NOT_MEASURED)]
    return {m: (int(g["clears"].sum()), len(g)) for m, g in mine.groupby("method_label", sort=True)}


def bar_cell(counts: dict[str, tuple[int, int]], method: str) -> Cell:
    if method not in counts:
        return Cell("–")
    cleared, compared = counts[method]
    return Cell(f"{cleared}/{compared}", cleared / compared if compared else None)


def _rank_cell(scope: pd.DataFrame, method: str) -> Cell:
    if method not in scope.index or not np.isfinite(scope.loc[method, "mean_rank"]):
        return Cell("–")
    r = scope.loc[method]
    return Cell(f"{r['mean_rank']:.2f} ({int(r['rank'])})", number(r["mean_rank"]))


def _test_line(scope: str, t: pd.Series) -> str:
    what = "overall (blocks: track × category)" if scope == OVERALL else f"{scope} (blocks: track × metric)"
    if not np.isfinite(t["chi2"]):
        return f"{what}: {int(t['blocks'])} block(s), {int(t['methods'])} methods — too few to test."
    return (f"{what}: Friedman χ² = {t['chi2']:.3g}, p = {_p(t['p'])} over {int(t['blocks'])} blocks, "
            f"{int(t['methods'])} methods; Nemenyi CD = {t['cd']:.2f}")


# -- reliability --------------------------------------------------------------------------------------
def reliability_sections(board: Board, with_suite: bool, ids: Anchors, suite: str | None = None) -> list[Section]:
    """"Metric reliability": per (track, metric) the controls' verdicts and noise resilience, flagged
    metrics marked; and Kendall's W of each category's metrics per track (``suite``: its tracks only)."""
    react = board.reactivity
    react = (react[react["suite"] == suite] if suite is not None else react).set_index([*TRACK, "metric"])
    nr = board.noise.set_index([*TRACK, "metric"]) if len(board.noise) else None
    categories = board.cells.groupby([*TRACK, "metric"])["category"].first()
    controls = board.controls
    bar = controls[0] if controls else "the noise control"
    columns = [Column("track"), Column("metric"), Column("category"),
               *(Column(f"{REFERENCE} vs {c}") for c in controls), Column("noise resilience"), Column("reliable")]
    body = []
    for key in sorted(react.index):
        r = react.loc[key]
        flags = board.metric_flags.get(tuple(key), [])
        noise = nr.loc[key] if nr is not None and key in nr.index else None
        body.append([Cell(track_title(key[:-1], with_suite), track_title(key[:-1], True)), Cell(key[-1], key[-1]),
                     Cell(str(categories.get(key, "")), str(categories.get(key, ""))),
                     *(_verdict(r, c) for c in controls),
                     Cell(f"{noise['nr']:.2g}", number(noise["nr"])) if noise is not None else Cell(NOT_MEASURED),
                     Cell("no ⚑" if flags else "yes", 0 if flags else 1)])
    main = Section(ids.new("reliability"), "Metric reliability", 2, [
        Paragraph([(f"Can a metric tell an explanation from noise on this track? {REFERENCE} vs a control: the "
                    "paired Wilcoxon–Holm verdict (Holm-adjusted p) — a metric that does not rank "
                    f"{REFERENCE} significantly above {bar} is flagged ⚑. Noise resilience: mean change "
                    "of a method's score when the model's weights get a minor perturbation that leaves its "
                    "accuracy unchanged (±1 point), over the spread of the scores across methods; flagged above "
                    "the board's threshold. ⚑ marks the metric's column in the track tables.",)]),
        Table(ids.new("reliability", "table"), columns, body)])
    return [main, _concordance_section(board, with_suite, ids, suite)]


def _verdict(r: pd.Series, control: str) -> Cell:
    verdict = str(r[f"vs_{control}"])
    if verdict == NOT_MEASURED:
        return Cell(verdict)
    p = r[f"p_{control}"]
    return Cell(verdict + (f" (p = {_p(p)})" if np.isfinite(p) else " (CI)"), verdict)


def _concordance_section(board: Board, with_suite: bool, ids: Anchors, suite: str | None = None) -> Section:
    w = board.concordance if suite is None else board.concordance[board.concordance["suite"] == suite]
    body = [[Cell(track_title([getattr(r, c) for c in TRACK], with_suite)), Cell(r.category, r.category),
             Cell(str(r.metrics), int(r.metrics)), Cell(f"{r.w:.2f}", number(r.w)), Cell(_p(r.p), number(r.p))]
            for r in w.itertuples(index=False)]
    columns = [Column("track"), Column("category"), Column("metrics"), Column("Kendall's W"), Column("p")]
    return Section(ids.new("concordance"), "Agreement of a category's metrics", 3, [
        Paragraph([("Kendall's W of the method rankings given by the metrics of one category on one track "
                    "(1 = the metrics order the methods alike, 0 = no agreement; categories with one metric "
                    "are not shown).",)]),
        Table(ids.new("concordance", "table"), columns, body)])
