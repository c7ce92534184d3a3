"""Accuracy-capped training with a checkpoint cache keyed by the recipe's hash.

SPEC.md: Adam (lr 3e-4, batch 256), stop at the first epoch whose held-out accuracy exceeds the
cap; that checkpoint is the model. ``optimizer="sgd"`` is SGD (momentum 0.9) with a per-step cosine
schedule over ``max_epochs``. The held-out set is the last 10% of the training set, carved off
before any split, so the models of every split factor are capped on the same images. On CUDA the
forward and loss run under bf16 autocast (``amp``; the precision used is stored with the weights).

Split factor: the model trains on part ``split_index`` of ``split_factor`` disjoint stratified parts
of the rest (:mod:`bench.data.splits`). With ``match_steps`` (default) an epoch is as many
optimiser steps as one pass over the *whole* training set takes, drawn from successive reshuffles
of the part, so an sf=8 model sees as many steps per epoch as an sf=1 model; fixed epochs over a
small part leave it badly undertrained. ``match_steps=false`` gives the paper's one pass per epoch.
At sf=1 both are the same. ``augment`` adds random padded crops and flips (the CIFAR recipe).

Every epoch is checkpointed (weights, optimiser, schedule and RNG states), so a killed training
resumes where it stopped, bit-identically; a cache hit loads the bytes that training wrote, so it
is bit-identical to retraining on CPU. This module trains and caches; building a recipe's network
and loading it onto a device is :mod:`bench.models.build`, the one path every caller takes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from bench.data import ImageDataset
from bench.data.splits import split_indices
from bench.data.vision import LOCATION_PARAMS
from bench.errors import GradBenchError
from bench.models.inference import accuracy

HELD_OUT_FRACTION = 0.1
# CPU training is not bit-identical across intra-op thread counts (oneDNN splits reductions by
# thread: 1 vs 2 threads moved a cnn-small's weights by up to 0.057), so training always runs on
# this many. 2: the committed models were trained on a 2-core machine, so its default thread count
# reproduces them, and 2 threads are available on every machine we run on (more would only be
# honoured where the cores exist, i.e. not reproducibly).
TRAINING_THREADS = 2
# Part of every recipe's hash: bump it whenever training's numerics change, so a cached checkpoint
# of the old numerics is never taken for the new one. 2: training runs on TRAINING_THREADS threads.
TRAINING_VERSION = 2
OPTIMIZERS = ("adam", "sgd")
SGD_MOMENTUM = 0.9


class TrainingError(GradBenchError):
    pass


@dataclass(frozen=True)
class Recipe:
    architecture: str
    dataset: str
    activation: str = "relu"
    dataset_params: dict[str, Any] = field(default_factory=dict)
    model_params: dict[str, Any] = field(default_factory=dict)
    accuracy_cap: float | None = None
    max_epochs: int = 20
    seed: int = 0
    optimizer: str = "adam"
    lr: float = 3e-4  # Adam's; SGD wants ~0.05–0.1
    batch_size: int = 256
    split_factor: int = 1  # train on the split_index-th of split_factor disjoint subsets
    split_index: int = 0
    input_shift: float = 0.0  # train on x + shift (AdaptGrad's invariance twin)
    split_seed: int = 0  # the partition's seed; pair members share it and differ in split_index
    match_steps: bool = True  # an epoch = the optimiser steps of one pass over the whole set
    weight_decay: float = 0.0
    amp: bool = True  # bf16 autocast when training on CUDA; ignored on CPU
    # Check the cap every k optimiser steps too, not only at epoch ends: with large epochs the first
    # passing epoch overshoots the cap by several points, unevenly across activations.
    cap_check_steps: int | None = None
    cap_required: bool = True  # False: a cap never reached keeps the final model (recorded), no error
    augment: bool = False  # random 4-pixel-padded crops and horizontal flips (CIFAR-style; not for digits)
    training_version: int = TRAINING_VERSION  # the numerics of train(); see TRAINING_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @property
    def hash(self) -> str:
        d = asdict(self)  # where the data lie (data_root, download) is no part of what the model is
        d["dataset_params"] = {k: v for k, v in d["dataset_params"].items() if k not in LOCATION_PARAMS}
        return hashlib.sha256(json.dumps(d, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


@dataclass
class TrainedModel:
    model: nn.Module
    recipe: Recipe
    accuracy: float  # held-out accuracy at the chosen epoch
    epochs: int
    test_accuracy: float
    precision: str = "fp32"  # "bf16-autocast" when trained under CUDA autocast
    history: tuple[float, ...] = ()  # held-out accuracy after each epoch
    train_accuracy: float | None = None  # on the images it trained on (None: cached before it was stored)
    weights_digest: str = ""  # weights_digest() of the trained weights, as cached
    # A minor weight perturbation of the trained model (bench.models.perturb; "" for the model as trained):
    # its canonical spec and the σ it used after the accuracy-preserving search; accuracies are the perturbed model's.
    perturbation: str = ""
    perturbation_sigma: float | None = None


_CACHE_OVERRIDE: list[Path] = []  # use_cache's stack: a folder passed explicitly, not through os.environ


@contextmanager
def use_cache(root: str | Path) -> Iterator[Path]:
    """Train into and load from ``root`` (a cache root, like ``$GRADBENCH_CACHE``) inside the block."""
    _CACHE_OVERRIDE.append(Path(root))
    try:
        yield Path(root)
    finally:
        _CACHE_OVERRIDE.pop()


@contextmanager
def training_numerics() -> Iterator[None]:
    """Training's fixed numerics: TRAINING_THREADS intra-op threads and torch's deterministic
    algorithms (warn-only: an op without one still runs); the caller's settings come back after."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(TRAINING_THREADS)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def weights_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 (16 hex digits) of the tensors' bytes in sorted key order, names and shapes included:
    the same weights give the same digest whatever the memory layout or device."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        # reshape(-1): a 0-dim tensor (BatchNorm's num_batches_tracked) cannot be viewed as bytes
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    root = (_CACHE_OVERRIDE[-1] if _CACHE_OVERRIDE else None) or os.environ.get("GRADBENCH_CACHE") \
        or Path.home() / ".cache" / "gradbench"
    path = Path(root) / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _atomic_save(obj: Any, path: Path) -> None:
    # A unique temporary name: two workers (Ray) may train the same recipe at once; both write
    # the same bytes, and the rename makes whichever finishes last the one on disk.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def checkpoint_path(recipe: Recipe) -> Path:
    """Where the recipe's trained weights are cached (``.partial.pt`` beside it while training)."""
    return cache_dir() / f"{recipe.hash}.pt"


