"""The ``Job``: one (dataset, trained model, method) cell of a suite, with its metrics."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
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

    def config(self) -> dict[str, Any]:
        """Everything that determines the numbers (not the suite's name, device or labels)."""
        d = asdict(self)
        d.pop("suite")
        d.pop("method_label")
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
        return f"{r.dataset}/{r.architecture}[{r.activation}]/seed{r.seed}{split}/{self.method_label or self.method}"
