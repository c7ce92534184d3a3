"""``bench score MAPS --suite SUITE``: a suite's metrics on maps made elsewhere (Quantus issue #207).

MAPS is one of
- a maps file of ``bench run --save-maps`` (``results/<suite>/_maps/<sha256>.npz``), its job's index
  (``_maps/<job_id>.json``) or the job's id (prefix; looked up under ``--results``): it names its
  track (model recipe, samples, seed, target, output) and method label itself;
- a ``.npz`` with ``maps`` (N×C×H×W) and ``indices`` (N indices into the dataset's test split);
- a ``.npy`` of maps alone: the first N inputs (indices 0…N−1);
- a Parquet table with columns ``index`` (int) and ``map`` (the C×H×W map as a flat list, C-order),
  optionally ``shape`` (its [C, H, W]).
Maps without GradBench's metadata need ``--method-label`` and, in a suite of several tracks, ``--track``.

The maps go through the runner's own path (``Runner.job_inputs`` builds the same model and inputs,
``Runner.score_explained`` the same metric context and rows), so saved float32 maps score exactly as
the run that saved them. Metrics that explain again (``reexplains``), load twin models (``twins``) or
read the method's declarations (fidelity, inherent_noise) cannot be computed without the method: each
is reported as such and skipped. Nothing is written unless every check passes; then ``--out`` gets the
rows (the runner's schema; ``method = "saved_maps"``, ``method_params`` holding the file's sha256).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from bench.errors import GradBenchError
from bench.job import Job
from bench.metrics import Metric, create_metric
from bench.models.build import recipe_data
from bench.run.maps import DTYPES, FOLDER, read_index
from bench.run.results import ROW_SCHEMA, ResultStore, join, write_file
from bench.run.runner import ConstantMapsError, Explained, JobInputs, Runner, constant_maps
from bench.suite import Suite

MARKER = "saved_maps"  # the rows' ``method``: scores of saved maps, not of a registered method
HEX64 = re.compile(r"[0-9a-f]{64}")


class MapsError(GradBenchError):
    """Saved maps refused: one line naming the problem and the fix."""

    def __init__(self, source: object, message: str):
        super().__init__(f"maps refused: {source}: {message}")


class NotComputableError(GradBenchError):
    """A metric needs the method itself, which saved maps do not have."""


class SavedMapsMethod:
    """Stands in for the unknown method behind saved maps: a metric that calls it or reads any of its
    declarations (``unsmoothed``, ``input_noise``, …) raises NotComputableError, never a guess."""

    def __init__(self, label: str):
        self.name = self.label = label

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        raise NotComputableError("calls the method again")

    def __getattr__(self, name: str) -> Any:
        raise NotComputableError(f"reads the method's declaration '{name}'")


@dataclass
class LoadedMaps:
    maps: np.ndarray
    indices: np.ndarray | None  # None: the first N inputs
    sha256: str  # of the file's bytes
    source: str
    meta: dict[str, Any] = field(default_factory=dict)  # from bench run --save-maps; empty otherwise
    generator_state: np.ndarray | None = None
    flat: bool = False  # one flat C-order list per map (a Parquet table without a shape column)


@dataclass
class ScoreResult:
    rows: list[dict[str, Any]]
    skipped: list[tuple[str, str]]  # (metric, why it cannot be computed on saved maps)
    track: str
    label: str
    inputs: int  # inputs the maps cover (constant ones included)
    samples: int  # the track's inputs
    notes: list[str]

    def table(self, source: str, sha256: str) -> str:
        lines = [f"{source} (sha256 {sha256[:12]}…) as '{self.label}' on {self.track}: maps of {self.inputs} "
                 f"of the track's {self.samples} inputs",
                 f"{'metric':32s} {'value':>14s} {'stderr':>11s} {'n':>5s}  better"]
        for r in self.rows:
            lines.append(f"{r['metric']:32s} {r['value']:14.7g} {r['stderr']:11.4g} {r['n']:5d}  {r['direction']}")
        lines += [f"not computable for saved maps: {m} ({why})" for m, why in self.skipped]
        return "\n".join(lines)


# -- reading ------------------------------------------------------------------------------------
def load_maps(spec: str, suite: Suite, results: str | Path = "results") -> LoadedMaps:
    """The maps ``spec`` names: a file (.npz, .npy, .parquet, a job's .json index) or the id of a job
    whose maps lie under ``results`` (a folder or a URI)."""
    path = Path(spec)
    if path.is_file() and path.suffix == ".json":
        try:
            index = json.loads(path.read_text(encoding="utf-8"))
            blob = path.with_name(index["file"])
        except (ValueError, KeyError, TypeError) as e:
            raise MapsError(path, f"not a maps index of bench run --save-maps ({type(e).__name__}: {e})") from None
        return _indexed(index, str(blob), blob.read_bytes() if blob.is_file() else None)
    if path.is_file():
        return _parse(str(path), path.read_bytes())
    if not re.fullmatch(r"[0-9a-f]{4,16}", spec):
        raise MapsError(spec, "no such file; give a .npz, .npy or .parquet file, or the id of a job run "
                              "with --save-maps")
    store = ResultStore(join(results, suite.name))
    index = read_index(store, spec)
    where = store.path(FOLDER, str(index.get("file")))
    try:
        with store.fs.open_input_stream(where) as f:
            data = f.read()
    except FileNotFoundError:
        data = None
    return _indexed(index, where, data)


def _indexed(index: dict[str, Any], name: str, data: bytes | None) -> LoadedMaps:
    """The maps file a job's index names, once its bytes are those the index recorded."""
    if data is None:
        raise MapsError(name, f"missing, though the index of job {index.get('job_id')} names it; rerun the "
                              "job with --save-maps")
    loaded = _parse(name, data)
    if loaded.sha256 != index.get("sha256"):
        raise MapsError(name, f"damaged: its bytes hash to {loaded.sha256[:12]}…, the index records "
                              f"{str(index.get('sha256'))[:12]}…; rerun the job with --save-maps")
    return loaded


def _parse(name: str, data: bytes) -> LoadedMaps:
    sha = hashlib.sha256(data).hexdigest()
    stem, _, suffix = name.rpartition("/")[2].rpartition(".")
    suffix = f".{suffix}"
    if HEX64.fullmatch(stem) and stem != sha:  # a content-addressed file must be its name
        raise MapsError(name, f"damaged or truncated: named by its content hash, but its bytes hash to "
                              f"{sha[:12]}…; rerun the job with --save-maps")
    readers = {".npz": _read_npz, ".npy": _read_npy, ".parquet": _read_parquet}
    if suffix not in readers:
        raise MapsError(name, "unknown format; give a .npz (maps, indices), .npy (maps) or .parquet (index, map)")
    try:
        return readers[suffix](data, sha, name)
    except MapsError:
        raise
    except Exception as e:  # zip, npy header, Parquet footer: a truncated or foreign file
        raise MapsError(name, f"not a readable {suffix} file ({type(e).__name__}: {e})") from None


def _read_npz(data: bytes, sha: str, source: str) -> LoadedMaps:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        if "maps" not in z.files:
            raise MapsError(source, f"no 'maps' array (it has {', '.join(z.files) or 'none'}); save with "
                                    "np.savez(path, maps=maps, indices=indices)")
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"])) if "meta" in arrays else {}
    return LoadedMaps(arrays["maps"], arrays.get("indices"), sha, source, meta, arrays.get("generator_state"))


def _read_npy(data: bytes, sha: str, source: str) -> LoadedMaps:
    return LoadedMaps(np.load(io.BytesIO(data), allow_pickle=False), None, sha, source)


def _read_parquet(data: bytes, sha: str, source: str) -> LoadedMaps:
    table = pq.read_table(pa.BufferReader(data))
    missing = [c for c in ("index", "map") if c not in table.column_names]
    if missing:
        raise MapsError(source, f"no column(s) {', '.join(missing)} (it has {', '.join(table.column_names)}); "
                                "a row per input: index (int), map (flat list), optionally shape ([C, H, W])")
    maps = table.column("map").combine_chunks()
    if not pa.types.is_list(maps.type) and not pa.types.is_large_list(maps.type):
        raise MapsError(source, f"column 'map' is {maps.type}, not a list of floats (one flat map per row)")
    lengths = pc.list_value_length(maps).to_numpy(zero_copy_only=False)
    if len(set(lengths.tolist())) > 1:
        raise MapsError(source, f"maps of different lengths ({sorted(set(lengths.tolist()))[:4]}); every map "
                                "is one flat C×H×W list")
    flat = pc.list_flatten(maps).to_numpy(zero_copy_only=False)
    shapes = table.column("shape").to_pylist() if "shape" in table.column_names else []
    if shapes and any(s != shapes[0] for s in shapes):
        raise MapsError(source, "rows of different shapes; every map has the inputs' [C, H, W]")
    length = int(lengths[0]) if len(lengths) else 0
    shape = tuple(shapes[0]) if shapes else (length,)
    if math.prod(shape) != length:
        raise MapsError(source, f"shape {list(shape)} does not hold the maps' {length} values")
    return LoadedMaps(flat.reshape(len(table), *shape), table.column("index").to_numpy(), sha, source,
                      flat=not shapes)


# -- the track ----------------------------------------------------------------------------------
def tracks(suite: Suite) -> dict[str, Job]:
    """A job of each model the suite explains (every job of a suite shares samples, seed, target,
    output and metrics), by the name ``dataset/model[activation]/seedN`` (with the model hash when two
    recipes share a name); a noise-resilience copy of a model is a track of its own, ``…/perturbed``."""
    by_model: dict[tuple[str, str], Job] = {}
    for job in suite.jobs:
        by_model.setdefault((job.recipe.hash, job.model_perturbation), job)
    names = [j.label.rsplit("/", 1)[0] for j in by_model.values()]
    return {(n if names.count(n) == 1 else f"{n}#{j.recipe.hash[:8]}"): j
            for n, j in zip(names, by_model.values(), strict=True)}


def track_job(suite: Suite, loaded: LoadedMaps, pattern: str | None) -> tuple[str, Job]:
    """The track the maps belong to: the one their metadata names (a saved job's model, samples, seed,
    target, output), or the one ``--track`` matches; anything else is refused."""
    known = tracks(suite)
    listing = ", ".join(known)
    if loaded.meta:
        m = loaded.meta
        # The model perturbation too: maps of a perturbed copy scored on the trained model (or the
        # reverse) would mix two models' numbers, ΔEF's grad maps and the maps' own.
        found = [(n, j) for n, j in known.items() if j.recipe.hash == m.get("model_hash") and
                 (j.samples, j.seed, j.target, j.output, j.model_perturbation) ==
                 (m.get("samples"), m.get("seed"), m.get("target"), m.get("output"), m.get("model_perturbation", ""))]
        if not found:
            raise MapsError(loaded.source, f"made by job {m.get('label')} (model {str(m.get('model_hash'))[:8]}, "
                                           f"{m.get('samples')} samples, seed {m.get('seed')}), which matches no "
                                           f"track of suite '{suite.name}' ({listing})")
        if pattern is not None and not _matches(pattern, *found[0]):
            raise MapsError(loaded.source, f"made on track {found[0][0]}, but --track says '{pattern}'")
        return found[0]
    if pattern is None:
        if len(known) == 1:
            return next(iter(known.items()))
        raise MapsError(loaded.source, f"suite '{suite.name}' has {len(known)} tracks; say which the maps "
                                       f"belong to with --track (one of {listing})")
    found = [(n, j) for n, j in known.items() if _matches(pattern, n, j)]
    if len(found) != 1:
        what = "matches no track" if not found else f"matches {len(found)} tracks"
        raise MapsError(loaded.source, f"--track '{pattern}' {what} of suite '{suite.name}' ({listing})")
    return found[0]


def _matches(pattern: str, name: str, job: Job) -> bool:
    # A model hash prefix names the trained model's track, not its perturbed copy's.
    return fnmatch.fnmatchcase(name, pattern) or (not job.model_perturbation and job.recipe.hash.startswith(pattern))


# -- checks -------------------------------------------------------------------------------------
def checked(loaded: LoadedMaps, input_shape: tuple[int, ...], samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The maps (float32, in input order) and their indices, once shape, dtype, finiteness and the
    indices (integers, unique, among the track's inputs) pass; else one line naming the fix."""
    maps, src = loaded.maps, loaded.source
    if loaded.flat and maps.ndim == 2 and maps.shape[1] == math.prod(input_shape):
        maps = maps.reshape(len(maps), *input_shape)
    if maps.dtype.name not in DTYPES:
        raise MapsError(src, f"maps are {maps.dtype}; GradBench scores float32 (or float16) maps: "
                             "cast them (maps.astype(np.float32))")
    expected = (len(maps), *input_shape)
    if maps.ndim != 4 or maps.shape[1:] != tuple(input_shape):
        raise MapsError(src, f"maps have shape {tuple(maps.shape)}; the track's inputs are "
                             f"{'×'.join(map(str, input_shape))}, so expected {expected} (N×C×H×W)")
    if len(maps) == 0:
        raise MapsError(src, "no maps")
    bad = ~np.isfinite(maps).reshape(len(maps), -1)
    if bad.any():
        rows = np.flatnonzero(bad.any(1))
        raise MapsError(src, f"{int(bad.sum())} non-finite values (NaN/inf) in {len(rows)} maps (first: map "
                             f"{rows[0]}); every map must be finite")
    indices = np.arange(len(maps)) if loaded.indices is None else np.asarray(loaded.indices)
    if indices.ndim != 1 or len(indices) != len(maps):
        raise MapsError(src, f"{indices.size} indices for {len(maps)} maps; one index per map")
    if not np.issubdtype(indices.dtype, np.integer):
        raise MapsError(src, f"indices are {indices.dtype}; they must be integers (the inputs' indices in the "
                             "test split)")
    outside = indices[(indices < 0) | (indices >= samples)]
    if len(outside):
        raise MapsError(src, f"indices {', '.join(map(str, outside[:5].tolist()))} are outside the track's "
                             f"{samples} inputs (0…{samples - 1})")
    values, counts = np.unique(indices, return_counts=True)
    if (counts > 1).any():
        raise MapsError(src, f"index {values[counts > 1][0]} appears {counts.max()} times; one map per input")
    order = np.argsort(indices, kind="stable")  # input order, as the runner's batch: draws follow it
    return maps[order].astype(np.float32), indices[order].astype(np.int64)


def not_computable(metric: Metric) -> str | None:
    """Why ``metric`` cannot be scored on saved maps, from its declarations; None if it can."""
    if metric.reexplains:
        return "it explains again with the method"
    if metric.twins:
        return f"it needs twin models ({', '.join(metric.twins)})"
    return None


# -- scoring ------------------------------------------------------------------------------------
def score(spec: str, suite: Suite, *, method_label: str | None = None, track: str | None = None,
          results: str | Path = "results", device: str = "auto", chunk_size: int | None = None,
          data_root: str | Path | None = None, progress: bool = False) -> tuple[LoadedMaps, ScoreResult]:
    """Check the maps ``spec`` names and compute the suite's metrics on them (writes nothing)."""
    loaded = load_maps(spec, suite, results)
    name, job = track_job(suite, loaded, track)
    label = method_label or loaded.meta.get("method_label")
    if not label:
        raise MapsError(loaded.source, "no method label in the file; name the method that made the maps with "
                                       "--method-label NAME")
    data = recipe_data(job.recipe, data_root)
    maps, indices = checked(loaded, tuple(data.x_test.shape[1:]), job.samples)
    plan = [(m, not_computable(create_metric(m.name, **m.params))) for m in job.metrics]
    if all(why for _, why in plan):
        raise _nothing_computable(loaded, suite, [(m.name, why) for m, why in plan])

    runner = Runner(device=device, chunk_size=chunk_size, progress=progress, data_root=data_root)
    inputs = runner.job_inputs(job)
    notes = _notes(loaded, inputs.trained.weights_digest, runner.device, len(indices), job.samples)
    scored_job = dataclasses.replace(job, method=MARKER, method_label=label,
                                     method_params={"maps_sha256": loaded.sha256, "dtype": loaded.maps.dtype.name})
    ex = _explained(inputs, maps, indices, runner.device, int(loaded.meta.get("n_constant_maps", 0)))
    generator = torch.Generator(device=runner.device).manual_seed(job.seed)
    if loaded.generator_state is not None and loaded.meta.get("generator_device") == runner.device.type:
        generator.set_state(torch.from_numpy(loaded.generator_state.copy()))  # where the run's metrics began
    rows, skipped = [], []
    method = SavedMapsMethod(label)
    for m, why in plan:
        if why is None:
            try:
                rows += runner.score_explained(scored_job, inputs, ex, method, generator, metrics=(m,))[0]
            except NotComputableError as e:
                why = f"it {e}"
        if why is not None:
            skipped.append((m.name, why))
    if not rows:
        raise _nothing_computable(loaded, suite, skipped)
    for r in rows:  # the maps were made elsewhere: their cost is unknown
        r.update(explain_seconds=None, explain_passes=None, explain_bound_seconds=None)
    return loaded, ScoreResult(rows, skipped, name, label, len(indices), job.samples, notes)


def _nothing_computable(loaded: LoadedMaps, suite: Suite, skipped: list[tuple[str, str]]) -> MapsError:
    return MapsError(loaded.source, f"no metric of suite '{suite.name}' can be computed on saved maps "
                                    f"({'; '.join(f'{m}: {w}' for m, w in skipped)})")


def _explained(inputs: JobInputs, maps: np.ndarray, indices: np.ndarray, device: torch.device,
               n_saved_constant: int) -> Explained:
    """The batch the metrics see: the inputs the maps cover, in input order, constant maps left out as
    the runner leaves them out (``n_saved_constant``: those the saving run left out already)."""
    kept = torch.from_numpy(indices)
    t = torch.from_numpy(maps).to(device)
    constant = constant_maps(t).cpu()
    if constant.all():
        raise ConstantMapsError(int(constant.sum()))
    kept, t = kept[~constant], t[~constant.to(device)]
    sel = kept.to(device)
    masks = inputs.masks[sel] if inputs.masks is not None else None
    return Explained(inputs.x[sel], inputs.y[sel], inputs.target[sel], masks, t.contiguous(), kept,
                     n_saved_constant + int(constant.sum()), math.nan, 0)


def _notes(loaded: LoadedMaps, digest: str | None, device: torch.device, covered: int, samples: int) -> list[str]:
    notes = []
    saved_digest = loaded.meta.get("model_weights_digest")
    if saved_digest and digest and saved_digest != digest:
        notes.append(f"the maps were made with model weights {saved_digest[:12]}…, the model built now has "
                     f"{digest[:12]}… (trained elsewhere?): the scores are of other weights")
    if loaded.generator_state is not None and loaded.meta.get("generator_device") != device.type:
        notes.append(f"the maps were saved on {loaded.meta.get('generator_device')}, scored on {device.type}: "
                     "metrics that draw random numbers start from a fresh generator")
    if covered + int(loaded.meta.get("n_constant_maps", 0)) < samples:
        notes.append(f"the maps cover {covered} of the track's {samples} inputs: the scores are over those")
    return notes


def write_rows(out: str | Path, rows: list[dict[str, Any]]) -> None:
    """The rows as one Parquet file of the runner's schema, written atomically."""
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=ROW_SCHEMA), sink)
    write_file(out, sink.getvalue().to_pybytes())
