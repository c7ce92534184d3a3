"""Results on disk: one Parquet file per job, written atomically, readable as one table.

A results location is a local folder or any URI pyarrow or fsspec opens (``s3://bucket/results``,
``gs://…``, ``memory://…``): Ray workers on many machines write to one shared location.

Layout of ``results/<suite>/``:
    <job_id>.parquet            summary rows (one per metric): ``pd.read_parquet("results/<suite>")``
    _samples/<job_id>.parquet   per-sample values
    _<table>/<job_id>.parquet   side tables the job's metrics declare and emit, e.g. _spectra (ef's mean
                                radial power spectrum per job, for plots)
    _failures/<job_id>.json     error type and message of a failed job
    _maps/<job_id>.json         with ``bench run --save-maps``: the job's maps, in ``_maps/<sha256>.npz``
                                (bench.run.maps; ``bench score`` reads them)
    _claims/<job_id>.claim      a runner is computing the job now (pid, host, time); removed when its
                                files are written, so concurrent runners on one folder split the work
Folders start with ``_`` so that pyarrow's dataset discovery (pandas, DuckDB globs) skips them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
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
    ("model_test_accuracy", pa.float64()), ("model_train_accuracy", pa.float64()),
    ("method", pa.string()), ("method_label", pa.string()),
    ("method_params", pa.string()), ("metric", pa.string()), ("metric_params", pa.string()),
    ("direction", pa.string()), ("category", pa.string()), ("aggregate", pa.string()), ("value", pa.float64()),
    ("stderr", pa.float64()), ("n", pa.int64()), ("seed", pa.int64()), ("samples", pa.int64()),
    ("target", pa.string()), ("output", pa.string()), ("device", pa.string()), ("fast", pa.bool_()),
    ("explain_seconds", pa.float64()), ("explain_passes", pa.int64()), ("metric_seconds", pa.float64()),
    # the explain rows at the plain input-gradient rate timed right after the job (bench.run.cost):
    # the bound paired in time with explain_seconds; absent (NaN) in rows written before the column
    ("explain_bound_seconds", pa.float64()),
    ("bench_version", pa.string()), ("torch_version", pa.string()), ("package_versions", pa.string()),
    ("git_commit", pa.string()), ("created_at", pa.string()),
    ("n_constant_maps", pa.int64()),  # inputs left out of every metric: their map was constant
    ("model_weights_digest", pa.string()),  # bench.models.train.weights_digest of the model's weights
    # "" for a job on the model as trained; else the spec of its minor weight perturbation (a suite's
    # noise_resilience, bench.models.perturb) and the σ the accuracy-preserving search used
    ("model_perturbation", pa.string()), ("model_perturbation_sigma", pa.float64()),
    # bench.models.fingerprint.numerics_fingerprint of the device the job ran on: rows with equal
    # fingerprints reproduce bit for bit; "" in rows written before the column existed
    ("numerics", pa.string()),
])
REQUIRED = ("job_id", "suite", "dataset", "model", "activation", "method", "method_label", "metric",
            "value", "stderr", "n", "direction", "category")
SAMPLE_SCHEMA = pa.schema([("job_id", pa.string()), ("metric", pa.string()),
                           ("sample", pa.int64()), ("value", pa.float64())])
# A side table's rows of one job with their on-disk schema (declared by the metric that emits them).
SideRows = tuple[pa.Schema, pd.DataFrame]
# A claim older than this is stale even if its process cannot be tested (another host).
CLAIM_TIMEOUT_S = float(os.environ.get("GRADBENCH_CLAIM_TIMEOUT", 6 * 3600))


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
        if hasattr(error, "n_constant_maps"):  # bench.run.runner.ConstantMapsError
            record["n_constant_maps"] = error.n_constant_maps
        text = json.dumps(record, indent=2).encode()
        atomic_write(self.fs, self.path("_failures", f"{job.id}.json"), lambda out: out.write(text))

    def remove_stale_temporaries(self) -> int:
        """Delete temporary files a killed writer left behind (call before any writer starts)."""
        stale = _files(self.fs, self.base, ".tmp", recursive=True, hidden=True)
        for path in stale:
            self.fs.delete_file(path)
        return len(stale)

    def claim(self, job: Job, timeout_s: float = CLAIM_TIMEOUT_S) -> bool:
        """Claim ``job`` for this process; False when a live runner holds it. A claim is stale when its
        process is dead (same host) or, from another host (no pid to test), older than ``timeout_s``;
        and is then taken over. On a local disk the create is atomic (O_CREAT | O_EXCL); on other
        pyarrow/fsspec filesystems there is no exclusive create, so it is check-then-write: two
        runners starting one job within the same instant may both compute it (harmless: same rows)."""
        path = self.path("_claims", f"{job.id}.claim")
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time(),
                             "job_id": job.id}).encode()
        for _ in range(2):  # the second try after taking over a stale claim
            if isinstance(self.fs, pafs.LocalFileSystem):
                os.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
                try:
                    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    pass
                else:
                    with os.fdopen(fd, "wb") as f:
                        f.write(record)
                    return True
            elif self.fs.get_file_info(path).type != pafs.FileType.File:
                atomic_write(self.fs, path, lambda out: out.write(record))
                return True
            if not self._stale(path, timeout_s):
                return False
            with contextlib.suppress(Exception):  # another runner may be taking it over too
                self.fs.delete_file(path)
        return False

    def _stale(self, path: str, timeout_s: float) -> bool:
        try:
            with self.fs.open_input_stream(path) as f:
                held = json.loads(f.read())
        except FileNotFoundError:
            return True  # released between our create and our read
        except Exception:  # half-written by a runner killed mid-write, or unreadable
            held = {}
        if held.get("host") == socket.gethostname():  # this host: the process's life decides, however long
            try:
                os.kill(int(held["pid"]), 0)
                return False
            except ProcessLookupError:
                return True
            except PermissionError:
                return False  # alive, under another user
            except (KeyError, ValueError, TypeError):
                pass  # no pid recorded: the age decides
        return time.time() - float(held.get("time", 0)) > timeout_s

    def release(self, job: Job) -> None:
        with contextlib.suppress(FileNotFoundError, OSError):
            self.fs.delete_file(self.path("_claims", f"{job.id}.claim"))

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
            if "model_perturbation" not in frame.columns:  # written before the column existed: ordinary rows
                frame["model_perturbation"] = ""
            if "numerics" not in frame.columns:  # written before the column existed: kernels unrecorded
                frame["numerics"] = ""
            if "explain_bound_seconds" not in frame.columns:  # written before the column existed: unpaired
                frame["explain_bound_seconds"] = float("nan")
            frames.append(frame)
    if not frames:
        raise ResultsError(f"no result rows in {', '.join(map(str, roots))}; run 'bench run SUITE' first")
    return pd.concat(frames, ignore_index=True)


PERTURBATION = "model_perturbation"  # non-empty: the job ran on a perturbed copy of the model


def _perturbed(rows: pd.DataFrame) -> pd.Series:
    if PERTURBATION not in rows.columns:
        return pd.Series(False, index=rows.index)
    return rows[PERTURBATION].fillna("").astype(str) != ""


def ordinary_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of jobs on models as trained: what rankings and claims are made of (a frame without
    the ``model_perturbation`` column has only those)."""
    return rows[~_perturbed(rows)]


