"""The pass-count model: how many input rows a job pushes through the model, and how fast.

A *pass* is one input row through the model's forward (and, for gradients, its backward).
`count_passes` measures it with a forward pre-hook on a one-input run of the method, so it is
exact for every method whatever its loops; `calibrate` times a plain input-gradient pass at a few
chunk sizes and keeps the best rate — the bound a method's achieved rate is compared with.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from bench.methods import create_method
from bench.methods.base import input_gradient
from bench.models.build import initial_model, recipe_data, recipe_from_json, scored_model, untrained_model
from bench.models.train import HELD_OUT_FRACTION, _optimizer, checkpoint_path

CALIBRATION_CHUNKS = (16, 64, 256, 1024)
# Each chunk size is timed for at least this long, best of CALIBRATION_ROUNDS rounds: two passes after one
# warm-up (as before) read 4,300 rows/s where 5,500 were reachable, so methods seemed to beat their bound.
CALIBRATION_SECONDS = 0.25
CALIBRATION_ROUNDS = 3


class PassCounter:
    """Counts rows entering ``model.forward`` while active (``with PassCounter(model) as c``)."""

    def __init__(self, model: nn.Module):
        self.model, self.rows = model, 0

    def _hook(self, module: nn.Module, args: tuple) -> None:
        if args and isinstance(args[0], Tensor):
            self.rows += args[0].shape[0]

    def __enter__(self) -> PassCounter:
        self._handle = self.model.register_forward_pre_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()


def count_passes(method, model: nn.Module, x: Tensor, target: Tensor, x_range) -> int:
    """Rows through the model per input for ``method`` (measured on ``x[:1]``)."""
    with PassCounter(model) as c:
        method(model, x[:1], target[:1], x_range=x_range, generator=torch.Generator(x.device).manual_seed(0))
    return c.rows


@dataclass(frozen=True)
class Calibration:
    """Input-gradient rows/s per chunk size: the fastest plain pass, the bound a method is held to."""

    rates: dict[int, float]  # chunk size → rows/s

    @property
    def best_chunk(self) -> int:
        return max(self.rates, key=self.rates.get)

    @property
    def rows_per_second(self) -> float:
        return self.rates[self.best_chunk]

    def bound(self, rows: int) -> float:
        """The best rate of a chunk no larger than ``rows``: a job that pushes 64 rows in all cannot
        batch them as 256 (the smallest calibrated chunk where every chunk is larger)."""
        fitting = [rate for chunk, rate in self.rates.items() if chunk <= rows]
        return max(fitting) if fitting else self.rates[min(self.rates)]


def calibrate(model: nn.Module, x: Tensor, num_classes: int, chunks: Iterable[int] = CALIBRATION_CHUNKS,
              seconds: float = CALIBRATION_SECONDS, rounds: int = CALIBRATION_ROUNDS) -> Calibration:
    """Input-gradient throughput (rows/s) at each chunk size, each timed for ``seconds`` after a
    warm-up pass, the best of ``rounds``: the pass-count bound."""
    rates = {}
    for chunk in chunks:
        rows = x[torch.arange(chunk, device=x.device) % len(x)]
        target = torch.arange(chunk, device=x.device) % num_classes
        input_gradient(model, rows, target, chunk)  # warm-up
        best = 0.0
        for _ in range(rounds):
            _sync(x.device)
            t0, passes = time.perf_counter(), 0
            while passes == 0 or time.perf_counter() - t0 < seconds:
                input_gradient(model, rows, target, chunk)
                passes += 1
                _sync(x.device)
            best = max(best, chunk * passes / (time.perf_counter() - t0))
        rates[chunk] = best
    return Calibration(rates)


# A job's paired bound: the faster of this many plain passes over its first chunk, timed right after it.
PAIRED_BOUND_PASSES = 2


def paired_bound_seconds(model: nn.Module, x: Tensor, target: Tensor, chunk: int, rows: int) -> float:
    """Seconds ``rows`` would take at the plain input-gradient rate measured now, on one chunk of the
    job's own inputs (the faster of PAIRED_BOUND_PASSES passes): the bound paired in time with the job.
    ``calibrate`` at report time reads a host whose speed may have drifted by ±15% since the run."""
    xc, tc = x[:chunk], target[:chunk]
    best = math.inf
    for _ in range(PAIRED_BOUND_PASSES):
        _sync(x.device)
        t0 = time.perf_counter()
        input_gradient(model, xc, tc, len(xc))
        _sync(x.device)
        best = min(best, time.perf_counter() - t0)
    return rows * best / len(xc)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class JobEstimate:
    label: str
    passes_per_input: int
    seconds: float
    done: bool


def _probe(recipe, device: torch.device, data_root: str | Path | None = None):
    """An untrained model of the recipe (same cost as the trained one) and its dataset."""
    return untrained_model(recipe, device, data_root), recipe_data(recipe, data_root)


def estimate_jobs(jobs, device: torch.device, done: set[str], data_root: str | Path | None = None
                  ) -> list[JobEstimate]:
    """Per job: rows through the model per input for its method, and seconds at the calibrated rate."""
    calibrations: dict[tuple, Calibration] = {}
    out = []
    for job in jobs:
        r = job.recipe
        model, data = _probe(r, device, data_root)
        model = scored_model(model, job.output)
        x = data.x_test[:4].to(device)
        x_range = (data.x_min.to(device), data.x_max.to(device))
        key = (r.architecture, r.dataset, r.activation, job.output)
        if key not in calibrations:
            # an estimate, not a bound: a short calibration does (the report's is the careful one)
            calibrations[key] = calibrate(model, x, data.num_classes, seconds=0.05, rounds=1)
        passes = count_passes(create_method(job.method, **job.method_params), model, x,
                              data.y_test[:4].to(device), x_range)
        rows = passes * job.samples
        out.append(JobEstimate(job.label, passes, rows / calibrations[key].bound(rows), job.id in done))
    return out


@dataclass(frozen=True)
class TrainEstimate:
    recipe_hash: str
    label: str
    steps: int  # optimiser steps of max_epochs (an accuracy cap may stop earlier: an upper bound)
    seconds: float  # 0 when the model is cached
    cached: bool


def training_steps(recipe, n_train: int) -> int:
    """Optimiser steps of the recipe's max_epochs, counted as bench.models.train.train counts them."""
    n_fit = n_train - max(1, int(round(n_train * HELD_OUT_FRACTION)))
    draws = n_fit if recipe.match_steps else math.ceil(n_fit / recipe.split_factor)
    return math.ceil(draws / recipe.batch_size) * recipe.max_epochs


