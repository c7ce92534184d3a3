"""``bench prune``: drop results of jobs a suite no longer defines (and, with ``--jobs``, of the jobs
selected, so that the next ``bench run`` computes them again: a regeneration from an empty cache)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    pr = sub.add_parser("prune", help="remove results of jobs no longer in a suite's definition")
    pr.add_argument("suite")
    pr.add_argument("--results", default="results")
    pr.add_argument("--jobs", metavar="PATTERN", help="also remove the results of the jobs matching (as bench run "
                    "--jobs), so that the next run recomputes them")
    pr.add_argument("--dry-run", action="store_true", help="list the files, remove nothing")
    pr.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from bench.run import maps
    from bench.run.results import ResultStore, join, prune
    from bench.run.runner import select_jobs
    from bench.suite import load_suite

    suite = load_suite(args.suite)
    current = {j.id for j in suite.jobs}
    if args.jobs is not None:
        current -= {j.id for j in select_jobs(suite, args.jobs)}
    paths = prune(join(args.results, suite.name), current, dry_run=args.dry_run)
    paths += maps.prune(ResultStore(join(args.results, suite.name)), current, dry_run=args.dry_run)
    for p in paths:
        print(f"{'would remove' if args.dry_run else 'removed'} {p}")
    jobs = len({Path(p).name.split(".")[0] for p in paths})
    which = f"no longer in the suite or matching --jobs '{args.jobs}'" if args.jobs else "no longer in the suite"
    print(f"{suite.name}: {'would remove' if args.dry_run else 'removed'} {len(paths)} files of {jobs} jobs {which}")
    return 0