def perturbed_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of jobs on minor weight perturbations of the models (a suite's ``noise_resilience``)."""
    return rows[_perturbed(rows)]


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


def job_files(root: Path | str) -> dict[str, list[str]]:
    """Job id → every file of that job under a suite folder: summary rows, ``_samples`` and the other
    ``_<name>`` side tables (``_corrupt`` included), ``_failures``."""
    fs, base = filesystem(root)
    out: dict[str, list[str]] = {}
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    for i in infos:
        rel = i.path[len(base):].strip("/").split("/")
        if i.type != pafs.FileType.File or i.base_name.startswith(".") or len(rel) > 2:
            continue
        if len(rel) == 2 and not rel[0].startswith("_"):
            continue  # another folder (plots, a nested suite): not this suite's job files
        stem, dot, ext = i.base_name.partition(".")
        if dot and ext in ("parquet", "json"):
            out.setdefault(stem, []).append(i.path)
    return {k: sorted(v) for k, v in sorted(out.items())}


def stale_jobs(root: Path | str, current: set[str]) -> dict[str, list[str]]:
    """The files of jobs stored under ``root`` that are not in ``current`` (the suite's job ids now):
    results of an earlier definition of the suite, which must not pool with the current ones."""
    return {job: files for job, files in job_files(root).items() if job not in current}


def drop_jobs(frame: pd.DataFrame, jobs: set[str] | dict) -> pd.DataFrame:
    """``frame`` without the rows of ``jobs`` (a frame without a job_id column is returned as is)."""
    if frame.empty or "job_id" not in frame.columns or not jobs:
        return frame
    return frame[~frame["job_id"].isin(set(jobs))].reset_index(drop=True)


def ignored_note(n: int, suite: str) -> str:
    return f"ignored {n} results of jobs no longer in suite {suite} (bench prune {suite})"


def prune(root: Path | str, current: set[str], dry_run: bool = False) -> list[str]:
    """Delete (or with ``dry_run`` only list) the files of the jobs under ``root`` not in ``current``."""
    fs, _ = filesystem(root)
    paths = [p for files in stale_jobs(root, current).values() for p in files]
    if not dry_run:
        for p in paths:
            fs.delete_file(p)
    return paths
