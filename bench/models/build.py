"""The one path from a recipe to a model on a device: build, train or load, (perturb,) prepare.

Every caller that needs a recipe's model — the runner, the cost probe, submission validation,
the board's saliency grids, ``bench train`` — comes through here, so every caller gets the same
initialisation (the recipe's seed), the same weights (the cache of :mod:`bench.models.train`) and
the same preparation (eval mode, no parameter gradients, the device's memory format). A method is
therefore validated in the memory layout it runs in.

``data_root`` says where a dataset's files lie; it is passed explicitly (never through the
process environment) and is no part of a recipe's hash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench import registry
from bench.data import ImageDataset, load_dataset
from bench.models import perturb
from bench.models.inference import accuracy
from bench.models.train import (
    Recipe,
    TrainedModel,
    checkpoint_path,
    held_out_set,
    train,
    training_numerics,
    weights_digest,
)
from bench.models.zoo import build_model

# Whether models with 2-D convolutions run channels_last on a device type (oneDNN's NHWC kernels:
# about 2x the forwards and 1.6x the forward+backward passes of NCHW on a 2-core CPU, measured with
# benchmarks/methods_vs_captum.py; CUDA is unmeasured here, so it keeps NCHW).
CHANNELS_LAST = {"cpu": True}


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Eval mode, no parameter gradients (maps need ∇ₓ only), and the device's memory format, in place."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if CHANNELS_LAST.get(device.type, False) and any(isinstance(m, nn.Conv2d) for m in model.modules()):
        model.to(memory_format=torch.channels_last)  # a layout change only: same values
    return model


def scored_model(model: nn.Module, output: str) -> nn.Module:
    """The model's scores as a job asks for them: ``"logit"`` (the model) or ``"log_softmax"``; the
    wrapper takes the model's mode, so a prepared model stays prepared."""
    if output != "log_softmax":
        return model
    return nn.Sequential(model, nn.LogSoftmax(dim=1)).train(model.training)


def recipe_data(recipe: Recipe, data_root: str | Path | None = None) -> ImageDataset:
    """The recipe's dataset; ``data_root`` goes to a dataset that takes one, unless the recipe names its own."""
    params = dict(recipe.dataset_params)
    if data_root is not None and "data_root" not in params:
        accepted = registry.datasets.get(recipe.dataset).accepts()
        if accepted is None or "data_root" in accepted:
            params["data_root"] = str(Path(data_root).expanduser().resolve())
    return load_dataset(recipe.dataset, **params)


def initial_model(recipe: Recipe, data: ImageDataset, pretrained: bool = False) -> nn.Module:
    """The recipe's network before training, on the CPU, as it comes from the zoo (training mode).

    The global RNG is seeded with the recipe's seed, which makes the initial weights; training goes
    on from that RNG state (dropout), so this is part of what a recipe reproduces. ``pretrained``:
    load the recipe's pretrained weights (the start of fine-tuning); otherwise none are downloaded.
    """
    torch.manual_seed(recipe.seed)
    params = dict(recipe.model_params)
    if not pretrained and params.get("pretrained"):
        params["pretrained"] = False
    return build_model(recipe.architecture, recipe.activation, data.in_chans, data.num_classes,
                       data.image_size, **params)


def untrained_model(recipe: Recipe, device: str | torch.device = "cpu",
                    data_root: str | Path | None = None) -> nn.Module:
    """An untrained model of the recipe, prepared for ``device``: what probes and contract checks need
    (same architecture, cost and memory layout as the trained one; no training, no download).
    The caller's global RNG state is kept."""
    device = torch.device(device)
    data = recipe_data(recipe, data_root)
    with torch.random.fork_rng(devices=[]):
        model = initial_model(recipe, data)
    return prepare_model(model.to(device), device)


def trained_model(recipe: Recipe, device: str | torch.device = "cpu", progress: bool = True,
                  data_root: str | Path | None = None, perturbation: str = "") -> TrainedModel:
    """The recipe's trained model, prepared for ``device``: loaded from the cache, or trained (resuming a
    killed run) and cached first. A fresh training returns what a cache hit returns, byte for byte.

    ``perturbation``: a spec of :mod:`bench.models.perturb` (``perturb.DEFAULT_SPEC``): the trained
    model with that minor weight noise, its accuracies the perturbed model's; cached like the
    trained weights (made from them on the first call)."""
    device = torch.device(device)
    data = recipe_data(recipe, data_root)
    path = checkpoint_path(recipe)
    if not path.exists():
        train(recipe, data, initial_model(recipe, data, pretrained=True), device, progress)
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if perturbation:
        ckpt = perturbed_checkpoint(recipe, data, ckpt, perturbation, device)
    model = initial_model(recipe, data)  # the skeleton the cached weights go into
    model.load_state_dict(ckpt["state_dict"])
    digest = ckpt.get("weights_digest") or weights_digest(ckpt["state_dict"])  # older checkpoints: compute
    return TrainedModel(prepare_model(model.to(device), device), recipe, ckpt["accuracy"], ckpt["epochs"],
                        ckpt["test_accuracy"], ckpt.get("precision", "fp32"), tuple(ckpt.get("history", ())),
                        ckpt.get("train_accuracy"), digest, ckpt.get("perturbation", ""),
                        ckpt.get("perturbation_sigma"))


def perturbed_checkpoint(recipe: Recipe, data: ImageDataset, trained: dict[str, Any], spec: str,
                         device: torch.device) -> dict[str, Any]:
    """The cached checkpoint of the trained weights ``trained`` under the perturbation ``spec``, made
    (σ searched on the held-out set, on ``device``, under training's fixed numerics) and cached first."""
    path = perturb.perturbed_path(recipe, spec)
    if path.exists():
        return torch.load(path, map_location="cpu", weights_only=False)
    sigma = perturb.parse(spec)
    model = prepare_model(initial_model(recipe, data).to(device), device)
    x_ho, y_ho = (t.to(device) for t in held_out_set(recipe, data))

    def held_out_accuracy(state: dict[str, torch.Tensor]) -> float:
        model.load_state_dict(state)
        return accuracy(model, x_ho, y_ho)

    label = f"{recipe.architecture}/{recipe.activation} on {recipe.dataset} seed {recipe.seed}"
    with training_numerics():
        found = perturb.search_sigma(held_out_accuracy, trained["state_dict"], perturb.draw_noise(model, recipe),
                                     sigma, label)
        model.load_state_dict(found.state_dict)
        test_accuracy = accuracy(model, (data.x_test + recipe.input_shift).to(device), data.y_test.to(device))
    checkpoint = {
        "state_dict": found.state_dict, "recipe": recipe.to_json(), "accuracy": found.accuracy,
        "test_accuracy": test_accuracy, "train_accuracy": None,  # not measured on the perturbed weights
        "epochs": trained["epochs"], "precision": trained.get("precision", "fp32"),
        "history": trained.get("history", ()), "weights_digest": weights_digest(found.state_dict),
        "perturbation": spec, "perturbation_sigma": found.sigma, "halvings": found.halvings,
        "original_accuracy": found.original_accuracy,
        "original_weights_digest": trained.get("weights_digest") or weights_digest(trained["state_dict"])}
    perturb.save_perturbed(path, checkpoint)
    return checkpoint


def recipe_from_json(text: str) -> Recipe:
    """A recipe as a result row stores it (``model_recipe``). A row older than ``training_version``
    gets the current version: its model is not what that recipe trains now (the rows' recorded
    accuracies and ``model_weights_digest`` tell), and ``bench verify`` reports the difference."""
    return Recipe(**json.loads(text))
