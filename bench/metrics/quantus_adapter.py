"""Any Quantus 0.6 metric on a job: ``quantus:<ClassName>`` with the class's keyword parameters.

The job's model, inputs, target and maps go in as NumPy arrays, the job's method as
``explain_func`` (so metrics that re-explain use it, on whatever model Quantus hands over);
per-sample scores come out. Defaults that differ from Quantus' own, and why:

- ``normalise_func_kwargs={"normalise_axes": [1, …]}``: Quantus divides by the max over the whole
  batch unless told otherwise, which couples the samples; GradBench normalises each sample.
- ``return_aggregate=False`` (every class; FaithfulnessCorrelation and a few others default to
  True): one number per sample, not their mean.
- ``return_auc_per_sample=True`` (PixelFlipping, RegionPerturbation…): one number per sample.
- ``return_last_correlation=True``, ``skip_layers=True`` (MPRT family): one number per sample (all
  layers randomised) rather than a dict of layers, without explaining the intermediate models.
- ``num_classes`` (RandomLogit) from the model's output width.
- localisation metrics get the dataset's ground-truth masks as ``s_batch`` and the 2-D map
  (signed channel sum) as ``a_batch``, both B×1×H×W, the shapes Quantus' localisation code expects.

Quantus is imported on first use only (it takes seconds). A Quantus metric that raises, or that
returns NaN/inf or not one score per sample, raises :class:`QuantusMetricError`; the runner then
records the job as failed.
"""

from __future__ import annotations

import importlib
import inspect
import types
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bench.errors import GradBenchError, UnknownNameError
from bench.metrics.base import CATEGORIES, DIRECTIONS, Metric, MetricContext, channel_sum
from bench.registry import Entry, metrics

PREFIX = "quantus:"
CALL_PARAMS = {"softmax", "batch_size", "model_predict_kwargs"}  # __call__ options, not __init__ ones


class QuantusMetricError(GradBenchError):
    pass


# Classes a GradBench job cannot feed, and why (refused when a suite names them).
UNSUPPORTED = {
    "Focus": "it scores mosaics of four images from different classes with the target class's positions "
             "(its custom_batch), which no GradBench dataset provides; use a localisation metric on "
             "shapes (e.g. quantus:AttributionLocalisation) instead",
}


# Quantus 0.6 modules that still write ``np.NaN``, which NumPy 2.0 removed (a NameError-like
# AttributeError when Continuity meets a changed prediction).
NAN_ALIAS_MODULES = ("quantus.metrics.robustness.continuity",)


class _NumpyWithNaN(types.ModuleType):
    """NumPy as those modules see it: NumPy itself plus the old ``NaN`` alias. Only their own ``np``
    name points here; NumPy's module, and every other user of it, stays as it is."""

    NaN = np.nan

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


@lru_cache(maxsize=1)
def _quantus():
    import quantus

    if not hasattr(np, "NaN"):
        for name in NAN_ALIAS_MODULES:
            module = importlib.import_module(name)
            if getattr(module, "np", None) is np:
                module.np = _NumpyWithNaN("numpy")
    return quantus


def quantus_classes() -> dict[str, type]:
    q = _quantus()
    base = q.metrics.base.Metric
    return {n: c for n, c in vars(q).items() if inspect.isclass(c) and issubclass(c, base) and c is not base}


def _init_params(cls: type) -> set[str]:
    """Named ``__init__`` parameters; a pass-through subclass (``ModelParameterRandomisation(*args,
    **kwargs)``) takes those of the first base class that names its own."""
    for c in cls.__mro__:
        named = {n for n, p in inspect.signature(c.__init__).parameters.items()
                 if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if named:
            return named
    return set()


def _defaults(cls: type, ctx: MetricContext, params: dict[str, Any]) -> dict[str, Any]:
    accepted = _init_params(cls)
    d: dict[str, Any] = {"disable_warnings": True, "display_progressbar": False}
    if "return_aggregate" in accepted:
        d["return_aggregate"] = False
    if "normalise_func_kwargs" in accepted:
        d["normalise_func_kwargs"] = {"normalise_axes": list(range(1, ctx.x.dim()))}
    if "return_auc_per_sample" in accepted:
        d["return_auc_per_sample"] = True
    if "return_last_correlation" in accepted and not params.get("return_average_correlation"):
        d["return_last_correlation"] = True
        d["skip_layers"] = True  # the last layer's score needs no intermediate explanations
    if "num_classes" in accepted:
        with torch.inference_mode():
            d["num_classes"] = int(ctx.model(ctx.x[:1]).shape[1])
    return {k: v for k, v in d.items() if k in accepted}


def explain_func_for(ctx: MetricContext):
    """The job's method as Quantus' ``explain_func(model, inputs, targets, **kwargs) -> np.ndarray``."""

    def explain(model, inputs, targets, **_: Any) -> np.ndarray:
        x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=ctx.x.device)
        t = torch.as_tensor(np.asarray(targets), dtype=torch.long, device=ctx.x.device).reshape(-1)
        return ctx.explain(model=model, x=x, target=t).detach().cpu().numpy()

    return explain


