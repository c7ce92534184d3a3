"""``bench submit``: validate, run and rank a new method (or withdraw one)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    sm = sub.add_parser("submit", help="validate a new method, run the standard suite for it, update the board")
    sm.add_argument("spec", nargs="?", help="path/to/file.py:function, package.module:function, or an "
                                            "installed entry point of group bench.methods")
    sm.add_argument("--name", help="the method's name on the board (required with SPEC)")
    sm.add_argument("--withdraw", metavar="NAME", help="remove the submission NAME (its results folder)")
    sm.add_argument("--params", default="{}", help="JSON object of the method's parameters")
    sm.add_argument("--citation", default="", help="how to cite the method")
    sm.add_argument("--replace", action="store_true", help="replace an earlier submission of the same name")
    sm.add_argument("--suite", default="default", help="suite name or path (default: default)")
    sm.add_argument("--results", default="results")
    sm.add_argument("--out", default="leaderboard.md", help="the board to regenerate")
    sm.add_argument("--device", default="auto")
    sm.add_argument("--max-seconds", type=float, default=5.0, help="refuse a method slower than this per map "
                                                                   "on the validation batch (default 5)")
    sm.add_argument("--no-plots", action="store_true", help="regenerate the board without plots")
    sm.add_argument("--quiet", action="store_true", help="no progress bars")
    sm.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from bench.submit import submit, withdraw

    if args.withdraw:
        removed = withdraw(args.withdraw, args.results)
        print(f"withdrew '{args.withdraw}': removed {removed[0]} ({len(removed) - 1} files); "
              "run 'bench leaderboard' to update the board")
        return 0
    if not args.spec or not args.name:
        raise ValueError("bench submit needs SPEC and --name NAME (or --withdraw NAME)")

    result = submit(args.spec, args.name, params=args.params, citation=args.citation, replace=args.replace,
                    suite=args.suite, results=args.results, out=args.out, device=args.device,
                    max_seconds_per_map=args.max_seconds, plots=not args.no_plots, progress=not args.quiet)
    print(result.summary())
    return 0
