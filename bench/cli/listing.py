"""``bench list``: what the registry holds."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    ls = sub.add_parser("list", help="list registered methods, metrics, models, datasets or suites")
    ls.add_argument("kind", choices=["methods", "metrics", "models", "datasets", "suites"])
    ls.add_argument("pattern", nargs="?", default="*", help="shell wildcard, e.g. '*grad*'")
    ls.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
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
