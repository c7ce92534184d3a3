"""``bench``: argument parsing only; the work happens in the modules it calls."""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import sys
from pathlib import Path
from typing import NoReturn

from bench.errors import GradBenchError, SuiteError


def _cmd_list(args: argparse.Namespace) -> int:
    from bench import registry
    from bench.suite import load_suite, suites_dir

    if args.kind == "suites":
        for p in sorted(suites_dir().glob("*.toml")):
            s = load_suite(str(p))
            print(f"{p.stem:30s} {len(s.jobs):5d} jobs  {s.description}")
        return 0
    reg = registry.REGISTRIES[args.kind]
    for name in reg.list(args.pattern):
        e = reg.get(name)
        extra = f"[{e.meta['direction']}, {e.meta['category']}] " if "direction" in e.meta else ""
        print(f"{name:28s} {extra}{e.description}")
    if args.kind == "metrics":
        print(f"{'quantus:<Class>':28s} any Quantus metric class by name, with its keyword parameters "
              "(e.g. quantus:FaithfulnessCorrelation)")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
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

            jobs = runner.select(suite, args.jobs)
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
    claimed = f"{len(report.claimed)} left to another runner, " if report.claimed else ""
    print(f"{suite.name}: {len(report.done)} ran, {report.skipped} already done, {claimed}"
          f"{len(report.failed)} failed (results in {join(args.results, suite.name)})")
    for label, err in report.failed:
        print(f"  FAILED {label}: {err}", file=sys.stderr)
    return 1 if report.failed else 0


def _cmd_report(args: argparse.Namespace) -> int:
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
    print(f"{'track':40s} {'method':36s} {'passes/in':>9s} {'rows/s':>9s} {'bound':>9s} {'ratio':>6s}")
    for r in pass_report(rows, resolve_device(args.device)):
        track = f"{r['dataset']}/{r['model']}[{r['activation']}]"
        print(f"{track:40s} {r['method']:36s} {r['passes_per_input']:9d} {r['achieved_rows_per_s']:9.0f} "
              f"{r['bound_rows_per_s']:9.0f} {r['ratio']:6.2f}")
    print("bound: best input-gradient rows/s over chunk sizes on this device, measured now; "
          "compare only with runs made on the same device")
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


def _cmd_leaderboard(args: argparse.Namespace) -> int:
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


def _cmd_plot(args: argparse.Namespace) -> int:
    from bench.board import load_board_config, result_roots
    from bench.board.build import current_only
    from bench.board.plots import make_plots
    from bench.run.results import load_rows

    suites = args.suites or list(load_board_config().suites)
    roots = result_roots(args.results, suites)
    (rows,), notes = current_only(args.results, suites, load_rows(*roots))
    made, plot_notes = make_plots(rows, roots, Path(args.out or Path(args.results) / "plots"),
                             saliency=not args.no_saliency)
    for note in notes + plot_notes:
        print(f"note: {note}", file=sys.stderr)
    for _, path in made:
        print(path)
    return 0


def _cmd_cite(args: argparse.Namespace) -> int:
    from bench.board import bibtex, load_board_config, result_roots
    from bench.run.results import load_rows

    suites = args.suites or list(load_board_config().suites)
    from bench.board.build import current_only

    (rows,), notes = current_only(args.results, suites, load_rows(*result_roots(args.results, suites)))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(bibtex(rows, suites), end="")
    return 0


def _cmd_prune(args: argparse.Namespace) -> int:
    from bench.run import maps
    from bench.run.results import ResultStore, join, prune
    from bench.suite import load_suite

    suite = load_suite(args.suite)
    current = {j.id for j in suite.jobs}
    paths = prune(join(args.results, suite.name), current, dry_run=args.dry_run)
    paths += maps.prune(ResultStore(join(args.results, suite.name)), current, dry_run=args.dry_run)
    for p in paths:
        print(f"{'would remove' if args.dry_run else 'removed'} {p}")
    jobs = len({Path(p).name.split(".")[0] for p in paths})
    print(f"{suite.name}: {'would remove' if args.dry_run else 'removed'} {len(paths)} files of {jobs} jobs "
          "no longer in the suite")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from bench.score import score, write_rows
    from bench.suite import load_suite

    loaded, result = score(args.maps, load_suite(args.suite), method_label=args.method_label, track=args.track,
                           results=args.results, device=args.device, chunk_size=args.chunk_size,
                           data_root=args.data_root, progress=not args.quiet)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(result.table(loaded.source, loaded.sha256))
    if args.out:
        write_rows(args.out, result.rows)
        print(f"wrote {len(result.rows)} rows to {args.out}")
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
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


