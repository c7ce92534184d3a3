"""Critical-difference diagrams (Demšar 2006, Fig. 1): the mean ranks of a suite's methods on an
axis, the better half labelled on the left and the rest on the right, the Nemenyi CD as a scale bar,
and thick bars joining methods whose mean ranks differ by less than CD.

PNGs are written as ``plots`` writes them (Agg, no version string in the metadata): the same ranks
give the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from bench.board.friedman import OVERALL, SuiteSummary, nemenyi_groups
from bench.board.plots import plt, save_figure, slug

ROW = 0.32  # vertical step between labels (axis units)
GROUP_STEP = 0.12  # vertical step between group bars


def cd_diagram(mean_ranks: Mapping[str, float], cd: float, path: Path | str, title: str = "",
               rejected: bool = True) -> Path:
    """Draw the CD diagram of ``mean_ranks`` (method → mean rank, 1 = best) at ``path``. ``rejected``:
    whether the Friedman test rejected; if not, one bar joins every method (no post-hoc difference)."""
    names = sorted(mean_ranks, key=lambda m: (mean_ranks[m], m))
    ranks = np.array([mean_ranks[m] for m in names], dtype=np.float64)
    k = len(names)
    lo, hi = 1, max(k, int(math.ceil(ranks.max())) if k else 1)
    groups = nemenyi_groups(ranks, cd) if rejected else ([(0, k - 1)] if k > 1 else [])
    left = math.ceil(k / 2)
    rows = max(left, k - left)
    label_top = -0.35 - GROUP_STEP * len(groups)
    fig, ax = plt.subplots(figsize=(7, 1.2 + ROW * rows + GROUP_STEP * len(groups)))
    ax.set_axis_off()
    # the axis: best (1) on the left, ticks at every integer rank
    ax.plot([lo, hi], [0, 0], color="black", lw=1)
    for t in range(lo, hi + 1):
        ax.plot([t, t], [0, 0.08], color="black", lw=1)
        ax.text(t, 0.13, str(t), ha="center", va="bottom", fontsize=8)
    if np.isfinite(cd):
        ax.plot([lo, lo + cd], [0.55, 0.55], color="black", lw=1)
        for x in (lo, lo + cd):
            ax.plot([x, x], [0.5, 0.6], color="black", lw=1)
        ax.text(lo + cd / 2, 0.62, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=8)
    for i, (a, b) in enumerate(groups):  # groups: thick bars just below the axis
        y = -0.15 - GROUP_STEP * i
        ax.plot([ranks[a] - 0.04, ranks[b] + 0.04], [y, y], color="black", lw=3, solid_capstyle="round")
    edge = {"left": lo - 0.4, "right": hi + 0.4}
    for i, (name, r) in enumerate(zip(names, ranks, strict=True)):
        side = "left" if i < left else "right"
        row = i if side == "left" else k - 1 - i  # the outermost methods take the top rows: no crossings
        y = label_top - ROW * row
        ax.plot([r, r, edge[side]], [0, y, y], color="0.3", lw=0.8)
        ax.text(edge[side] + (-0.05 if side == "left" else 0.05), y, f"{name} ({r:.2f})", fontsize=8,
                ha="right" if side == "left" else "left", va="center")
    ax.set_xlim(lo - 0.5, hi + 0.5)
    ax.set_ylim(label_top - ROW * (rows - 1) - 0.2, 0.9)
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, Path(path))


def suite_cd_diagrams(summary: SuiteSummary, out_dir: Path | str, alpha: float = 0.05,
                      scopes: Sequence[str] = (OVERALL,)) -> list[tuple[str, str, Path]]:
    """A CD diagram per suite and scope (``scopes``; the board shows the overall one) with at least two
    methods and blocks: (suite, title, path), sorted; the title says whether Friedman rejected (if not,
    one bar joins every method)."""
    out = []
    for t in summary.tests.sort_values(["suite", "scope"]).itertuples(index=False):
        if t.scope not in scopes or t.methods < 2 or t.blocks < 2 or not np.isfinite(t.cd):
            continue
        part = summary.ranks[(summary.ranks["suite"] == t.suite) & (summary.ranks["scope"] == t.scope)]
        rejected = bool(t.p <= alpha)
        verdict = f"Friedman p = {t.p:.2g}" + ("" if rejected else ", no difference shown")
        what = "all categories" if t.scope == OVERALL else t.scope
        title = f"Mean ranks: {t.suite}, {what} ({t.blocks} blocks; {verdict})"
        path = Path(out_dir) / f"{slug('cd', t.suite, t.scope)}.png"
        ranks = dict(zip(part["method_label"], part["mean_rank"], strict=True))
        out.append((t.suite, title, cd_diagram(ranks, t.cd, path, title, rejected)))
    return out
