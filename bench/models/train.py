"""Accuracy-capped training with a checkpoint cache keyed by the recipe's hash.

SPEC.md: Adam (lr 3e-4, batch 256), stop at the first epoch whose held-out accuracy exceeds the
cap; that checkpoint is the model. The held-out set is the last 10% of the (split) training set.
Every epoch is checkpointed, so a killed training resumes where it stopped; a cache hit loads the
same bytes that training wrote, so it is bit-identical to retraining on CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from bench.data import ImageDataset, load_dataset
from bench.errors import GradBenchError
from bench.models.zoo import build_model

HELD_OUT_FRACTION = 0.1


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
    lr: float = 3e-4
    batch_size: int = 256
    split_factor: int = 1  # train on the split_index-th of split_factor disjoint subsets
    split_index: int = 0
    input_shift: float = 0.0  # train on x + shift (AdaptGrad's invariance twin)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


@dataclass
class TrainedModel:
    model: nn.Module
    recipe: Recipe
    accuracy: float  # held-out accuracy at the chosen epoch
    epochs: int
    test_accuracy: float


def cache_dir() -> Path:
    root = os.environ.get("GRADBENCH_CACHE") or Path.home() / ".cache" / "gradbench"
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


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> float:
    model.eval()
    with torch.inference_mode():
        correct = sum((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum().item()
                      for i in range(0, len(x), batch))
    return correct / max(len(x), 1)


def _fresh_model(recipe: Recipe, data: ImageDataset) -> nn.Module:
    torch.manual_seed(recipe.seed)
    return build_model(recipe.architecture, recipe.activation, data.in_chans, data.num_classes,
                       data.image_size, **recipe.model_params)


def get_model(recipe: Recipe, device: str | torch.device = "cpu", progress: bool = True) -> TrainedModel:
    """Load the recipe's model from the cache, or train it (resuming a killed run) and cache it."""
    data = load_dataset(recipe.dataset, **recipe.dataset_params)
    final = cache_dir() / f"{recipe.hash}.pt"
    if final.exists():
        ckpt = torch.load(final, map_location="cpu", weights_only=False)
        model = _fresh_model(recipe, data)
        model.load_state_dict(ckpt["state_dict"])
        return TrainedModel(model.to(device).eval(), recipe, ckpt["accuracy"], ckpt["epochs"],
                            ckpt["test_accuracy"])
    return _train(recipe, data, final, device, progress)


def _train(recipe: Recipe, data: ImageDataset, final: Path, device, progress: bool) -> TrainedModel:
    if recipe.optimizer != "adam":
        raise TrainingError(f"recipe optimizer '{recipe.optimizer}' is not supported; use 'adam'")
    if recipe.split_factor != 1 or recipe.split_index != 0:
        raise TrainingError("split_factor/split_index training is not available yet")
    x_all, y_all = data.x_train + recipe.input_shift, data.y_train
    n = len(x_all)
    n_held = max(1, int(round(n * HELD_OUT_FRACTION)))
    x_tr, y_tr = x_all[: n - n_held], y_all[: n - n_held]
    x_ho, y_ho = x_all[n - n_held :].to(device), y_all[n - n_held :].to(device)

    model = _fresh_model(recipe, data).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    gen = torch.Generator().manual_seed(recipe.seed)
    start_epoch, acc = 0, 0.0
    partial = final.with_suffix(".partial.pt")
    if partial.exists():  # resume after a kill, bit-identically: weights, optimiser and RNG
        ckpt = torch.load(partial, map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["state_dict"])
        opt.load_state_dict(ckpt["optimizer"])
        gen.set_state(ckpt["generator"])
        start_epoch, acc = ckpt["epoch"], ckpt["accuracy"]

    loss_fn = nn.CrossEntropyLoss()
    bar = tqdm(range(start_epoch, recipe.max_epochs), desc=f"train {recipe.architecture}/"
               f"{recipe.activation} on {recipe.dataset}", disable=not progress, leave=False)
    epoch = start_epoch
    reached = recipe.accuracy_cap is not None and acc > recipe.accuracy_cap
    for epoch in bar:
        if reached:
            break
        model.train()
        order = torch.randperm(len(x_tr), generator=gen)
        for i in range(0, len(order), recipe.batch_size):
            idx = order[i : i + recipe.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_tr[idx].to(device)), y_tr[idx].to(device))
            loss.backward()
            opt.step()
        acc = _accuracy(model, x_ho, y_ho)
        bar.set_postfix(held_out_acc=f"{acc:.3f}")
        _atomic_save({"state_dict": model.state_dict(), "optimizer": opt.state_dict(),
                      "generator": gen.get_state(), "epoch": epoch + 1, "accuracy": acc}, partial)
        epoch += 1
        if recipe.accuracy_cap is not None and acc > recipe.accuracy_cap:
            reached = True
            break
    else:
        epoch = recipe.max_epochs
    if recipe.accuracy_cap is not None and not reached:
        raise TrainingError(
            f"{recipe.architecture}/{recipe.activation} on {recipe.dataset} reached held-out accuracy "
            f"{acc:.3f} after {recipe.max_epochs} epochs, below the cap {recipe.accuracy_cap}; "
            "raise max_epochs or lower accuracy_cap in the suite")
    test_acc = _accuracy(model, (data.x_test + recipe.input_shift).to(device), data.y_test.to(device))
    _atomic_save({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                  "accuracy": acc, "epochs": epoch, "test_accuracy": test_acc,
                  "recipe": recipe.to_json()}, final)
    partial.unlink(missing_ok=True)
    (final.with_suffix(".json")).write_text(json.dumps(
        {"recipe": json.loads(recipe.to_json()), "accuracy": acc, "epochs": epoch,
         "test_accuracy": test_acc}, indent=2))
    # Return exactly what a cache hit would return.
    return get_model(recipe, device, progress)
