"""``bench train``: train (or load) every model a suite needs."""

from __future__ import annotations

import argparse
import dataclasses


def add_parser(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train (or load from cache) every model a suite needs")
    t.add_argument("suite", help="suite name (registry/suites/NAME.toml) or path")
    t.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]; bf16 autocast on CUDA")
    t.add_argument("--jobs", metavar="PATTERN", help="only models whose dataset/architecture[activation] matches")
    t.add_argument("--twins", action="store_true",
                   help="also train the split-agreement twin of each model a split-agreement metric compares")
    t.add_argument("--data-root", help="where downloaded datasets live (default $GRADBENCH_DATA)")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from bench.models.build import trained_model
    from bench.provenance import resolve_device
    from bench.run.runner import matches
    from bench.suite import load_suite

    device = resolve_device(args.device)
    suite = load_suite(args.suite)
    recipes = {j.recipe.hash: j.recipe for j in suite.jobs}
    if args.twins:  # the split-agreement partners too, so a GPU box can train everything up front
        from bench.metrics.agreement import twin_changes

        for r in [j.recipe for j in suite.jobs if _compares_pairs(j)]:
            t = dataclasses.replace(r, **twin_changes(r))
            recipes.setdefault(t.hash, t)
    for r in recipes.values():
        if args.jobs and not matches(f"{r.dataset}/{r.architecture}[{r.activation}]", args.jobs):
            continue
        m = trained_model(r, device, progress=not args.quiet, data_root=args.data_root)
        split = f" split {r.split_index}/{r.split_factor}" if r.split_factor > 1 else ""
        print(f"{r.hash}  {r.dataset}/{r.architecture}[{r.activation}] seed {r.seed}{split}: "
              f"held-out acc {m.accuracy:.3f} after {m.epochs} epochs ({m.precision}), "
              f"test acc {m.test_accuracy:.3f}")
    return 0


def _compares_pairs(job) -> bool:
    """Whether a metric of the job loads split agreement's twin (``twins`` kind "pair"): only those
    jobs' twins are trained up front (a suite without split agreement would otherwise train a
    second model of every recipe for nothing)."""
    from bench.metrics.base import create_metric

    return any("pair" in create_metric(m.name, **m.params).twins for m in job.metrics)