def run_quantus(ctx: MetricContext, cls_name: str, **params: Any) -> Tensor:
    """Evaluate ``quantus.<cls_name>(**params)`` on the job's batch → ``B`` scores (float64)."""
    cls = quantus_classes()[cls_name]
    call = {k: params.pop(k) for k in list(params) if k in CALL_PARAMS}
    metric = cls(**{**_defaults(cls, ctx, params), **params})
    s_batch = None
    if cls.evaluation_category.value.lower() == "localisation":
        if ctx.masks is None:
            raise QuantusMetricError(f"{PREFIX}{cls_name} needs ground-truth masks; use a dataset that has them "
                                     "(e.g. shapes)")
        # Quantus wants one-channel masks and flattens them with the map: give it the 2-D map
        # (signed channel sum, SPEC.md) as B×1×H×W.
        s_batch = ctx.masks.reshape(len(ctx.x), 1, *ctx.x.shape[2:]).float().cpu().numpy()
        maps = channel_sum(ctx.maps).unsqueeze(1)
    else:
        maps = ctx.maps
    name = f"{PREFIX}{cls_name}"
    try:
        scores = metric(model=ctx.model, x_batch=ctx.x.detach().cpu().numpy(),
                        y_batch=ctx.target.cpu().numpy(), a_batch=maps.detach().cpu().numpy(),
                        s_batch=s_batch, explain_func=explain_func_for(ctx), channel_first=True,
                        device=str(ctx.x.device), **{"batch_size": len(ctx.x), **call})
    except Exception as e:
        raise QuantusMetricError(f"{name} raised {type(e).__name__}: {e}") from e
    if isinstance(scores, dict):
        raise QuantusMetricError(f"{name} returned a dict of {list(scores)[:3]}…, not one score per sample; "
                                 "set return_last_correlation or return_average_correlation")
    try:
        values = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise QuantusMetricError(f"{name} returned scores that are not one number per sample ({e}); "
                                 "set its return_auc_per_sample / return_aggregate=False options") from e
    if values.shape != (len(ctx.x),):
        raise QuantusMetricError(f"{name} returned shape {values.shape}, expected ({len(ctx.x)},); "
                                 "set return_aggregate=False and a per-sample return option")
    bad = int((~np.isfinite(values)).sum())
    if bad:
        raise QuantusMetricError(f"{name} returned NaN/inf for {bad} of {len(values)} samples")
    return torch.as_tensor(values, device=ctx.x.device)


def _resolve(name: str) -> Entry:
    cls_name = name[len(PREFIX):]
    classes = quantus_classes()
    if cls_name not in classes:
        raise UnknownNameError("metric", name, [PREFIX + n for n in sorted(classes)])
    if cls_name in UNSUPPORTED:
        raise QuantusMetricError(f"{name} is not supported: {UNSUPPORTED[cls_name]}")
    cls = classes[cls_name]
    direction = cls.score_direction.value
    category = cls.evaluation_category.value.lower()
    if direction not in DIRECTIONS or category not in CATEGORIES:
        raise QuantusMetricError(f"{name}: Quantus declares direction '{direction}', category '{category}', "
                                 "which GradBench does not know")
    accepted = _init_params(cls) | CALL_PARAMS
    desc = f"Quantus {cls_name}: " + (inspect.getdoc(cls) or "").split("\n")[0]

    def factory(**params: Any) -> Metric:
        unknown = set(params) - accepted
        if unknown:
            raise ValueError(f"metric '{name}' takes no parameter {', '.join(sorted(unknown))}; "
                             f"it takes: {', '.join(sorted(accepted))}")

        def fn(ctx: MetricContext, **p: Any) -> Tensor:
            return run_quantus(ctx, cls_name, **p)

        # Localisation metrics read the dataset's masks; any class may call explain_func (Quantus
        # decides inside), so every one is declared as re-explaining.
        return Metric(name, fn, params, direction, category, desc, masks=category == "localisation",
                      reexplains=True)

    return Entry(name, factory, {}, desc, "Hedström et al., Quantus: An Explainable AI Toolkit (JMLR 2023)",
                 {"direction": direction, "category": category})


metrics.register_prefix(PREFIX, _resolve)
