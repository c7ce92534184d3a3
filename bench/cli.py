"""``bench``: argument parsing only; the work happens in the modules it calls."""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import os
import sys
from pathlib import Path

from bench.errors import GradBenchError


def _cmd_list(args: argparse.Namespace) -> int:
    from bench import registry
    from bench.suite import SUITES_DIR, load_suite

    if args.kind == "suites":
        for p in sorted(SUITES_DIR.glob("*.toml")):
            s = load_suite(str(p))
            print(f"{p.stem:28s} {len(s.jobs):5d} jobs  {s.description}")
        return 0
    reg = registry.REGISTRIES[args.kind]
    for name in reg.list(args.pattern):
        e = reg.get(name)
        extra = f"[{e.meta['direction']}, {e.meta['category']}] " if "direction" in e.meta else ""
        print(f"{name:28s} {extra}{e.description}")
    return 0


def _set_data_root(args: argparse.Namespace) -> None:
    # An environment variable, not a dataset parameter: where the files lie is no part of a recipe's hash.
    if getattr(args, "data_root", None):
        os.environ["GRADBENCH_DATA"] = str(Path(args.data_root).expanduser().resolve())


def _cmd_run(args: argparse.Namespace) -> int:
    from bench.runner import Runner
    from bench.suite import load_suite

    _set_data_root(args)
    suite = load_suite(args.suite)
    runner = Runner(args.results, device=args.device, chunk_size=args.chunk_size,
                    progress=not args.quiet)
    report = runner.run(suite, pattern=args.jobs, dry_run=args.dry_run)
    todo = report.total - report.skipped
    if args.dry_run:
        print(f"{suite.name}: {report.total} jobs, {report.skipped} already done, {todo} to run "
              f"(results in {Path(args.results) / suite.name})")
        return 0
    print(f"{suite.name}: {len(report.done)} ran, {report.skipped} already done, "
          f"{len(report.failed)} failed (results in {Path(args.results) / suite.name})")
    for label, err in report.failed:
        print(f"  FAILED {label}: {err}", file=sys.stderr)
    return 1 if report.failed else 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from bench.leaderboard import render
    from bench.results import load_rows

    suites = args.suites or ["default"]
    rows = load_rows(*(Path(args.results) / s for s in suites))
    command = "bench leaderboard " + " ".join(suites)
    Path(args.out).write_text(render(rows, suites, command), encoding="utf-8")
    print(f"wrote {args.out} ({rows['job_id'].nunique()} jobs, {len(rows)} rows)")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from bench.models.train import get_model
    from bench.provenance import resolve_device
    from bench.suite import load_suite

    _set_data_root(args)
    suite = load_suite(args.suite)
    recipes = {j.recipe.hash: j.recipe for j in suite.jobs}
    if args.twins:  # the split-agreement partners too, so a GPU box can train everything up front
        from bench.metrics.agreement import twin_changes

        for r in list(recipes.values()):
            t = dataclasses.replace(r, **twin_changes(r))
            recipes.setdefault(t.hash, t)
    device = resolve_device(args.device)
    for r in recipes.values():
        if args.jobs and not fnmatch.fnmatch(f"{r.dataset}/{r.architecture}[{r.activation}]", args.jobs):
            continue
        m = get_model(r, device, progress=not args.quiet)
        split = f" split {r.split_index}/{r.split_factor}" if r.split_factor > 1 else ""
        print(f"{r.hash}  {r.dataset}/{r.architecture}[{r.activation}] seed {r.seed}{split}: "
              f"held-out acc {m.accuracy:.3f} after {m.epochs} epochs ({m.precision}), "
              f"test acc {m.test_accuracy:.3f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench", description="GradBench: benchmark gradient explanations")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a suite's jobs (skips those already done)")
    r.add_argument("suite", help="suite name (registry/suites/NAME.toml) or path")
    r.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default auto)")
    r.add_argument("--jobs", metavar="PATTERN", help="only jobs whose label matches (fnmatch) or id prefix")
    r.add_argument("--dry-run", action="store_true", help="print the job count and what is cached")
    r.add_argument("--results", default="results", help="results root (default results/)")
    r.add_argument("--chunk-size", type=int, default=None, help="rows per forward/backward pass")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument("--data-root", help="where downloaded datasets live (default $GRADBENCH_DATA)")
    r.set_defaults(func=_cmd_run)

    lb = sub.add_parser("leaderboard", help="render leaderboard.md from results")
    lb.add_argument("suites", nargs="*", help="suite names (default: default)")
    lb.add_argument("--results", default="results")
    lb.add_argument("--out", default="leaderboard.md")
    lb.set_defaults(func=_cmd_leaderboard)

    ls = sub.add_parser("list", help="list registered methods, metrics, models, datasets or suites")
    ls.add_argument("kind", choices=["methods", "metrics", "models", "datasets", "suites"])
    ls.add_argument("pattern", nargs="?", default="*", help="shell wildcard, e.g. '*grad*'")
    ls.set_defaults(func=_cmd_list)

    t = sub.add_parser("train", help="train (or load from cache) every model a suite needs")
    t.add_argument("suite", help="suite name (registry/suites/NAME.toml) or path")
    t.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]; bf16 autocast on CUDA")
    t.add_argument("--jobs", metavar="PATTERN", help="only models whose dataset/architecture[activation] matches")
    t.add_argument("--twins", action="store_true", help="also train the split-agreement twin of each model")
    t.add_argument("--data-root", help="where downloaded datasets live (default $GRADBENCH_DATA)")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=_cmd_train)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except GradBenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
