"""Saved maps (``bench run --save-maps``): each job's maps beside its results, content-addressed.

Layout under ``results/<suite>/``:
    _maps/<sha256>.npz     the maps file, named by the sha256 of its bytes (never rewritten: a file
                           whose name is not its hash is damaged)
    _maps/<job_id>.json    the job's index: which maps file is its, with its label, dtype and shape

A maps file is a plain ``.npz`` (``np.load(path)``, no pickle) with the arrays
    maps             N×C×H×W, float32 (default) or float16 (``--maps-dtype``)
    indices          N int64: the inputs' indices in the dataset's test split, ascending; the inputs
                     whose map was constant are left out, as the runner leaves them out of every metric
    meta             a 0-d string holding JSON: format, job id and label, suite, method (label, name,
                     parameters), dataset (parameters), model (architecture, activation, seed, recipe
                     hash, weights digest), seed, samples, target, output, model_perturbation (empty:
                     the trained model), dtype, n_constant_maps
    generator_state  uint8: the job's generator right after the method drew from it (metrics that
                     draw random numbers, e.g. faithfulness_correlation, continue from it)
Its bytes depend only on the arrays (fixed zip timestamps), so a rerun that gives the same maps gives
the same file. Written like the Parquet files: a hidden temporary, then a move; the maps file before
its index, the index before the job's rows (the commit point of a job).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.fs as pafs
import torch

from bench.errors import ResultsError
from bench.job import Job
from bench.run.results import ResultStore, atomic_write

FORMAT = "gradbench-maps/1"
DTYPES = {"float32": np.float32, "float16": np.float16}
FOLDER = "_maps"


@dataclass(frozen=True)
class MapsFile:
    """A maps file's bytes and its name (the sha256 of the bytes)."""

    data: bytes
    meta: dict[str, Any]
    shape: tuple[int, ...]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def encode(maps: np.ndarray, indices: np.ndarray, meta: dict[str, Any], dtype: str = "float32",
           generator_state: np.ndarray | None = None) -> MapsFile:
    """The ``.npz`` bytes of ``maps`` (cast to ``dtype``) with their indices and metadata."""
    if dtype not in DTYPES:
        raise ValueError(f"maps dtype '{dtype}'; use one of {', '.join(DTYPES)}")
    meta = {"format": FORMAT, **meta, "dtype": dtype}
    arrays = {"maps": np.ascontiguousarray(maps, dtype=DTYPES[dtype]),
              "indices": np.asarray(indices, dtype=np.int64),
              "meta": np.array(json.dumps(meta, sort_keys=True))}
    if generator_state is not None:
        arrays["generator_state"] = np.asarray(generator_state, dtype=np.uint8)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, array in arrays.items():
            # A fixed timestamp (np.savez stamps the time): the same maps make the same bytes and name.
            with z.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w") as f:
                np.lib.format.write_array(f, array, allow_pickle=False)
    return MapsFile(buf.getvalue(), meta, arrays["maps"].shape)


def index_path(store: ResultStore, job_id: str) -> str:
    return store.path(FOLDER, f"{job_id}.json")


def write(store: ResultStore, job_id: str, label: str, maps: MapsFile) -> str:
    """Write the maps file (if no file of that content exists) and then the job's index; returns the
    maps file's path."""
    path = store.path(FOLDER, f"{maps.sha256}.npz")
    if store.fs.get_file_info(path).type != pafs.FileType.File:
        atomic_write(store.fs, path, lambda out: out.write(maps.data))
    index = {"job_id": job_id, "label": label, "sha256": maps.sha256, "file": f"{maps.sha256}.npz",
             "dtype": maps.meta["dtype"], "shape": list(maps.shape)}
    text = json.dumps(index, indent=2, sort_keys=True).encode()
    atomic_write(store.fs, index_path(store, job_id), lambda out: out.write(text))
    return path


def has(store: ResultStore, job_id: str) -> bool:
    return store.fs.get_file_info(index_path(store, job_id)).type == pafs.FileType.File


def read_index(store: ResultStore, job_id: str) -> dict[str, Any]:
    """The index of a job's saved maps; ``job_id`` may be a unique prefix."""
    infos = store.fs.get_file_info(pafs.FileSelector(store.path(FOLDER), allow_not_found=True))
    ids = sorted(i.base_name[:-5] for i in infos if i.base_name.endswith(".json") and not i.base_name.startswith("."))
    found = [j for j in ids if j.startswith(job_id)]
    if len(found) != 1:
        what = "no job" if not found else f"{len(found)} jobs ({', '.join(found[:4])})"
        raise ResultsError(f"{what} with saved maps match '{job_id}' in {store.root}/{FOLDER}; give a job id "
                           "(prefix) of a job run with 'bench run SUITE --save-maps', or a maps file's path")
    with store.fs.open_input_stream(index_path(store, found[0])) as f:
        return json.loads(f.read())


def prune(store: ResultStore, keep: set[str], dry_run: bool = False) -> list[str]:
    """Delete (or list) the maps files no index of a job in ``keep`` names: those of pruned jobs."""
    infos = store.fs.get_file_info(pafs.FileSelector(store.path(FOLDER), allow_not_found=True))
    named = set()
    for i in infos:
        if i.base_name.endswith(".json") and i.base_name[:-5] in keep:
            with store.fs.open_input_stream(i.path) as f:
                named.add(json.loads(f.read()).get("file"))
    paths = sorted(i.path for i in infos if i.base_name.endswith(".npz") and not i.base_name.startswith(".")
                   and i.base_name not in named)
    if not dry_run:
        for p in paths:
            store.fs.delete_file(p)
    return paths


def for_job(job: Job, weights_digest: str | None, maps: torch.Tensor, indices: torch.Tensor, n_constant: int,
            generator: torch.Generator, dtype: str) -> MapsFile:
    """The maps file of a job: its kept inputs' maps and indices, what identifies it, its generator state."""
    r = job.recipe
    meta = {"job_id": job.id, "label": job.label, "suite": job.suite, "method": job.method,
            "method_label": job.method_label or job.method, "method_params": job.method_params,
            "dataset": r.dataset, "dataset_params": r.dataset_params, "model": r.architecture,
            "activation": r.activation, "model_seed": r.seed, "model_hash": r.hash,
            "model_weights_digest": weights_digest, "seed": job.seed, "samples": job.samples,
            "target": job.target, "output": job.output, "model_perturbation": job.model_perturbation,
            "n_constant_maps": n_constant,
            "generator_device": generator.device.type}
    return encode(maps.detach().cpu().numpy(), indices.cpu().numpy(), meta, dtype,
                  generator.get_state().numpy())
