"""``bench``: the parser and ``main``; each command lives in its own module (``bench.cli.<command>``:
``add_parser(sub)`` declares its flags, ``command(args)`` does the work through the modules it calls)."""

from __future__ import annotations

import argparse
import sys

from bench.cli import cite, leaderboard, listing, plot, prune, report, run, score, submit, train, verify
from bench.cli.common import EXIT_BAD_INPUT, EXIT_JOBS_FAILED, Parser
from bench.errors import GradBenchError

# The order `bench --help` lists the commands in.
COMMANDS = (run, leaderboard, plot, cite, submit, score, listing, report, prune, verify, train)

EPILOG = (f"exit status: 0 success; {EXIT_JOBS_FAILED} when bench run had a failed job (after every other job "
          f"ran; its last line gives the count) or bench verify a job that did not reproduce; {EXIT_BAD_INPUT} "
          "for bad input (a usage error, a suite or value refused before anything ran)")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="bench", description="GradBench: benchmark gradient explanations", epilog=EPILOG)
    p.add_argument("--registry", metavar="DIR", help="registry folder (default: $GRADBENCH_REGISTRY, else "
                   "./registry, else the copy installed with the package)")
    sub = p.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.registry:
            from bench.registry import use_registry_dir

            use_registry_dir(args.registry)
        return args.func(args)
    except (GradBenchError, ValueError, FileNotFoundError) as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)  # one line, whatever the message
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
