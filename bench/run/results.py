"""Results on disk: one Parquet file per job, written atomically, readable as one table.

A results location is a local folder or any URI pyarrow or fsspec opens (``s3://bucket/results``,
``gs://…``, ``memory://…``): Ray workers on many machines write to one shared location.

Layout of ``results/<suite>/``:
    <job_id>.parquet            summary rows (one per metric): ``pd.read_parquet("results/<suite>")``
    _samples/<job_id>.parquet   per-sample values
    _<table>/<job_id>.parquet   side tables the job's metrics declare and emit, e.g. _spectra (ef's mean
                                radial power spectrum per job, for plots)
    _failures/<job_id>.json     error type and message of a failed job
Folders start with ``_`` so that pyarrow's dataset discovery (pandas, DuckDB globs) skips them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from bench.errors import ResultsError
from bench.job import SCHEMA_VERSION, Job

ROW_SCHEMA = pa.schema([
    ("job_id", pa.string()), ("schema_version", pa.int32()), ("suite", pa.string()),
    ("dataset", pa.string()), ("dataset_params", pa.string()), ("model", pa.string()),
    ("activation", pa.string()), ("model_seed", pa.int64()), ("model_hash", pa.string()),
    ("model_recipe", pa.string()), ("model_accuracy", pa.float64()), ("model_epochs", pa.int64()),
    ("model_test_accuracy", pa.float64()), ("method", pa.string()), ("method_label", pa.string()),
    ("method_params", pa.string()), ("metric", pa.string()), ("metric_params", pa.string()),
    ("direction", pa.string()), ("category", pa.string()), ("aggregate", pa.string()), ("value", pa.float64()),
    ("stderr", pa.float64()), ("n", pa.int64()), ("seed", pa.int64()), ("samples", pa.int64()),
    ("target", pa.string()), ("output", pa.string()), ("device", pa.string()), ("fast", pa.bool_()),
    ("explain_seconds", pa.float64()), ("explain_passes", pa.int64()), ("metric_seconds", pa.float64()),
    ("bench_version", pa.string()), ("torch_version", pa.string()), ("package_versions", pa.string()),
    ("git_commit", pa.string()), ("created_at", pa.string()),
])
REQUIRED = ("job_id", "suite", "dataset", "model", "activation", "method", "method_label", "metric",
            "value", "stderr", "n", "direction", "category")
SAMPLE_SCHEMA = pa.schema([("job_id", pa.string()), ("metric", pa.string()),
                           ("sample", pa.int64()), ("value", pa.float64())])
# A side table's rows of one job with their on-disk schema (declared by the metric that emits them).
SideRows = tuple[pa.Schema, pd.DataFrame]


def is_uri(root: str | os.PathLike) -> bool:
    return "://" in os.fspath(root)


def join(root: str | os.PathLike, *parts: str) -> str | Path:
    """``root/part/…`` for a local folder (a Path) or a URI (a string: Path would fold ``s3://``)."""
    if is_uri(root):
        return "/".join([os.fspath(root).rstrip("/"), *parts])
    return Path(root).joinpath(*parts)


def filesystem(root: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """The filesystem and path of a results location: a local path, or a URI that pyarrow (file, s3,
    gs, hdfs, abfs) or fsspec (memory, gcs, az, sftp, … with their packages) opens."""
    text = os.fspath(root)
    if not is_uri(text):
        return pafs.LocalFileSystem(), Path(text).absolute().as_posix()
    try:
        return pafs.FileSystem.from_uri(text)
    except pa.ArrowInvalid as e:
        if "Unrecognized filesystem type" not in str(e):
            raise ResultsError(f"cannot open results location {text}: {e}") from None
    except Exception as e:  # credentials, bucket region, missing filesystem support
        raise ResultsError(f"cannot open results location {text}: {e}") from None
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(text)
    except (ImportError, ValueError) as e:
        raise ResultsError(f"cannot open results location {text}: {e}; give a local path or a URI that "
                           f"pyarrow or fsspec opens (s3://, gs://, memory://, …)") from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path.rstrip("/")


def _files(fs: pafs.FileSystem, folder: str, suffix: str, recursive: bool = False, hidden: bool = False) -> list[str]:
    """Paths of the files under ``folder`` ending in ``suffix``, sorted: the visible ones, or with
    ``hidden`` the ones whose name starts with '.' (a writer's temporaries)."""
    infos = fs.get_file_info(pafs.FileSelector(folder, recursive=recursive, allow_not_found=True))
    return sorted(i.path for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(suffix)
                  and i.base_name.startswith(".") == hidden)


def atomic_write(fs: pafs.FileSystem, path: str, write: Callable[[pa.NativeFile], object]) -> None:
    """Write to a hidden temporary beside ``path``, then move it into place: readers see the whole file
    or none (a rename on a local disk; on an object store the final object appears in one put)."""
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    tmp = f"{parent}/.{uuid.uuid4().hex}.tmp"  # '.': ignored by readers and dataset discovery
    try:
        with fs.open_output_stream(tmp) as out:
            write(out)
        fs.move(tmp, path)
    except BaseException:
        with contextlib.suppress(Exception):
            fs.delete_file(tmp)
        raise


def write_file(target: str | os.PathLike, data: bytes) -> None:
    """Atomically write ``data`` to a local path or URI."""
    fs, path = filesystem(target)
    atomic_write(fs, path, lambda out: out.write(data))


class ResultStore:
    """The results folder of one suite, on a local disk or any pyarrow/fsspec filesystem."""

    def __init__(self, root: Path | str):
        self.root = os.fspath(root) if is_uri(root) else Path(root)  # as given, for messages
        self.fs, self.base = filesystem(root)

    def path(self, *parts: str) -> str:
        return "/".join((self.base, *parts))

    def rows_path(self, job: Job | str) -> str:
        return self.path(f"{getattr(job, 'id', job)}.parquet")

    def has(self, job: Job) -> bool:
        path = self.rows_path(job)
        if self.fs.get_file_info(path).type != pafs.FileType.File:
            return False
        try:
            pq.read_metadata(path, filesystem=self.fs)
            return True
        except Exception:  # truncated or corrupt: move aside and rerun the job
            self.fs.create_dir(self.path("_corrupt"), recursive=True)
            self.fs.move(path, self.path("_corrupt", path.rsplit("/", 1)[1]))
            return False

    def write(self, job: Job, rows: list[dict[str, Any]], samples: pd.DataFrame | None = None,
              side: Mapping[str, SideRows] | None = None) -> None:
        """``side``: table name → (schema, rows), each written to ``_<name>/<job_id>.parquet``."""
        # Side tables first: the rows file is the commit point that marks the job done.
        if samples is not None:
            self._write_table(pa.Table.from_pandas(samples, schema=SAMPLE_SCHEMA, preserve_index=False),
                              self.path("_samples", f"{job.id}.parquet"))
        for name, (schema, frame) in (side or {}).items():
            self._write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False),
                              self.path(f"_{name}", f"{job.id}.parquet"))
        self._write_table(pa.Table.from_pylist(rows, schema=ROW_SCHEMA), self.rows_path(job))
        failure = self.path("_failures", f"{job.id}.json")
        if self.fs.get_file_info(failure).type == pafs.FileType.File:
            self.fs.delete_file(failure)

    def _write_table(self, table: pa.Table, path: str) -> None:
        atomic_write(self.fs, path, lambda out: pq.write_table(table, out))

    def write_failure(self, job: Job, error: BaseException) -> None:
        record = {"job_id": job.id, "label": job.label, "error_type": type(error).__name__,
                  "message": str(error), "schema_version": SCHEMA_VERSION}
        text = json.dumps(record, indent=2).encode()
        atomic_write(self.fs, self.path("_failures", f"{job.id}.json"), lambda out: out.write(text))

    def remove_stale_temporaries(self) -> int:
        """Delete temporary files a killed writer left behind (call before any writer starts)."""
        stale = _files(self.fs, self.base, ".tmp", recursive=True, hidden=True)
        for path in stale:
            self.fs.delete_file(path)
        return len(stale)

    def failures(self) -> list[dict[str, Any]]:
        out = []
        for path in _files(self.fs, self.path("_failures"), ".json"):
            with self.fs.open_input_stream(path) as f:
                out.append(json.loads(f.read()))
        return out


