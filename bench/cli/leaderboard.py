"""``bench leaderboard``: render the board from results."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    lb = sub.add_parser("leaderboard", help="render the board (leaderboard.md, its suite pages and "
                        "its HTML site) from results")
    lb.add_argument("suites", nargs="*", help="suite names (default: the suites of registry/board.toml)")
    lb.add_argument("--results", default="results")
    lb.add_argument("--out", default=None, help="the board file (default: leaderboard.md for the suites of "
                    "registry/board.toml, else RESULTS/boards/SUITES/leaderboard.md); plots go beside it")
    lb.add_argument("--no-plots", action="store_true", help="render the board without drawing plots")
    lb.add_argument("--no-saliency", action="store_true", help="skip the saliency grids (they recompute maps)")
    lb.add_argument("--no-html", action="store_true", help="skip the static HTML site (default: "
                    "RESULTS/board/index.html and its pages for the published board, else beside --out as .html)")
    lb.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from bench.board import load_board_config, write_board
    from bench.board.build import page_path

    suites = args.suites or list(load_board_config().suites)
    out, rows, notes = write_board(args.results, suites, args.out, plots=not args.no_plots,
                                   saliency=not args.no_saliency, html=not args.no_html)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    page = "" if args.no_html else f" and {page_path(args.results, out)}"
    print(f"wrote {out}{page} ({rows['job_id'].nunique()} jobs, {len(rows)} rows)")
    return 0
