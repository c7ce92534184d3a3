"""``bench plot``: the board's plots alone."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    pl = sub.add_parser("plot", help="draw the board's plots into RESULTS/plots/")
    pl.add_argument("suites", nargs="*", help="suite names (default: the suites of registry/board.toml)")
    pl.add_argument("--results", default="results")
    pl.add_argument("--out", default=None, help="folder for the PNGs (default RESULTS/plots)")
    pl.add_argument("--no-saliency", action="store_true", help="skip the saliency grids (they recompute maps)")
    pl.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from bench.board import load_board_config, result_roots
    from bench.board.build import current_only
    from bench.board.plots import make_plots
    from bench.run.results import load_rows

    suites = args.suites or list(load_board_config().suites)
    roots = result_roots(args.results, suites)
    (rows,), notes = current_only(args.results, suites, load_rows(*roots))
    made, plot_notes = make_plots(rows, roots, Path(args.out or Path(args.results) / "plots"),
                             saliency=not args.no_saliency)
    for note in notes + plot_notes:
        print(f"note: {note}", file=sys.stderr)
    for _, path in made:
        print(path)
    return 0
