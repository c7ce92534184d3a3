"""The metric contract: a function of a batch context returning one value per sample.

Each metric declares its direction (``higher`` or ``lower`` is better), its category
(complexity, faithfulness, robustness, randomisation, localisation, agreement) and a one-line
description; the leaderboard reads them and needs nothing else.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from bench.methods.base import default_chunk_size
from bench.registry import checked_factory, metrics

DIRECTIONS = ("higher", "lower")
CATEGORIES = ("complexity", "faithfulness", "robustness", "randomisation", "localisation", "agreement",
              "axiomatic")  # axiomatic: Quantus' Completeness, NonSensitivity, InputInvariance


@dataclass
class MetricContext:
    """What a metric may look at for one job's batch of inputs."""

    model: nn.Module
    x: Tensor
    y: Tensor
    target: Tensor
    maps: Tensor
    method: Callable[..., Tensor]
    x_range: tuple[Tensor, Tensor]
    masks: Tensor | None = None
    generator: torch.Generator | None = None
    chunk_size: int | None = None  # rows per forward; None: the device's default
    recipe: Any = None  # the job's bench.models.train.Recipe
    load_model: Callable[[Any], nn.Module] | None = None  # Recipe → scored eval model on device
    cache: dict[str, Any] = field(default_factory=dict)
    side: dict[str, Any] = field(default_factory=dict)  # extra tables a metric emits (spectra)

    def __post_init__(self) -> None:
        if self.chunk_size is None:
            self.chunk_size = default_chunk_size(self.x.device)

    def model_for(self, **changes: Any) -> nn.Module:
        """The model of the job's recipe with some fields changed (another seed, split, …),
        trained or loaded from the cache: twins for stability, invariance, split agreement."""
        import dataclasses

        if self.recipe is None or self.load_model is None:
            raise ValueError("this metric needs other models of the job's recipe; run it through the runner")
        return self.load_model(dataclasses.replace(self.recipe, **changes))

    def explain(self, method: Callable[..., Tensor], x: Tensor | None = None,
                model: nn.Module | None = None) -> Tensor:
        return method(model or self.model, self.x if x is None else x, self.target,
                      x_range=self.x_range, generator=self.generator, chunk_size=self.chunk_size)

    def reference_maps(self, name: str = "grad") -> Tensor:
        """Maps of another registered method on the same model, inputs and target (cached)."""
        key = f"maps:{name}"
        if key not in self.cache:
            from bench.methods import create_method

            self.cache[key] = self.explain(create_method(name)).detach()
        return self.cache[key]


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[..., Tensor]
    params: dict[str, Any]
    direction: str
    category: str
    description: str
    excludes: bool = False  # may return NaN for samples its protocol excludes (the runner drops them)

    def __call__(self, ctx: MetricContext) -> Tensor:
        return self.fn(ctx, **self.params)


def register_metric(name: str, *, direction: str, category: str, description: str = "",
                    citation: str = "", defaults: dict[str, Any] | None = None, excludes: bool = False):
    """Register ``fn(ctx, **params) -> Tensor[B]`` under ``name`` with its declarations.

    ``excludes``: the metric's protocol leaves some inputs out (PIC's rule, say); it marks them NaN
    and the runner averages over the rest, recording how many were kept in ``n``."""
    if direction not in DIRECTIONS or category not in CATEGORIES:
        raise ValueError(f"metric '{name}': direction in {DIRECTIONS}, category in {CATEGORIES}")

    def decorator(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        desc = description or (inspect.getdoc(fn) or "").split("\n")[0]
        factory = checked_factory("metric", name, fn, {"ctx"},
                                  lambda params: Metric(name, fn, params, direction, category, desc, excludes))
        metrics.register(name, description=desc, citation=citation, defaults=defaults,
                         direction=direction, category=category)(factory)
        return fn

    return decorator


def create_metric(name: str, **params: Any) -> Metric:
    return metrics.create(name, **params)


def channel_sum(maps: Tensor) -> Tensor:
    """The 2-D map of SPEC.md: signed sum over channels, ``B×H×W``."""
    return maps.sum(dim=1)
