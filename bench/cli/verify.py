"""``bench verify``: retrain and rerun a sample of jobs against the committed rows."""

from __future__ import annotations

import argparse

from bench.cli.common import EXIT_JOBS_FAILED, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser("verify", help="retrain and rerun a sample of a suite's jobs from an empty cache "
                                      "and compare with the committed rows")
    v.add_argument("suite", help="suite name (registry/suites/NAME.toml) or path")
    v.add_argument("--sample", type=positive_int, default=6, help="how many jobs (default 6, spread across models)")
    v.add_argument("--seed", type=int, default=0, help="seed of the job sample (default 0)")
    v.add_argument("--jobs", metavar="PATTERN", help="sample only jobs whose label matches (as bench run --jobs), "
                   "e.g. 'fashion-mnist/*'")
    v.add_argument("--rtol", type=float, default=0.0, help="relative difference still counted equal (default 0)")
    v.add_argument("--results", default="results", help="results root holding the committed rows")
    v.add_argument("--device", default="cpu", help="cpu | cuda[:N] (default cpu: the committed rows' device)")
    v.add_argument("--data-root", help="where downloaded datasets live (default $GRADBENCH_DATA)")
    v.add_argument("--quiet", action="store_true", help="no progress bars")
    v.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from bench.suite import load_suite
    from bench.verify import verify

    suite = load_suite(args.suite)
    checks = verify(suite, args.results, sample=args.sample, seed=args.seed, device=args.device,
                    data_root=args.data_root, progress=not args.quiet, pattern=args.jobs)
    for check in checks:
        print(check.line(args.rtol))
    bad = sum(not c.equal(args.rtol) for c in checks)
    print(f"{suite.name}: {len(checks) - bad} of {len(checks)} jobs reproduced from an empty cache "
          f"(rtol {args.rtol:g})")
    return 0 if bad == 0 else EXIT_JOBS_FAILED