def load_rows(*roots: Path | str) -> pd.DataFrame:
    """All summary rows under the given suite folders (local paths or URIs), checked for the required columns."""
    frames = []
    for root in roots:
        fs, base = filesystem(root)
        if fs.get_file_info(base).type != pafs.FileType.Directory:
            raise ResultsError(f"no results folder {root}; run 'bench run {_name(root)}' first")
        for f in _files(fs, base, ".parquet"):
            try:
                frame = pq.read_table(f, filesystem=fs).to_pandas()
            except Exception as e:
                raise ResultsError(f"{f} is not readable Parquet ({e}); delete it and rerun its suite") from None
            missing = [c for c in REQUIRED if c not in frame.columns]
            if missing:
                raise ResultsError(f"{f} lacks column(s) {', '.join(missing)}; it was written by another "
                                   f"schema: delete it and rerun 'bench run {_name(root)}'")
            frames.append(frame)
    if not frames:
        raise ResultsError(f"no result rows in {', '.join(map(str, roots))}; run 'bench run SUITE' first")
    return pd.concat(frames, ignore_index=True)


def load_samples(*roots: Path | str) -> pd.DataFrame:
    """The per-sample values of the given suite folders (an empty frame if there are none)."""
    frames = []
    for root in roots:
        fs, base = filesystem(root)
        frames += [pq.read_table(f, filesystem=fs).to_pandas() for f in _files(fs, f"{base}/_samples", ".parquet")]
    if not frames:
        return SAMPLE_SCHEMA.empty_table().to_pandas()
    return pd.concat(frames, ignore_index=True)


def load_side(name: str, *roots: Path | str) -> pd.DataFrame:
    """The side table ``name`` (``_<name>/``) of the given suite folders (an empty frame if there is none)."""
    frames = []
    for root in roots:
        fs, base = filesystem(root)
        frames += [pq.read_table(f, filesystem=fs).to_pandas() for f in _files(fs, f"{base}/_{name}", ".parquet")]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _name(root: Path | str) -> str:
    return os.fspath(root).rstrip("/").rsplit("/", 1)[-1]


def digest(rows: pd.DataFrame) -> str:
    """sha256 over the canonical sorted (job_id, metric, value, stderr, n): changes iff a number does."""
    keyed = rows.sort_values(["job_id", "metric"])[["job_id", "metric", "value", "stderr", "n"]]
    h = hashlib.sha256()
    for r in keyed.itertuples(index=False):
        h.update(f"{r.job_id}|{r.metric}|{float(r.value)!r}|{float(r.stderr)!r}|{int(r.n)}\n".encode())
    return h.hexdigest()