def _cmd_train(args: argparse.Namespace) -> int:
    from bench.models.build import trained_model
    from bench.provenance import resolve_device
    from bench.suite import load_suite

    device = resolve_device(args.device)
    suite = load_suite(args.suite)
    recipes = {j.recipe.hash: j.recipe for j in suite.jobs}
    if args.twins:  # the split-agreement partners too, so a GPU box can train everything up front
        from bench.metrics.agreement import twin_changes

        for r in list(recipes.values()):
            t = dataclasses.replace(r, **twin_changes(r))
            recipes.setdefault(t.hash, t)
    for r in recipes.values():
        if args.jobs and not fnmatch.fnmatch(f"{r.dataset}/{r.architecture}[{r.activation}]", args.jobs):
            continue
        m = trained_model(r, device, progress=not args.quiet, data_root=args.data_root)
        split = f" split {r.split_index}/{r.split_factor}" if r.split_factor > 1 else ""
        print(f"{r.hash}  {r.dataset}/{r.architecture}[{r.activation}] seed {r.seed}{split}: "
              f"held-out acc {m.accuracy:.3f} after {m.epochs} epochs ({m.precision}), "
              f"test acc {m.test_accuracy:.3f}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from bench.suite import load_suite
    from bench.verify import verify

    suite = load_suite(args.suite)
    checks = verify(suite, args.results, sample=args.sample, seed=args.seed, device=args.device,
                    data_root=args.data_root, progress=not args.quiet)
    for check in checks:
        print(check.line(args.rtol))
    bad = sum(not c.equal(args.rtol) for c in checks)
    print(f"{suite.name}: {len(checks) - bad} of {len(checks)} jobs reproduced from an empty cache "
          f"(rtol {args.rtol:g})")
    return 0 if bad == 0 else 1


class _Parser(argparse.ArgumentParser):
    """Usage mistakes as one line (argparse prints the usage block first), naming where help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} ({self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bench", description="GradBench: benchmark gradient explanations")
    p.add_argument("--registry", metavar="DIR", help="registry folder (default: $GRADBENCH_REGISTRY, else "
                   "./registry, else the copy installed with the package)")
    sub = p.add_subparsers(dest="command", required=True)
    # One function per subcommand; the order of these calls is the order `bench --help` lists them in.
    _add_run_parser(sub)
    _add_leaderboard_parser(sub)
    _add_plot_parser(sub)
    _add_cite_parser(sub)
    _add_submit_parser(sub)
    _add_score_parser(sub)
    _add_list_parser(sub)
    _add_report_parser(sub)
    _add_prune_parser(sub)
    _add_verify_parser(sub)
    _add_train_parser(sub)
    return p


def _add_run_parser(sub: argparse._SubParsersAction) -> None:
    """`bench run`: execute a suite's jobs, locally or on Ray."""
    r = sub.add_parser("run", help="run a suite's jobs (skips those already done)")
    r.add_argument("suite", help="suite name (registry/suites/NAME.toml) or path")
    r.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default auto)")
    r.add_argument("--jobs", metavar="PATTERN", help="only jobs whose label matches (fnmatch) or id prefix")
    r.add_argument("--dry-run", action="store_true", help="print the job count and what is cached")
    r.add_argument("--results", default="results", help="results root (default results/)")
    r.add_argument("--chunk-size", type=_positive_int, default=None,
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
    r.set_defaults(func=_cmd_run)


def _add_leaderboard_parser(sub: argparse._SubParsersAction) -> None:
    """`bench leaderboard`: render the board from results."""
    lb = sub.add_parser("leaderboard", help="render leaderboard.md and its HTML page from results")
    lb.add_argument("suites", nargs="*", help="suite names (default: the suites of registry/board.toml)")
    lb.add_argument("--results", default="results")
    lb.add_argument("--out", default=None, help="the board file (default: leaderboard.md for the suites of "
                    "registry/board.toml, else RESULTS/boards/SUITES/leaderboard.md); plots go beside it")
    lb.add_argument("--no-plots", action="store_true", help="render the board without drawing plots")
    lb.add_argument("--no-saliency", action="store_true", help="skip the saliency grids (they recompute maps)")
    lb.add_argument("--no-html", action="store_true", help="skip the static HTML page (default: "
                    "RESULTS/board/index.html for the published board, else beside --out as .html)")
    lb.set_defaults(func=_cmd_leaderboard)


def _add_plot_parser(sub: argparse._SubParsersAction) -> None:
    """`bench plot`: the board's plots alone."""
    pl = sub.add_parser("plot", help="draw the board's plots into RESULTS/plots/")
    pl.add_argument("suites", nargs="*", help="suite names (default: the suites of registry/board.toml)")
    pl.add_argument("--results", default="results")
    pl.add_argument("--out", default=None, help="folder for the PNGs (default RESULTS/plots)")
    pl.add_argument("--no-saliency", action="store_true", help="skip the saliency grids (they recompute maps)")
    pl.set_defaults(func=_cmd_plot)


def _add_cite_parser(sub: argparse._SubParsersAction) -> None:
    """`bench cite`: BibTeX for the board version and results digest."""
    c = sub.add_parser("cite", help="print BibTeX naming the board version and results digest")
    c.add_argument("suites", nargs="*", help="suite names (default: the suites of registry/board.toml)")
    c.add_argument("--results", default="results")
    c.set_defaults(func=_cmd_cite)


def _add_submit_parser(sub: argparse._SubParsersAction) -> None:
    """`bench submit`: validate, run and rank a new method (or withdraw one)."""
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
    sm.set_defaults(func=_cmd_submit)


def _add_score_parser(sub: argparse._SubParsersAction) -> None:
    """`bench score`: a suite's metrics on saved maps."""
    sc = sub.add_parser("score", help="compute a suite's metrics on maps saved elsewhere (.npz/.npy/.parquet)")
    sc.add_argument("maps", help="a maps file (.npz with maps and indices, .npy, .parquet with index and map "
                                 "columns), a _maps/JOB.json index, or the id of a job run with --save-maps")
    sc.add_argument("--suite", required=True, help="suite name (registry/suites/NAME.toml) or path")
    sc.add_argument("--method-label", help="the name of the method that made the maps (default: the file's)")
    sc.add_argument("--track", help="the maps' track, dataset/model[activation]/seedN (a pattern, or a model "
                                    "hash prefix), when the file does not say and the suite has several")
    sc.add_argument("--results", default="results", help="results root where a job id's saved maps lie")
    sc.add_argument("--out", help="also write the rows (the runner's schema) to this Parquet file")
    sc.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default auto)")
    sc.add_argument("--chunk-size", type=_positive_int, default=None, help="rows per forward/backward pass")
    sc.add_argument("--data-root", help="where downloaded datasets live (default $GRADBENCH_DATA)")
    sc.add_argument("--quiet", action="store_true", help="no progress bars")
    sc.set_defaults(func=_cmd_score)


