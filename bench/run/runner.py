"""Execute jobs: data → model (train or load) → method → maps → metrics → rows.

Jobs whose rows exist are skipped; a failing job leaves a failure record and the run goes on.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from bench.aggregates import aggregate_values
from bench.errors import GradBenchError, SuiteError
from bench.job import Job, MetricSpec, canonical_json
from bench.methods import Method, create_method
from bench.methods.base import default_chunk_size, input_gradient
from bench.metrics import Metric, MetricContext, create_metric
from bench.models.build import recipe_data, scored_model, trained_model
from bench.models.fingerprint import numerics_fingerprint
from bench.models.train import TrainedModel
from bench.provenance import (
    allow_tf32,
    device_name,
    git_commit,
    package_version,
    package_versions,
    resolve_device,
)
from bench.run.cost import PassCounter, paired_bound_seconds
from bench.run.maps import MapsFile
from bench.run.maps import for_job as maps_for_job
from bench.run.maps import has as has_maps
from bench.run.maps import write as write_maps
from bench.run.results import ResultStore, SideRows, join
from bench.suite import Suite


@dataclass
class RunReport:
    total: int
    skipped: int
    done: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    claimed: list[str] = field(default_factory=list)  # labels of jobs another live runner is computing


CLAIMED = "claimed by another runner"


class ConstantMapsError(GradBenchError):
    """Every map of a job is constant: the method said nothing, so no metric may score it."""

    def __init__(self, n_constant_maps: int):
        self.n_constant_maps = n_constant_maps
        super().__init__(f"all {n_constant_maps} maps are constant on their inputs (n_constant_maps = "
                         f"{n_constant_maps}): the method explains nothing; check its parameters")


def constant_maps(maps: torch.Tensor) -> torch.Tensor:
    """Per input, whether its map has all elements equal (zeros included): such a map explains
    nothing, and some metrics (EF: 0 for a constant map) would rank it first."""
    flat = maps.detach().flatten(1)
    return (flat == flat[:, :1]).all(1)


@dataclass
class JobInputs:
    """A job's batch before explaining: its model, inputs, targets and masks on the device."""

    model: nn.Module  # scored as the job asks (logit or log-softmax)
    trained: TrainedModel
    x: torch.Tensor
    y: torch.Tensor
    target: torch.Tensor
    masks: torch.Tensor | None
    x_range: tuple[torch.Tensor, torch.Tensor]


@dataclass
class Explained:
    """A job's batch as the metrics see it: constant maps' inputs left out, with what explaining cost."""

    x: torch.Tensor
    y: torch.Tensor
    target: torch.Tensor
    masks: torch.Tensor | None
    maps: torch.Tensor
    kept_inputs: torch.Tensor  # the kept inputs' indices in the batch (CPU): the samples' indices
    n_constant: int
    seconds: float  # the method's wall time
    passes: int  # rows through the model while explaining
    bound_seconds: float = float("nan")  # those rows at the plain-pass rate timed right after (cost.py)


def matches(name: str, pattern: str) -> bool:
    """``--jobs``' rule for a label: the pattern itself, or an fnmatch of it. A label is taken literally
    too, since its ``[activation]`` would read as a character class."""
    return name == pattern or fnmatch.fnmatch(name, pattern)


def select_jobs(suite: Suite, pattern: str | None) -> list[Job]:
    """The suite's jobs whose label :func:`matches` ``pattern`` or whose id starts with it (all for None):
    what ``--jobs`` selects, in ``bench run``, ``bench verify`` and ``bench prune``."""
    jobs = [j for j in suite.jobs if pattern is None or matches(j.label, pattern) or j.id.startswith(pattern)]
    if pattern is not None and not jobs:
        raise SuiteError(f"no job of suite '{suite.name}' matches --jobs '{pattern}' "
                         "(labels look like dataset/model[activation]/seedN/method)")
    return jobs


