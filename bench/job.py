"""The ``Job``: one (dataset, trained model, method) cell of a suite, with its metrics."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bench.models.train import Recipe

SCHEMA_VERSION = 1


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Job:
    suite: str
    recipe: Recipe
    method: str
    method_params: dict[str, Any]
    metrics: tuple[MetricSpec, ...]
    samples: int
    seed: int = 0
    target: str = "label"  # label | predicted
    output: str = "logit"  # logit | log_softmax
    method_label: str = ""
    # The job's model is the recipe's trained model under this minor weight perturbation
    # (bench.models.perturb spec; a suite's noise_resilience adds such copies). "" for the model as trained.
    model_perturbation: str = ""

    def config(self) -> dict[str, Any]:
        """Everything that determines the numbers (not the suite's name, device or labels). An empty
        ``model_perturbation`` is left out, so the ids of jobs made before the field existed stay."""
        d = asdict(self)
        d.pop("suite")
        d.pop("method_label")
        if not d["model_perturbation"]:
            d.pop("model_perturbation")
        return d

    @property
    def id(self) -> str:
        payload = canonical_json({"schema": SCHEMA_VERSION, **self.config()})
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @property
    def dataset(self) -> str:
        return self.recipe.dataset

    @property
    def label(self) -> str:
        r = self.recipe
        split = f"/sf{r.split_factor}.{r.split_index}" if r.split_factor != 1 else ""
        perturbed = "/perturbed" if self.model_perturbation else ""
        return (f"{r.dataset}/{r.architecture}[{r.activation}]/seed{r.seed}{split}{perturbed}/"
                f"{self.method_label or self.method}")


def perturbed_copies(jobs: list[Job] | tuple[Job, ...], perturbation: str) -> list[Job]:
    """A copy of each job under ``perturbation``, for one model of each recipe: the lowest training seed
    among the jobs' recipes that differ in the seed alone (same dataset, architecture, activation,
    split and training), so a metric's noise resilience costs one model per recipe, not one per seed."""
    lowest: dict[str, int] = {}
    for job in jobs:
        key = replace(job.recipe, seed=0).hash
        lowest[key] = min(lowest.get(key, job.recipe.seed), job.recipe.seed)
    return [replace(job, model_perturbation=perturbation) for job in jobs
            if job.recipe.seed == lowest[replace(job.recipe, seed=0).hash]]
