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

CALIBRATION_CHUNKS = (16, 64, 256)


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
    rows_per_second: float
    best_chunk: int


def calibrate(model: nn.Module, x: Tensor, num_classes: int, chunks: Iterable[int] = CALIBRATION_CHUNKS,
              repeats: int = 2) -> Calibration:
    """Best input-gradient throughput (rows/s) over a few chunk sizes: the pass-count bound."""
    best = Calibration(0.0, 0)
    for chunk in chunks:
        rows = x[torch.arange(chunk, device=x.device) % len(x)]
        target = torch.arange(chunk, device=x.device) % num_classes
        input_gradient(model, rows, target, chunk)  # warm-up
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            input_gradient(model, rows, target, chunk)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        rate = chunk * repeats / (time.perf_counter() - t0)
        if rate > best.rows_per_second:
            best = Calibration(rate, chunk)
    return best


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
            calibrations[key] = calibrate(model, x, data.num_classes)
        passes = count_passes(create_method(job.method, **job.method_params), model, x,
                              data.y_test[:4].to(device), x_range)
        out.append(JobEstimate(job.label, passes, passes * job.samples / calibrations[key].rows_per_second,
                               job.id in done))
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
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
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
    """Achieved explain throughput per (track, method) vs the calibrated bound on this device."""
    jobs = rows.drop_duplicates("job_id")
    report = []
    for (ds, arch, act, label), part in jobs.groupby(["dataset", "model", "activation", "method_label"]):
        model, data = _probe(recipe_from_json(part.iloc[0]["model_recipe"]), device)
        bound = calibrate(model, data.x_test[:4].to(device), data.num_classes)
        achieved = part["explain_passes"].sum() / part["explain_seconds"].sum()
        report.append({"dataset": ds, "model": arch, "activation": act, "method": label,
                       "passes_per_input": int(part["explain_passes"].iloc[0] // part["n"].iloc[0]),
                       "achieved_rows_per_s": achieved, "bound_rows_per_s": bound.rows_per_second,
                       "ratio": achieved / bound.rows_per_second, "best_chunk": bound.best_chunk})
    return report
