"""A minor weight perturbation of a trained model that leaves its accuracy as it was: noise resilience.

MetaQuantus' Model Resilience Test (Hedström et al., The Meta-Evaluation Problem in Explainable AI,
TMLR 2023; ``annahedstroem/MetaQuantus@84bdc2f``, ``metaquantus/helpers/configs.py:603-609``:
``noise_type="multiplicative", mean=1.0, std=0.001, type="Resilience"``, for MNIST, fMNIST, cMNIST
and ImageNet alike, lines 636-642) perturbs the model with Quantus' ``PyTorchModel.sample``
(Quantus 0.6 ``quantus/helpers/model/pytorch_model.py:358-370``): every tensor of
``model.parameters()`` (not the buffers: BatchNorm statistics stay) multiplied element-wise by
N(mean, std²) noise. So w ← w·(1 + σ·ε), ε ~ N(0, 1), σ = 0.001 here too. A metric resilient to
noise barely moves under it.

MetaQuantus then keeps, per input, the samples whose prediction the perturbation did not change
(``perturbation_tests/mpt.py:143-145``). A benchmark job scores all its inputs, so we ask the
model as a whole instead: when the perturbed model's held-out accuracy is more than
ACCURACY_TOLERANCE (1 point) away from the trained model's, σ is halved (the same ε, rescaled) up
to MAX_HALVINGS times; still further away, the perturbation fails with one line, which the runner
records as the job's failure.

ε is drawn on the CPU from a generator seeded with the recipe's hash, parameter by parameter in
``named_parameters`` order, so a recipe gets the same perturbation on every machine. The weights
are cached beside the trained ones (:func:`perturbed_path`), keyed by the recipe's hash and the
perturbation (spec, tolerance, halvings, PERTURBATION_VERSION), with the σ used and the perturbed
model's accuracies. :func:`bench.models.build.trained_model` (``perturbation=spec``) is the one way
to them.

A job on a perturbed model (``Job.model_perturbation``) has the perturbed model in place of its own;
the twins its metrics load (stability, consistency, invariance, split agreement) stay as trained, as
MetaQuantus perturbs only the model it hands the metric: the metric's change is then the one this
model's perturbation makes, not that of a pair perturbed twice.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bench.errors import InputError
from bench.models.train import Recipe, TrainingError, _atomic_save, cache_dir

# MetaQuantus' Model Resilience Test: multiplicative N(1, 0.001²) (helpers/configs.py:603-609).
DEFAULT_SIGMA = 0.001
ACCURACY_TOLERANCE = 0.01  # 1 point of held-out accuracy
MAX_HALVINGS = 10  # σ down to DEFAULT_SIGMA / 1024 ≈ 1e-6, then a failure
PERTURBATION_VERSION = 1  # part of the cache key: bump when the perturbation's numerics change
# Accuracies are fractions k/n: 0.91 − 0.90 is 0.010000000000000009 in floating point.
_ROUNDING = 1e-9
_SPEC = re.compile(r"weights\*N\(1,(?P<sigma>[0-9.]+(?:e[+-]?[0-9]+)?)\^2\)")


class PerturbationError(TrainingError):
    """No σ of the search keeps the model's held-out accuracy within the tolerance."""


def weight_noise(sigma: float = DEFAULT_SIGMA) -> str:
    """The canonical spec of multiplicative weight noise N(1, σ²): ``weights*N(1,0.001^2)``."""
    return f"weights*N(1,{sigma:g}^2)"


DEFAULT_SPEC = weight_noise()


def parse(spec: str) -> float:
    """The starting σ of a spec written by :func:`weight_noise`."""
    m = _SPEC.fullmatch(spec)
    if m is None or not float(m["sigma"]) > 0:
        raise InputError(f"model perturbation '{spec}' is not one GradBench makes; write it as "
                         f"{weight_noise(DEFAULT_SIGMA)!r} (multiplicative weight noise N(1, σ²), σ > 0)")
    return float(m["sigma"])


def noise_seed(recipe: Recipe) -> int:
    return int(recipe.hash, 16) % 2**63


def draw_noise(model: nn.Module, recipe: Recipe) -> dict[str, Tensor]:
    """ε ~ N(0, 1) for every parameter of ``model``, on the CPU, from the recipe's own generator."""
    gen = torch.Generator().manual_seed(noise_seed(recipe))
    return {name: torch.randn(p.shape, generator=gen, dtype=torch.float32)
            for name, p in model.named_parameters()}


def perturb(state: dict[str, Tensor], noise: dict[str, Tensor], sigma: float) -> dict[str, Tensor]:
    """A new state dict: w·(1 + σ·ε) for the parameters ``noise`` covers, every other entry as it is."""
    return {k: (v.cpu() * (1 + sigma * noise[k])).to(v.dtype) if k in noise else v.clone()
            for k, v in state.items()}


@dataclass(frozen=True)
class Found:
    state_dict: dict[str, Tensor]
    sigma: float  # the σ used
    halvings: int
    accuracy: float  # held-out accuracy of the perturbed model
    original_accuracy: float  # of the trained model, measured the same way


def search_sigma(accuracy_of: Callable[[dict[str, Tensor]], float], state: dict[str, Tensor],
                 noise: dict[str, Tensor], sigma: float, label: str = "model") -> Found:
    """The first of σ, σ/2, σ/4, … (MAX_HALVINGS halvings at most) whose perturbation keeps
    ``accuracy_of`` within ACCURACY_TOLERANCE of the unperturbed state's; PerturbationError if none."""
    original = accuracy_of(state)
    tried = []
    for halvings in range(MAX_HALVINGS + 1):
        s = sigma / 2**halvings
        candidate = perturb(state, noise, s)
        acc = accuracy_of(candidate)
        if abs(acc - original) <= ACCURACY_TOLERANCE + _ROUNDING:
            return Found(candidate, s, halvings, acc, original)
        tried.append(f"{s:.3g}→{acc:.3f}")
    raise PerturbationError(f"{label}: no weight noise N(1, σ²) down to σ = {sigma / 2**MAX_HALVINGS:.3g} keeps its "
                            f"held-out accuracy {original:.3f} within {ACCURACY_TOLERANCE:g} "
                            f"(σ→accuracy: {', '.join(tried[:3])}, …); the model is too fragile for this test")


def perturbed_path(recipe: Recipe, spec: str) -> Path:
    """Where the recipe's perturbed weights are cached, beside its trained ones."""
    key = json.dumps({"spec": spec, "tolerance": ACCURACY_TOLERANCE, "max_halvings": MAX_HALVINGS,
                      "version": PERTURBATION_VERSION}, sort_keys=True)
    return cache_dir() / f"{recipe.hash}.perturbed-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pt"


def save_perturbed(path: Path, checkpoint: dict[str, Any]) -> None:
    """The checkpoint (atomically) and a readable .json of its metadata beside it."""
    _atomic_save(checkpoint, path)
    meta = {k: v for k, v in checkpoint.items() if k != "state_dict"}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2, default=str))
