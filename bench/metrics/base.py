"""The metric contract: a function of a batch context returning one value per sample.

Each metric declares its direction (``higher`` or ``lower`` is better), its category
(complexity, faithfulness, robustness, randomisation, localisation, agreement), a one-line
description, and what it needs beyond the job's maps: ground-truth masks, twin models of the
job's recipe, calls of the job's method, side tables it writes. ``Metric.__call__`` checks the
values it returns; suite validation reads the needs before anything runs; the runner and the
leaderboard need nothing else.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import Tensor, nn

from bench.aggregates import AGGREGATES, aggregate_values  # noqa: F401  (re-exported)
from bench.errors import MethodOutputError
from bench.methods.base import default_chunk_size
from bench.methods.params import check_values, parameter_hints
from bench.registry import checked_factory, metrics

DIRECTIONS = ("higher", "lower")
CATEGORIES = ("complexity", "faithfulness", "robustness", "randomisation", "localisation", "agreement",
              "axiomatic")  # axiomatic: Quantus' Completeness, NonSensitivity, InputInvariance
# Other models of the job's recipe a metric may load (``ctx.model_for``), by what changes.
TWIN_KINDS = {
    "pair": "split agreement's twin: the next seed at split_factor 1, the next part (and seed) above",
    "seed": "the same recipe with the next seed",
    "split": "the other part of the recipe's split (needs split_factor ≥ 2)",
    "independent": "the same recipe at an independent random initialisation (0 epochs, its own seed)",
    "shifted": "the same recipe trained on x + shift with its own seed (trained separately)",
}


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
    side: dict[str, dict[str, Any]] = field(default_factory=dict)  # side table name → its columns (ctx.emit)
    reported: float | None = None  # the job value a metric with aggregate="reported" gives (ctx.report)

    def __post_init__(self) -> None:
        if self.chunk_size is None:
            self.chunk_size = default_chunk_size(self.x.device)

    def model_for(self, **changes: Any) -> nn.Module:
        """The model of the job's recipe with some fields changed (another seed, split, …),
        trained or loaded from the cache: twins for stability, invariance, split agreement."""
        if self.recipe is None or self.load_model is None:
            raise ValueError("this metric needs other models of the job's recipe; run it through the runner")
        return self.load_model(dataclasses.replace(self.recipe, **changes))

    def explain(self, method: Callable[..., Tensor] | None = None, x: Tensor | None = None,
                model: nn.Module | None = None, *, target: Tensor | None = None,
                x_range: tuple[Tensor, Tensor] | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Maps of ``method`` (default: the job's) for the job's model, inputs, target, input range and
        generator, each replaceable: the one way a metric calls a method."""
        return (self.method if method is None else method)(
            self.model if model is None else model, self.x if x is None else x,
            self.target if target is None else target, x_range=self.x_range if x_range is None else x_range,
            generator=self.generator if generator is None else generator, chunk_size=self.chunk_size)

    def reference_maps(self, name: str = "grad") -> Tensor:
        """Maps of another registered method on the same model, inputs and target (cached)."""
        key = f"maps:{name}"
        if key not in self.cache:
            from bench.methods import create_method

            self.cache[key] = self.explain(create_method(name)).detach()
        return self.cache[key]

    def report(self, value: float) -> None:
        """Hand the runner the job's value, for a metric declaring ``aggregate="reported"``."""
        self.reported = float(value)

    def emit(self, table: str, columns: dict[str, Any]) -> None:
        """Hand the runner a side table's columns (all but ``job_id``); the metric must declare it."""
        self.side[table] = columns


