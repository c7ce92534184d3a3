"""Regenerate README's "What GradBench reproduces" table from the claims report.

Run after the results change: ``python benchmarks/claims_table.py`` (``--check`` exits 1 if the README
is stale). The table is ``bench report --claims --markdown`` on the committed results, written between
``<!-- claims:start -->`` and ``<!-- claims:end -->``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.board.config import load_board_config
from bench.claims import format_markdown, judge_suite
from bench.suite import load_suite

START, END = "<!-- claims:start -->", "<!-- claims:end -->"
README = Path(__file__).resolve().parents[1] / "README.md"


def table(results: str = "results") -> str:
    judged = [(name, judge_suite(load_suite(name), results)) for name in load_board_config().suites]
    return format_markdown([(n, v) for n, v in judged if v])


def replace(text: str, body: str) -> str:
    if START not in text or END not in text:
        raise SystemExit(f"README has no {START} … {END} markers; add them around the claims table")
    head, rest = text.split(START, 1)
    return f"{head}{START}\n{body}\n{END}{rest.split(END, 1)[1]}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--check", action="store_true", help="exit 1 if the README table is stale")
    args = ap.parse_args()
    text = README.read_text()
    new = replace(text, table(args.results))
    if args.check:
        return int(new != text)
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