class Runner:
    def __init__(self, results_root: Path | str = "results", device: str = "auto",
                 chunk_size: int | None = None, progress: bool = True, fast: bool = False,
                 data_root: Path | str | None = None, save_maps: str | None = None):
        self.results_root = results_root  # a local folder or a URI (bench.run.results.join joins both)
        self.device = resolve_device(device)
        self.fast = fast  # TF32 on CUDA while a job runs (allow_tf32); recorded in the rows
        self.chunk_size = chunk_size
        self.progress = progress
        self.data_root = data_root  # where dataset files lie (None: $GRADBENCH_DATA or the cache)
        self.save_maps = save_maps  # a dtype (bench.run.maps.DTYPES): write each job's maps beside its rows
        self._models: dict[tuple[str, str], TrainedModel] = {}
        self._warm: set[tuple] = set()  # (recipe, perturbation, output, chunk shape) already warmed up

    def model_for(self, recipe, perturbation: str = "") -> TrainedModel:
        """The recipe's trained model, or with ``perturbation`` its perturbed copy (bench.models.perturb)."""
        key = (recipe.hash, perturbation)
        if key not in self._models:
            self._models[key] = trained_model(recipe, self.device, progress=self.progress,
                                              data_root=self.data_root, perturbation=perturbation)
        return self._models[key]

    def scored(self, recipe, output: str) -> nn.Module:
        """The recipe's trained model in eval mode, scores as the job asks, no parameter grads."""
        return scored_model(self.model_for(recipe).model, output)  # trained_model prepared it

    def job_inputs(self, job: Job) -> JobInputs:
        """The job's model and test inputs on the device, with its targets (``bench score`` uses it too)."""
        data = recipe_data(job.recipe, self.data_root)
        if job.samples > len(data.x_test):
            raise ValueError(f"job asks for {job.samples} samples; {job.dataset} has {len(data.x_test)} test images")
        # A perturbed job's model is the perturbed one; the twins metrics load stay as trained (load_model).
        trained = self.model_for(job.recipe, job.model_perturbation)
        dev = self.device
        x, y = data.x_test[: job.samples].to(dev), data.y_test[: job.samples].to(dev)
        masks = data.masks_test[: job.samples].to(dev) if data.masks_test is not None else None
        model = scored_model(trained.model, job.output)
        if job.target == "predicted":
            with torch.no_grad():  # not inference_mode: the target takes part in the gradient graphs
                target = model(x).argmax(1)
        else:
            target = y
        return JobInputs(model, trained, x, y, target, masks, (data.x_min.to(dev), data.x_max.to(dev)))

    def execute(self, job: Job) -> tuple[list[dict[str, Any]], pd.DataFrame, dict[str, SideRows], MapsFile | None]:
        """The job's rows, per-sample values and side tables, and its maps file when ``save_maps``."""
        inputs = self.job_inputs(job)
        self._warm_up(job, inputs)
        generator = torch.Generator(device=self.device).manual_seed(job.seed)
        # Method.__call__ checks the maps (shape, dtype, device, finite), naming the job's label
        method = create_method(job.method, **job.method_params).labelled(job.method_label or job.method)
        ex = self._explain(method, inputs.model, inputs.x, inputs.y, inputs.target, inputs.masks,
                           inputs.x_range, generator)
        saved = (maps_for_job(job, inputs.trained.weights_digest, ex.maps, ex.kept_inputs, ex.n_constant,
                              generator, self.save_maps) if self.save_maps else None)
        return *self.score_explained(job, inputs, ex, method, generator), saved

    def _first_chunk(self, n_inputs: int) -> int:
        """Rows in the first pass a method makes over ``n_inputs`` inputs: what the warm-up and the paired
        bound time."""
        return min(n_inputs, self.chunk_size or default_chunk_size(self.device))

    def _warm_up(self, job: Job, inputs: JobInputs) -> None:
        """One untimed input-gradient pass per model, output and chunk shape before the first job's timing,
        as ``calibrate`` warms up before it times the bound: the first pass of a process pays its kernels'
        selection and allocations, which would otherwise fall on whichever job ran first. No draw, no
        state: the model is in eval mode and the pass's gradient is dropped."""
        chunk = self._first_chunk(len(inputs.x))
        key = (job.recipe.hash, job.model_perturbation, job.output, tuple(inputs.x[:chunk].shape))
        if key not in self._warm:
            self._warm.add(key)
            input_gradient(inputs.model, inputs.x[:chunk], inputs.target[:chunk], chunk)

    def score_explained(self, job: Job, inputs: JobInputs, ex: Explained, method: Any,
                        generator: torch.Generator, metrics: tuple[MetricSpec, ...] | None = None
                        ) -> tuple[list[dict[str, Any]], pd.DataFrame, dict[str, SideRows]]:
        """The job's metrics (or ``metrics``) on explained maps: the runner's own, or maps saved earlier
        (``bench score``), which thus go through the very same context and rows."""
        ctx = MetricContext(inputs.model, ex.x, ex.y, ex.target, ex.maps, method, inputs.x_range, ex.masks,
                            generator, self.chunk_size, recipe=job.recipe,
                            load_model=lambda r: self.scored(r, job.output))
        base = self._row_base(job, inputs.trained)
        rows, samples, tables = [], [], {}
        for spec in job.metrics if metrics is None else metrics:
            row, frame, metric = self._score(job, spec, ctx, base, ex)
            tables.update({t.name: t for t in metric.side_tables})
            rows.append(row)
            samples.append(frame)
        # Each side table a metric emitted (declared: Metric.__call__ checks), with the job's id.
        side = {name: (tables[name].schema, pd.DataFrame({"job_id": job.id, **columns}))
                for name, columns in ctx.side.items()}
        return rows, pd.concat(samples, ignore_index=True), side

    def _explain(self, method: Method, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 target: torch.Tensor, masks: torch.Tensor | None, x_range: tuple[torch.Tensor, torch.Tensor],
                 generator: torch.Generator) -> Explained:
        """The method's maps of the batch, timed and with its passes counted; inputs whose map is
        constant are left out of everything the metrics see."""
        dev = self.device
        t0 = time.perf_counter()
        with PassCounter(model) as passes:
            maps = method(model, x, target, x_range=x_range, generator=generator, chunk_size=self.chunk_size)
        maps = maps.detach()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        explain_s = time.perf_counter() - t0
        chunk = self._first_chunk(len(x))
        bound_s = paired_bound_seconds(model, x, target, chunk, passes.rows) if passes.rows else 0.0

        # Constant maps leave every metric, all metrics alike (twins and re-explaining metrics see the
        # same inputs): subset before the context is built. Sample indices stay those of the batch.
        constant = constant_maps(maps)
        n_constant = int(constant.sum())
        if n_constant == len(maps):
            raise ConstantMapsError(n_constant)
        kept_inputs = torch.arange(len(maps))[~constant.cpu()]
        if n_constant:
            sel = kept_inputs.to(dev)
            x, y, target, maps = x[sel], y[sel], target[sel], maps[sel]
            masks = masks[sel] if masks is not None else None
        return Explained(x, y, target, masks, maps, kept_inputs, n_constant, explain_s, passes.rows, bound_s)

    def _score(self, job: Job, spec: MetricSpec, ctx: MetricContext, base: dict[str, Any],
               ex: Explained) -> tuple[dict[str, Any], pd.DataFrame, Metric]:
        """One metric on the explained batch: its row (the aggregate and its standard error over the
        inputs it scored; NaN = excluded), the per-sample values, and the metric (its side tables)."""
        metric = create_metric(spec.name, **spec.params)
        t1 = time.perf_counter()
        values = metric(ctx).detach().double().cpu()  # checked by Metric.__call__; NaN = excluded
        metric_s = time.perf_counter() - t1
        kept = ~torch.isnan(values)
        index = ex.kept_inputs[kept]
        values = values[kept]
        n = len(values)
        row = {**base, "metric": spec.name, "metric_params": canonical_json(spec.params),
               "direction": metric.direction, "category": metric.category,
               "aggregate": metric.aggregate,  # how value was made (bench.aggregates)
               "value": (ctx.reported if metric.aggregate == "reported"
                         else float(aggregate_values(metric.aggregate, values.numpy()))),
               "stderr": (values.std(unbiased=True) / n**0.5).item() if n > 1 else 0.0,
               "n": n, "n_constant_maps": ex.n_constant, "explain_seconds": ex.seconds,
               "explain_passes": ex.passes, "explain_bound_seconds": ex.bound_seconds,
               "metric_seconds": metric_s}
        frame = pd.DataFrame({"job_id": job.id, "metric": spec.name, "sample": index.numpy(), "value": values.numpy()})
        return row, frame, metric

    def _row_base(self, job: Job, trained: TrainedModel) -> dict[str, Any]:
        r = job.recipe
        return {
            "job_id": job.id, "schema_version": 1, "suite": job.suite, "dataset": r.dataset,
            "dataset_params": canonical_json(r.dataset_params), "model": r.architecture,
            "activation": r.activation, "model_seed": r.seed, "model_hash": r.hash,
            "model_recipe": r.to_json(), "model_accuracy": trained.accuracy,
            "model_epochs": trained.epochs, "model_test_accuracy": trained.test_accuracy,
            "model_train_accuracy": trained.train_accuracy,
            "model_weights_digest": trained.weights_digest,
            "model_perturbation": job.model_perturbation, "model_perturbation_sigma": trained.perturbation_sigma,
            "method": job.method, "method_label": job.method_label or job.method,
            "method_params": canonical_json(job.method_params), "seed": job.seed,
            "samples": job.samples, "target": job.target, "output": job.output,
            "device": device_name(self.device), "numerics": numerics_fingerprint(self.device),
            "fast": self.fast, "bench_version": package_version("gradbench"),
            "torch_version": torch.__version__, "package_versions": package_versions(),
            "git_commit": git_commit(), "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def store(self, suite: Suite) -> ResultStore:
        return ResultStore(join(self.results_root, suite.name))

    def run(self, suite: Suite, pattern: str | None = None, dry_run: bool = False,
            executor: str = "local", address: str | None = None, num_gpus: float | None = None) -> RunReport:
        store = self.store(suite)
        jobs = select_jobs(suite, pattern)
        todo = [j for j in jobs if not self._done(store, j)]
        report = RunReport(total=len(jobs), skipped=len(jobs) - len(todo))
        if dry_run:
            return report
        store.remove_stale_temporaries()
        if executor == "ray":
            from bench.run.ray import run_on_ray

            task = partial(run_on_worker, results_root=str(self.results_root), chunk_size=self.chunk_size,
                           fast=self.fast, data_root=self.data_root, save_maps=self.save_maps)
            outcomes = run_on_ray(task, todo, store, address, num_gpus if num_gpus is not None else suite.num_gpus,
                                  self.device, self.progress)
        elif executor == "local":
            outcomes = (self.run_job(job, store) for job in
                        tqdm(todo, desc=suite.name, unit="job", disable=not self.progress))
        else:
            raise ValueError(f"unknown executor '{executor}'; use 'local' or 'ray'")
        for job, error in outcomes:
            if error == CLAIMED:
                report.claimed.append(job.label)
            elif error is None:
                report.done.append(job.id)
            else:
                report.failed.append((job.label, error))
        return report

    def _done(self, store: ResultStore, job: Job) -> bool:
        """The job's rows exist (and, when saving maps, its maps: a job run without them runs again)."""
        return store.has(job) and (not self.save_maps or has_maps(store, job.id))

    def run_job(self, job: Job, store: ResultStore) -> tuple[Job, str | None]:
        """Execute one job and write its rows, or its failure record; never raises. A job another live
        runner has claimed (or finished since this run listed its jobs) is left to it: error CLAIMED."""
        if not store.claim(job):
            return job, CLAIMED
        try:
            if self._done(store, job):  # done by another runner between our listing and our claim
                return job, CLAIMED
            with allow_tf32(self.fast):  # TF32 changes gradients at the 1e-3 level: only when asked
                rows, samples, side, saved = self.execute(job)
            if saved is not None:  # before the rows: they mark the job done
                write_maps(store, job.id, job.label, saved)
            store.write(job, rows, samples, side)
            return job, None
        except Exception as e:  # recorded; the other jobs go on
            store.write_failure(job, e)
            return job, f"{type(e).__name__}: {e}"
        finally:
            store.release(job)  # after the job's files are written


def run_on_worker(job: Job, store_root: str, device: str, *, results_root: str, chunk_size: int | None,
                  fast: bool, data_root: Path | str | None, save_maps: str | None = None) -> tuple[Job, str | None]:
    """One job in a worker process (the Ray executor's task): a runner of its own, no progress bars."""
    runner = Runner(results_root, device=device, chunk_size=chunk_size, progress=False, fast=fast,
                    data_root=data_root, save_maps=save_maps)
    return runner.run_job(job, ResultStore(store_root))
