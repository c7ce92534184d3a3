"""``bench score``: a suite's metrics on saved maps."""

from __future__ import annotations

import argparse
import sys

from bench.cli.common import positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    sc.add_argument("--chunk-size", type=positive_int, default=None, help="rows per forward/backward pass")
    sc.add_argument("--data-root", help="where downloaded datasets live (default $GRADBENCH_DATA)")
    sc.add_argument("--quiet", action="store_true", help="no progress bars")
    sc.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
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
