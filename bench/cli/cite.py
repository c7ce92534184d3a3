"""``bench cite``: BibTeX for the board version and results digest."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("cite", help="print BibTeX naming the board version and results digest")
    c.add_argument("suites", nargs="*", help="suite names (default: the suites of registry/board.toml)")
    c.add_argument("--results", default="results")
    c.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from bench.board import bibtex, load_board_config, result_roots
    from bench.run.results import load_rows

    suites = args.suites or list(load_board_config().suites)
    from bench.board.build import current_only

    (rows,), notes = current_only(args.results, suites, load_rows(*result_roots(args.results, suites)))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(bibtex(rows, suites), end="")
    return 0
