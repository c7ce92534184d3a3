"""``bench run``: execute a suite's jobs, locally or on Ray; exit ``EXIT_JOBS_FAILED`` (1) when any job
failed, after every other job ran, with the count of failed jobs in the last line."""

from __future__ import annotations

import argparse
import sys

from bench.cli.common import EXIT_BAD_INPUT, EXIT_JOBS_FAILED, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="run a suite's jobs (skips those already done)",
                       epilog=f"exit status: 0 when every job ran or was done already; {EXIT_JOBS_FAILED} when any "
                              "job failed (the others still run; the last line gives the count; failed jobs are "
                              f"in RESULTS/SUITE/_failures/ and run again next time); {EXIT_BAD_INPUT} when the "
                              "suite, a parameter value or a flag is refused (nothing runs, --dry-run included)")
    r.add_argument("suite", help="suite name (registry/suites/NAME.toml) or path")
    r.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default auto)")
    r.add_argument("--jobs", metavar="PATTERN", help="only jobs whose label matches (fnmatch) or id prefix")
    r.add_argument("--dry-run", action="store_true", help="print the job count and what is cached")
    r.add_argument("--results", default="results", help="results root (default results/)")
    r.add_argument("--chunk-size", type=positive_int, default=None,
                   help="rows per forward/backward pass (a positive integer)")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument("--estimate", action="store_true",
                   help="with --dry-run: passes per input and estimated time per job (quick calibration)")
    r.add_argument("--executor", default="local", choices=["local", "ray"], help="where jobs run (default local)")
    r.add_argument("--address", default=None, help="with --executor ray: cluster address (default: start locally)")
    r.add_argument("--num-gpus", type=float, default=None,
                   help="with --executor ray: GPUs per job (default: the suite's num_gpus, else 1 when CUDA "
                        "is present, else 0)")
    r.add_argument("--fast", action="store_true", help="allow TF32 on CUDA (recorded in the rows)")
    r.add_argument("--data-root", help="where downloaded datasets live (default $GRADBENCH_DATA)")
    r.add_argument("--save-maps", action="store_true", help="keep each job's maps in RESULTS/SUITE/_maps/ "
                   "(for bench score); jobs done without them run again")
    r.add_argument("--maps-dtype", default="float32", choices=["float32", "float16"],
                   help="with --save-maps: dtype of the saved maps (default float32: bench score then gives "
                        "the run's numbers exactly)")
    r.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from bench.run.results import join
    from bench.run.runner import Runner
    from bench.suite import load_suite

    runner = Runner(args.results, device=args.device, chunk_size=args.chunk_size,
                    progress=not args.quiet, fast=args.fast, data_root=args.data_root,
                    save_maps=args.maps_dtype if args.save_maps else None)
    suite = load_suite(args.suite)
    report = runner.run(suite, pattern=args.jobs, dry_run=args.dry_run, executor=args.executor,
                        address=args.address, num_gpus=args.num_gpus)
    todo = report.total - report.skipped
    if args.dry_run:
        if args.estimate:
            from bench.run.cost import estimate_jobs, estimate_training
            from bench.run.runner import select_jobs

            jobs = select_jobs(suite, args.jobs)
            done = {j.id for j in jobs if runner.store(suite).has(j)}
            total = 0.0
            for e in estimate_jobs(jobs, runner.device, done, args.data_root):
                total += 0 if e.done else e.seconds
                print(f"{'done' if e.done else 'todo'}  {e.passes_per_input:6d} passes/input  "
                      f"~{e.seconds:8.2f} s  {e.label}")
            trains = estimate_training([j for j in jobs if j.id not in done], runner.device, args.data_root)
            for t in trains:
                print(f"{'cached' if t.cached else 'train '}  {t.steps:6d} steps        ~{t.seconds:8.2f} s  {t.label}")
            training = sum(t.seconds for t in trains)
            print(f"estimated explain time of the jobs to run: {total:.1f} s on {runner.device} "
                  "(calibrated input-gradient rate; metrics not included)")
            print(f"estimated training time of uncached models: {training:.1f} s (timed optimiser steps "
                  f"x max_epochs; an accuracy cap may stop sooner); total {total + training:.1f} s")
        print(f"{suite.name}: {report.total} jobs, {report.skipped} already done, {todo} to run "
              f"(results in {join(args.results, suite.name)})")
        return 0
    for label, err in report.failed:
        print(f"  FAILED {label}: {err}", file=sys.stderr)
    sys.stderr.flush()  # the failures above, the count last (scripts read the last line)
    claimed = f"{len(report.claimed)} left to another runner, " if report.claimed else ""
    status = f"; exit {EXIT_JOBS_FAILED}" if report.failed else ""
    print(f"{suite.name}: {len(report.done)} ran, {report.skipped} already done, {claimed}"
          f"{len(report.failed)} failed (results in {join(args.results, suite.name)}){status}", flush=True)
    return EXIT_JOBS_FAILED if report.failed else 0
