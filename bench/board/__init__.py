"""The leaderboard: statistics (``stats``), its content as a document (``render`` builds a ``document``;
``markdown`` and ``html`` write it), figures (``plots``, imported on use: it loads matplotlib) and the
orchestration that writes ``leaderboard.md`` and the static page (``build``)."""

from bench.board.build import (
    SUBMISSIONS,
    bibtex,
    board_globs,
    leaderboard_command,
    load_submissions,
    result_roots,
    suite_sanity,
    write_board,
)
from bench.board.compute import Board, compute_board
from bench.board.config import BoardConfig, load_board_config
from bench.board.markdown import escape_md
from bench.board.render import Site, board_site, render
from bench.board.stats import (
    CELL,
    TRACK,
    aggregate,
    bootstrap_ci,
    bootstrap_means,
    cell_seed,
    ci_ranks,
    percentile_ci,
)

__all__ = [
    "CELL", "SUBMISSIONS", "TRACK", "Board", "BoardConfig", "Site", "aggregate", "bibtex", "board_globs",
    "board_site", "bootstrap_ci", "bootstrap_means", "cell_seed", "ci_ranks", "compute_board", "escape_md",
    "leaderboard_command", "load_board_config", "load_submissions", "percentile_ci", "render", "result_roots",
    "suite_sanity", "write_board",
]