def seconds_per_step(recipe, data, device: torch.device, steps: int = 3) -> float:
    """Time a few optimiser steps of the recipe (its optimiser, batch size and autocast) on ``device``,
    after one warm-up step: the per-step cost of the architecture, as ``calibrate`` times passes."""
    model = initial_model(recipe, data).to(device).train()
    opt, sched = _optimizer(recipe, model, 1000)
    amp = recipe.amp and device.type == "cuda"
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else nullcontext
    idx = torch.arange(recipe.batch_size) % len(data.x_train)
    xb, yb = data.x_train[idx].to(device), data.y_train[idx].to(device)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()

    step()  # warm-up: allocations, cuDNN autotuning
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def estimate_training(jobs, device: torch.device, data_root: str | Path | None = None) -> list[TrainEstimate]:
    """Per model the jobs need (their recipes; metrics' twin models not included): 0 s when cached, else
    max_epochs × steps per epoch × the measured seconds per step. Held-out checks are not timed."""
    out, seen = [], set()
    for job in jobs:
        r = job.recipe
        if r.hash in seen:
            continue
        seen.add(r.hash)
        label = f"{r.dataset}/{r.architecture}[{r.activation}] seed {r.seed}"
        if checkpoint_path(r).exists():
            out.append(TrainEstimate(r.hash, label, 0, 0.0, True))
            continue
        data = recipe_data(r, data_root)
        steps = training_steps(r, len(data.x_train))
        out.append(TrainEstimate(r.hash, label, steps, steps * seconds_per_step(r, data, device), False))
    return out


def pass_report(rows, device: torch.device) -> list[dict]:
    """Achieved explain throughput per (track, method) vs the calibrated bound on this device: the best
    input-gradient rate at a chunk no larger than the rows one of the method's jobs pushes. A method that
    makes no pass through the model (the controls) has no bound: its ratio is None."""
    jobs = rows.drop_duplicates("job_id")
    report, calibrations = [], {}
    for (ds, arch, act, label), part in jobs.groupby(["dataset", "model", "activation", "method_label"]):
        recipe = recipe_from_json(part.iloc[0]["model_recipe"])
        if recipe.hash not in calibrations:
            model, data = _probe(recipe, device)
            calibrations[recipe.hash] = calibrate(model, data.x_test[:4].to(device), data.num_classes)
        cal = calibrations[recipe.hash]
        passes = int(part["explain_passes"].sum())
        rows_per_job = int(part["explain_passes"].max())
        achieved = passes / part["explain_seconds"].sum()
        bound = cal.bound(rows_per_job)
        report.append({"dataset": ds, "model": arch, "activation": act, "method": label,
                       "passes_per_input": int(part["explain_passes"].iloc[0] // part["n"].iloc[0]),
                       "achieved_rows_per_s": achieved if passes else None, "bound_rows_per_s": bound,
                       "ratio": achieved / bound if passes else None, "best_chunk": cal.best_chunk,
                       "paired_ratio": _paired_ratio(part) if passes else None})
    return report


def _paired_ratio(jobs) -> float | None:
    """Σ paired bound seconds / Σ explain seconds over a method's jobs on one track (each job's bound
    timed right after it, ``paired_bound_seconds``); None where a row predates the column."""
    if "explain_bound_seconds" not in jobs.columns or jobs["explain_bound_seconds"].isna().any():
        return None
    return float(jobs["explain_bound_seconds"].sum() / jobs["explain_seconds"].sum())