@dataclass(frozen=True)
class SideTable:
    """A per-job table a metric emits beside its values, written to ``results/<suite>/_<name>/<job_id>.parquet``.

    ``schema`` is the whole on-disk schema, ``job_id`` (string) first: the metric emits the other
    columns with :meth:`MetricContext.emit` and the runner adds the job's id."""

    name: str
    schema: pa.Schema

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.schema.names[:1] != ["job_id"]:
            raise ValueError(f"side table '{self.name}': a name like 'spectra' and a schema whose first "
                             "column is job_id (string)")


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[..., Tensor]
    params: dict[str, Any]
    direction: str
    category: str
    description: str
    excludes: bool = False  # may return NaN for samples its protocol excludes (the runner drops them)
    masks: bool = False  # reads ctx.masks: the dataset must provide ground-truth masks
    twins: tuple[str, ...] = ()  # kinds (TWIN_KINDS) of other models of the job's recipe it loads
    reexplains: bool = False  # calls the job's method again (through ctx.explain)
    side_tables: tuple[SideTable, ...] = ()  # tables it emits with ctx.emit
    aggregate: str = "mean"  # how the runner and the board make the job value (bench.aggregates)

    def __post_init__(self) -> None:
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"metric '{self.name}': aggregate '{self.aggregate}'; known: {AGGREGATES}")
        unknown = set(self.twins) - set(TWIN_KINDS)
        if unknown:
            raise ValueError(f"metric '{self.name}': twin kind(s) {sorted(unknown)}; known: {sorted(TWIN_KINDS)}")

    def __call__(self, ctx: MetricContext) -> Tensor:
        """The metric's per-sample values, checked: a tensor of ``B`` finite values, NaN only for the
        inputs a declared exclusion (``excludes``) leaves out, and not all of them; side tables only
        those declared. The only place these checks live: no caller can skip them."""
        before = dict(ctx.side)
        ctx.reported = None
        values = self.fn(ctx, **self.params)
        self._check(values, len(ctx.x))
        if (ctx.reported is not None) != (self.aggregate == "reported") or (
                ctx.reported is not None and not np.isfinite(ctx.reported)):
            raise MethodOutputError(f"metric '{self.name}': a finite ctx.report(value) if and only if it "
                                    "declares aggregate='reported'")
        emitted = {k for k, v in ctx.side.items() if before.get(k) is not v}
        undeclared = emitted - {t.name for t in self.side_tables}
        if undeclared:
            raise MethodOutputError(f"metric '{self.name}' emitted side table(s) {sorted(undeclared)} it does not "
                                    "declare; declare them with register_metric(..., side_tables=...)")
        return values

    def _check(self, values: Any, batch: int) -> None:
        if not isinstance(values, Tensor):
            raise MethodOutputError(f"metric '{self.name}' returned {type(values).__name__}, not a Tensor")
        if values.shape != (batch,):
            raise MethodOutputError(f"metric '{self.name}' returned shape {tuple(values.shape)}, "
                                    f"expected ({batch},)")
        kept = torch.isfinite(values)
        # NaN marks an input the metric's own protocol leaves out (declared); anything else is an error.
        allowed = kept | torch.isnan(values) if self.excludes else kept
        if not allowed.all():
            raise MethodOutputError(f"metric '{self.name}' gave non-finite values for "
                                    f"{(~allowed).sum().item()} samples")
        if not kept.any():
            raise MethodOutputError(f"metric '{self.name}' excluded every input")


Twins = tuple[str, ...] | Callable[[dict[str, Any]], tuple[str, ...]]


def register_metric(name: str, *, direction: str, category: str, description: str = "",
                    citation: str = "", defaults: dict[str, Any] | None = None, excludes: bool = False,
                    masks: bool = False, twins: Twins = (), reexplains: bool = False,
                    side_tables: tuple[SideTable, ...] = (), aggregate: str = "mean"):
    """Register ``fn(ctx, **params) -> Tensor[B]`` under ``name`` with its declarations.

    ``excludes``: the metric's protocol leaves some inputs out (PIC's rule, say); it marks them NaN
    and the runner averages over the rest, recording how many were kept in ``n``.
    ``masks``: it reads ``ctx.masks`` (suite validation refuses a dataset without masks).
    ``twins``: the kinds of other models of the job's recipe it loads with ``ctx.model_for``
    (:data:`TWIN_KINDS`), or a function of the metric's parameters giving them.
    ``reexplains``: it calls the job's method again, through ``ctx.explain``.
    ``side_tables``: the tables it emits with ``ctx.emit`` (the results store writes each).
    ``aggregate``: how its per-sample values make the job value (:data:`bench.aggregates.AGGREGATES`).
    The values a parameter allows are ``fn``'s annotations (``bench.methods.params``), checked when
    the metric is created (and so when a suite naming it loads)."""
    if direction not in DIRECTIONS or category not in CATEGORIES:
        raise ValueError(f"metric '{name}': direction in {DIRECTIONS}, category in {CATEGORIES}")

    def decorator(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        desc = description or (inspect.getdoc(fn) or "").split("\n")[0]
        hints = parameter_hints(fn, set(inspect.signature(fn).parameters) - {"ctx"})

        def build(params: dict[str, Any]) -> Metric:
            check_values(name, hints, params, kind="metric")
            kinds = twins(params) if callable(twins) else twins
            return Metric(name, fn, params, direction, category, desc, excludes, masks, tuple(kinds),
                          reexplains, tuple(side_tables), aggregate)

        factory = checked_factory("metric", name, fn, {"ctx"}, build)
        metrics.register(name, description=desc, citation=citation, defaults=defaults,
                         direction=direction, category=category)(factory)
        return fn

    return decorator


def create_metric(name: str, **params: Any) -> Metric:
    return metrics.create(name, **params)


def channel_sum(maps: Tensor) -> Tensor:
    """The 2-D map of SPEC.md: signed sum over channels, ``B×H×W``."""
    return maps.sum(dim=1)
