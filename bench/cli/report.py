"""``bench report``: throughput against the calibrated bound, or the suite's claims."""

from __future__ import annotations

import argparse
import sys

from bench.errors import GradBenchError, SuiteError


def add_parser(sub: argparse._SubParsersAction) -> None:
    rp = sub.add_parser("report", help="achieved passes/second per method vs the calibrated bound")
    rp.add_argument("suite", nargs="?", help="suite name; with --claims and none, every suite in registry/board.toml")
    rp.add_argument("--results", default="results")
    rp.add_argument("--device", default="auto")
    rp.add_argument("--claims", action="store_true", help="judge the suite's [[claims]] on its results")
    rp.add_argument("--markdown", action="store_true", help="with --claims: the README table of verdicts")
    rp.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from bench.provenance import resolve_device
    from bench.run.cost import pass_report
    from bench.run.results import join, load_rows, ordinary_rows
    from bench.suite import load_suite

    if args.claims:
        return _report_claims(args)
    if not args.suite:
        raise SuiteError("bench report needs a suite name (only --claims judges every board suite)")
    from bench.board.build import current_only

    try:  # a suite path reads results/<its name>; a results-only suite, its folder
        name = load_suite(args.suite).name
    except GradBenchError:
        name = args.suite
    (rows,), notes = current_only(args.results, [args.suite], load_rows(join(args.results, name)))
    rows = ordinary_rows(rows)  # the perturbed models' jobs (noise_resilience) repeat the same methods
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{'track':40s} {'method':36s} {'passes/in':>9s} {'rows/s':>9s} {'bound':>9s} {'ratio':>6s} {'paired':>6s}")
    for r in pass_report(rows, resolve_device(args.device)):
        track = f"{r['dataset']}/{r['model']}[{r['activation']}]"
        achieved, ratio = ((f"{r['achieved_rows_per_s']:9.0f}", f"{r['ratio']:6.2f}") if r["ratio"] is not None
                           else (f"{'—':>9s}", f"{'—':>6s}"))
        paired = f"{r['paired_ratio']:6.2f}" if r["paired_ratio"] is not None else f"{'—':>6s}"
        print(f"{track:40s} {r['method']:36s} {r['passes_per_input']:9d} {achieved} "
              f"{r['bound_rows_per_s']:9.0f} {ratio} {paired}")
    print("bound: the best input-gradient rows/s on this device, measured now, at a chunk size no larger than "
          "the rows one job of the method pushes; ratio: rows/s over it (compare only with runs made on the "
          "same device); paired: the jobs' passes at the plain-pass rate timed right after each job, over "
          "their explain time (robust to the host's speed drifting between run and report); — : no pass "
          "through the model (a control), or rows written before the paired bound was recorded")
    return 0


def _report_claims(args: argparse.Namespace) -> int:
    from bench.board.config import load_board_config
    from bench.claims import format_markdown, format_verdicts, judge_suite
    from bench.suite import load_suite

    names = [args.suite] if args.suite else list(load_board_config().suites)  # no suite: the board's suites
    judged = [(name, judge_suite(load_suite(name), args.results)) for name in names]
    if args.markdown:
        print(format_markdown([(n, v) for n, v in judged if v]))
        return 0
    for name, verdicts in judged:
        if len(names) > 1:
            print(f"== {name}")
        print(format_verdicts(verdicts) if verdicts else f"suite '{name}' declares no [[claims]]")
    return 0
