"""Results on disk: one Parquet file per job, written atomically, readable as one table.

Layout of ``results/<suite>/``:
    <job_id>.parquet            summary rows (one per metric): ``pd.read_parquet("results/<suite>")``
    _samples/<job_id>.parquet   per-sample values
    _spectra/<job_id>.parquet   mean radial power spectrum per job (for plots)
    _failures/<job_id>.json     error type and message of a failed job
Folders start with ``_`` so that pyarrow's dataset discovery (pandas, DuckDB globs) skips them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
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
    ("direction", pa.string()), ("category", pa.string()), ("value", pa.float64()),
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
SPECTRUM_SCHEMA = pa.schema([("job_id", pa.string()), ("bin", pa.int64()),
                             ("frequency", pa.float64()), ("power", pa.float64())])


def _atomic_write_bytes(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")  # '.': ignored by readers
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_table(table: pa.Table, path: Path) -> None:
    _atomic_write_bytes(path, lambda tmp: pq.write_table(table, tmp))


class ResultStore:
    """The results folder of one suite."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def rows_path(self, job: Job | str) -> Path:
        return self.root / f"{getattr(job, 'id', job)}.parquet"

    def has(self, job: Job) -> bool:
        path = self.rows_path(job)
        if not path.exists():
            return False
        try:
            pq.read_metadata(path)
            return True
        except Exception:  # truncated or corrupt: move aside and rerun the job
            aside = self.root / "_corrupt" / path.name
            aside.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, aside)
            return False

    def write(self, job: Job, rows: list[dict[str, Any]], samples: pd.DataFrame | None = None,
              spectrum: pd.DataFrame | None = None) -> None:
        # Side tables first: the rows file is the commit point that marks the job done.
        if samples is not None:
            write_table(pa.Table.from_pandas(samples, schema=SAMPLE_SCHEMA, preserve_index=False),
                        self.root / "_samples" / f"{job.id}.parquet")
        if spectrum is not None:
            write_table(pa.Table.from_pandas(spectrum, schema=SPECTRUM_SCHEMA, preserve_index=False),
                        self.root / "_spectra" / f"{job.id}.parquet")
        write_table(pa.Table.from_pylist(rows, schema=ROW_SCHEMA), self.rows_path(job))
        (self.root / "_failures" / f"{job.id}.json").unlink(missing_ok=True)

    def write_failure(self, job: Job, error: BaseException) -> None:
        record = {"job_id": job.id, "label": job.label, "error_type": type(error).__name__,
                  "message": str(error), "schema_version": SCHEMA_VERSION}
        path = self.root / "_failures" / f"{job.id}.json"
        _atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2)))

    def remove_stale_temporaries(self) -> int:
        """Delete temporary files a killed writer left behind (call before any writer starts)."""
        stale = list(self.root.glob("**/.*.tmp")) if self.root.exists() else []
        for p in stale:
            p.unlink(missing_ok=True)
        return len(stale)

    def failures(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted((self.root / "_failures").glob("*.json"))]


def load_rows(*roots: Path | str) -> pd.DataFrame:
    """All summary rows under the given suite folders, checked for the required columns."""
    frames = []
    for root in map(Path, roots):
        files = sorted(root.glob("*.parquet"))
        if not root.is_dir():
            raise ResultsError(f"no results folder {root}; run 'bench run {root.name}' first")
        for f in files:
            try:
                frame = pq.read_table(f).to_pandas()
            except Exception as e:
                raise ResultsError(f"{f} is not readable Parquet ({e}); delete it and rerun its suite") from None
            missing = [c for c in REQUIRED if c not in frame.columns]
            if missing:
                raise ResultsError(f"{f} lacks column(s) {', '.join(missing)}; it was written by another "
                                   f"schema: delete it and rerun 'bench run {root.name}'")
            frames.append(frame)
    if not frames:
        raise ResultsError(f"no result rows in {', '.join(map(str, roots))}; run 'bench run SUITE' first")
    return pd.concat(frames, ignore_index=True)


def digest(rows: pd.DataFrame) -> str:
    """sha256 over the canonical sorted (job_id, metric, value, stderr, n): changes iff a number does."""
    keyed = rows.sort_values(["job_id", "metric"])[["job_id", "metric", "value", "stderr", "n"]]
    h = hashlib.sha256()
    for r in keyed.itertuples(index=False):
        h.update(f"{r.job_id}|{r.metric}|{float(r.value)!r}|{float(r.stderr)!r}|{int(r.n)}\n".encode())
    return h.hexdigest()