def _add_list_parser(sub: argparse._SubParsersAction) -> None:
    """`bench list`: what the registry holds."""
    ls = sub.add_parser("list", help="list registered methods, metrics, models, datasets or suites")
    ls.add_argument("kind", choices=["methods", "metrics", "models", "datasets", "suites"])
    ls.add_argument("pattern", nargs="?", default="*", help="shell wildcard, e.g. '*grad*'")
    ls.set_defaults(func=_cmd_list)


def _add_report_parser(sub: argparse._SubParsersAction) -> None:
    """`bench report`: throughput against the calibrated bound, or the suite's claims."""
    rp = sub.add_parser("report", help="achieved passes/second per method vs the calibrated bound")
    rp.add_argument("suite", nargs="?", help="suite name; with --claims and none, every suite in registry/board.toml")
    rp.add_argument("--results", default="results")
    rp.add_argument("--device", default="auto")
    rp.add_argument("--claims", action="store_true", help="judge the suite's [[claims]] on its results")
    rp.add_argument("--markdown", action="store_true", help="with --claims: the README table of verdicts")
    rp.set_defaults(func=_cmd_report)


def _add_prune_parser(sub: argparse._SubParsersAction) -> None:
    """`bench prune`: drop results of jobs a suite no longer defines."""
    pr = sub.add_parser("prune", help="remove results of jobs no longer in a suite's definition")
    pr.add_argument("suite")
    pr.add_argument("--results", default="results")
    pr.add_argument("--dry-run", action="store_true", help="list the files, remove nothing")
    pr.set_defaults(func=_cmd_prune)


def _add_verify_parser(sub: argparse._SubParsersAction) -> None:
    """`bench verify`: retrain and rerun a sample of jobs against the committed rows."""
    v = sub.add_parser("verify", help="retrain and rerun a sample of a suite's jobs from an empty cache "
                                      "and compare with the committed rows")
    v.add_argument("suite", help="suite name (registry/suites/NAME.toml) or path")
    v.add_argument("--sample", type=_positive_int, default=6, help="how many jobs (default 6, spread across models)")
    v.add_argument("--seed", type=int, default=0, help="seed of the job sample (default 0)")
    v.add_argument("--rtol", type=float, default=0.0, help="relative difference still counted equal (default 0)")
    v.add_argument("--results", default="results", help="results root holding the committed rows")
    v.add_argument("--device", default="cpu", help="cpu | cuda[:N] (default cpu: the committed rows' device)")
    v.add_argument("--data-root", help="where downloaded datasets live (default $GRADBENCH_DATA)")
    v.add_argument("--quiet", action="store_true", help="no progress bars")
    v.set_defaults(func=_cmd_verify)


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    """`bench train`: train (or load) every model a suite needs."""
    t = sub.add_parser("train", help="train (or load from cache) every model a suite needs")
    t.add_argument("suite", help="suite name (registry/suites/NAME.toml) or path")
    t.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]; bf16 autocast on CUDA")
    t.add_argument("--jobs", metavar="PATTERN", help="only models whose dataset/architecture[activation] matches")
    t.add_argument("--twins", action="store_true", help="also train the split-agreement twin of each model")
    t.add_argument("--data-root", help="where downloaded datasets live (default $GRADBENCH_DATA)")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=_cmd_train)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.registry:
            from bench.registry import use_registry_dir

            use_registry_dir(args.registry)
        return args.func(args)
    except (GradBenchError, ValueError, FileNotFoundError) as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)  # one line, whatever the message
        return 2


if __name__ == "__main__":
    sys.exit(main())