def _optimizer(recipe: Recipe, model: nn.Module, total_steps: int):
    if recipe.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay), None
    if recipe.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=SGD_MOMENTUM,
                              weight_decay=recipe.weight_decay)
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total_steps, 1))
    raise TrainingError(f"recipe optimizer '{recipe.optimizer}' is not supported; use one of {', '.join(OPTIMIZERS)}")


def _augment(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crops of the zero-padded batch and horizontal flips, drawn from ``gen`` (resumable)."""
    b, _, h, w = x.shape
    dy, dx = (torch.randint(0, 2 * pad + 1, (2, b), generator=gen)).to(x.device)
    flip = (torch.rand(b, generator=gen) < 0.5).to(x.device)
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = dy[:, None] + torch.arange(h, device=x.device)  # B×H
    cols = dx[:, None] + torch.arange(w, device=x.device)  # B×W
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    out = xp[torch.arange(b, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # B×H×W×C
    return out.permute(0, 3, 1, 2).contiguous()


def _epoch_order(n_part: int, n_draws: int, gen: torch.Generator) -> torch.Tensor:
    """``n_draws`` positions into the part: successive reshuffles, the last one cut short."""
    perms = [torch.randperm(n_part, generator=gen) for _ in range(math.ceil(n_draws / n_part))]
    return torch.cat(perms)[:n_draws]


def train(recipe: Recipe, data: ImageDataset, model: nn.Module, device: str | torch.device = "cpu",
          progress: bool = True) -> None:
    """Train ``model`` (the recipe's initial network, :func:`bench.models.build.initial_model`) by the
    recipe and cache it at :func:`checkpoint_path`; a killed run resumes from its last epoch.
    Load the result with :func:`bench.models.build.trained_model`. Runs under :func:`training_numerics`."""
    with training_numerics():
        _train(recipe, data, model, device, progress)


@dataclass
class _TrainingData:
    """The recipe's slices of the training set, on the training device."""

    x_tr: torch.Tensor  # the part it trains on
    y_tr: torch.Tensor
    x_ho: torch.Tensor  # the held-out tail the cap is checked on
    y_ho: torch.Tensor
    n_part: int  # images in the part
    draws: int  # positions drawn into the part per epoch
    steps_per_epoch: int


@dataclass
class _Fit:
    """What the epochs of one training run update: the network, its optimiser and schedule, the
    generator of batch orders and augmentations, and how a forward pass runs."""

    model: nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler | None  # None: Adam's constant lr
    gen: torch.Generator
    device: torch.device
    autocast: Callable[[], AbstractContextManager[Any]]  # bf16 autocast on CUDA, else nullcontext
    loss_fn: nn.Module = field(default_factory=nn.CrossEntropyLoss)


@dataclass
class _Progress:
    """Where training stands: the epochs done, the last held-out accuracy, its history."""

    epoch: int = 0
    accuracy: float = 0.0
    history: list[float] = field(default_factory=list)
    steps_done: int = 0
    reached: bool = False  # the cap was passed (at an epoch end or a mid-epoch check)


def _n_fit(n_train: int) -> int:
    """Training images before the held-out tail (the last HELD_OUT_FRACTION, at least one)."""
    return n_train - max(1, int(round(n_train * HELD_OUT_FRACTION)))


def held_out_set(recipe: Recipe, data: ImageDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out tail the recipe's accuracy cap is checked on (inputs shifted as it trains), on the CPU."""
    n_fit = _n_fit(len(data.x_train))
    return data.x_train[n_fit:] + recipe.input_shift, data.y_train[n_fit:]


def _training_data(recipe: Recipe, data: ImageDataset, device: torch.device) -> _TrainingData:
    # The held-out tail is carved off before the split, so every split factor is capped on the
    # same images; match_steps makes an epoch as many draws as one pass over the whole fit set.
    x_all, y_all = data.x_train + recipe.input_shift, data.y_train
    n_fit = _n_fit(len(x_all))
    part = split_indices(y_all[:n_fit], recipe.split_factor, recipe.split_index, recipe.split_seed)
    if recipe.split_factor == 1:  # the whole set: a view, not a copy
        x_tr, y_tr = x_all[:n_fit].to(device), y_all[:n_fit].to(device)
    else:
        x_tr, y_tr = x_all[part].to(device), y_all[part].to(device)
    x_ho, y_ho = x_all[n_fit:].to(device), y_all[n_fit:].to(device)
    draws = n_fit if recipe.match_steps else len(part)
    return _TrainingData(x_tr, y_tr, x_ho, y_ho, len(part), draws, math.ceil(draws / recipe.batch_size))


def _resume(partial: Path, fit: _Fit) -> _Progress:
    """The state of a killed run's last checkpoint, restored into ``fit`` (weights, optimiser,
    schedule, RNGs) so it goes on bit-identically; a fresh start when there is none."""
    if not partial.exists():
        return _Progress()
    ckpt = torch.load(partial, map_location="cpu", weights_only=False)
    fit.model.load_state_dict(ckpt["state_dict"])
    fit.opt.load_state_dict(ckpt["optimizer"])
    if fit.sched is not None:
        fit.sched.load_state_dict(ckpt["scheduler"])
    fit.gen.set_state(ckpt["generator"])
    torch.set_rng_state(ckpt["torch_rng"])  # dropout and other global-RNG layers
    if fit.device.type == "cuda" and ckpt.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(ckpt["cuda_rng"], fit.device)
    return _Progress(ckpt["epoch"], ckpt["accuracy"], list(ckpt.get("history", [])))


def _train_epoch(recipe: Recipe, fit: _Fit, td: _TrainingData, progress: _Progress) -> None:
    """One epoch's optimiser steps; stops early (``progress.reached``) at the first mid-epoch cap
    check (every ``cap_check_steps``) whose held-out accuracy passes the cap."""
    model, cap, check = fit.model, recipe.accuracy_cap, recipe.cap_check_steps
    model.train()
    order = _epoch_order(td.n_part, td.draws, fit.gen).to(fit.device)
    for step, i in enumerate(range(0, td.draws, recipe.batch_size), start=1):
        idx = order[i : i + recipe.batch_size]
        fit.opt.zero_grad(set_to_none=True)
        xb = _augment(td.x_tr[idx], fit.gen) if recipe.augment else td.x_tr[idx]
        with fit.autocast():
            loss = fit.loss_fn(model(xb), td.y_tr[idx])
        loss.backward()
        fit.opt.step()
        if fit.sched is not None:
            fit.sched.step()
        progress.steps_done += 1
        if cap is not None and check and step % check == 0 and step < td.steps_per_epoch:
            if accuracy(model, td.x_ho, td.y_ho) > cap:  # stop mid-epoch, at the first passing check
                progress.reached = True
                model.train()
                return
            model.train()


def _save_partial(fit: _Fit, progress: _Progress, epochs_done: int, partial: Path) -> None:
    """Checkpoint the end of an epoch with everything :func:`_resume` needs to go on bit-identically."""
    sched, device = fit.sched, fit.device
    _atomic_save({"state_dict": fit.model.state_dict(), "optimizer": fit.opt.state_dict(),
                  "scheduler": sched.state_dict() if sched is not None else None,
                  "generator": fit.gen.get_state(), "torch_rng": torch.get_rng_state(),
                  "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                  "epoch": epochs_done, "accuracy": progress.accuracy, "history": progress.history},
                 partial)


def _run_epochs(recipe: Recipe, fit: _Fit, td: _TrainingData, progress: _Progress, partial: Path,
                show: bool) -> None:
    """Train from ``progress.epoch`` until the cap passes or ``max_epochs``; every epoch is
    checkpointed. Leaves ``progress.epoch`` at the number of epochs the model trained."""
    bar = tqdm(range(progress.epoch, recipe.max_epochs), desc=f"train {recipe.architecture}/"
               f"{recipe.activation} on {recipe.dataset}", disable=not show, leave=False)
    cap = recipe.accuracy_cap
    progress.reached = cap is not None and progress.accuracy > cap
    progress.steps_done = td.steps_per_epoch * progress.epoch
    epoch = progress.epoch
    for epoch in bar:
        if progress.reached:  # passed at a mid-epoch check, or already by the resumed checkpoint
            break
        _train_epoch(recipe, fit, td, progress)
        progress.accuracy = accuracy(fit.model, td.x_ho, td.y_ho)
        progress.history.append(progress.accuracy)
        bar.set_postfix(held_out_acc=f"{progress.accuracy:.3f}")
        _save_partial(fit, progress, epoch + 1, partial)
        epoch += 1
        if cap is not None and progress.accuracy > cap:
            progress.reached = True
            break
    else:
        epoch = recipe.max_epochs
    progress.epoch = epoch


def _check_cap_reached(recipe: Recipe, progress: _Progress) -> None:
    """A required cap never passed is an error: the suite must give more epochs or a lower cap."""
    if recipe.accuracy_cap is not None and not progress.reached and recipe.cap_required:
        raise TrainingError(
            f"{recipe.architecture}/{recipe.activation} on {recipe.dataset} reached held-out accuracy "
            f"{progress.accuracy:.3f} after {recipe.max_epochs} epochs, below the cap {recipe.accuracy_cap}; "
            "raise max_epochs or lower accuracy_cap in the suite")


def _save_final(recipe: Recipe, data: ImageDataset, fit: _Fit, td: _TrainingData, progress: _Progress,
                precision: str, final: Path) -> None:
    """Cache the trained weights with their metadata (and a readable .json beside them); the
    partial checkpoint goes, since a cache hit now loads these bytes."""
    model, device = fit.model, fit.device
    test_acc = accuracy(model, (data.x_test + recipe.input_shift).to(device), data.y_test.to(device))
    train_acc = accuracy(model, td.x_tr, td.y_tr)  # its own part, unaugmented: has it converged on it?
    meta = {"accuracy": progress.accuracy, "epochs": progress.epoch, "test_accuracy": test_acc,
            "train_accuracy": train_acc, "precision": precision, "history": progress.history,
            "n_train": td.n_part, "steps": progress.steps_done, "cap_reached": progress.reached}
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    meta["weights_digest"] = weights_digest(state)
    _atomic_save({"state_dict": state, "recipe": recipe.to_json(), **meta}, final)
    final.with_suffix(".partial.pt").unlink(missing_ok=True)
    (final.with_suffix(".json")).write_text(json.dumps({"recipe": json.loads(recipe.to_json()), **meta},
                                                       indent=2))


def _train(recipe: Recipe, data: ImageDataset, model: nn.Module, device: str | torch.device,
           progress: bool) -> None:
    device = torch.device(device)
    final = checkpoint_path(recipe)
    td = _training_data(recipe, data, device)
    model = model.to(device)
    opt, sched = _optimizer(recipe, model, td.steps_per_epoch * recipe.max_epochs)
    gen = torch.Generator().manual_seed(recipe.seed)
    amp = recipe.amp and device.type == "cuda"
    precision = "bf16-autocast" if amp else "fp32"
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else nullcontext
    fit = _Fit(model, opt, sched, gen, device, autocast)
    partial = final.with_suffix(".partial.pt")
    state = _resume(partial, fit)
    _run_epochs(recipe, fit, td, state, partial, progress)
    _check_cap_reached(recipe, state)
    _save_final(recipe, data, fit, td, state, precision, final)
