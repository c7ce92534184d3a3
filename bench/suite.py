"""Suite TOML → validated, expanded list of :class:`Job`.

A list value in ``[[methods]] params`` is an axis of the grid; so are ``activations``,
``seeds`` and ``split_factor`` of ``[[models]]`` (a job's model is split 0 of its split factor).
A ``[[models]]`` table runs on every dataset of the suite, or on those its ``datasets`` names
(``datasets = ["shapes"]``: a ResNet has no place on 8×8 digits); the names are the suite's own.
Every name is checked against the registry, every parameter (each value of a list axis too)
against the factory that will receive it: the suite creates each method of each grid point and
each metric, so a typo or a value the factory refuses (``n = -5``) fails here with one line, not
an hour into a run.

``noise_resilience = true`` adds, after the suite's jobs, a copy of every job of each recipe's
lowest training seed whose model carries MetaQuantus' minor weight noise (``bench.models.perturb``);
the copies' ids differ, every other job's id stays as it was.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import registry
from bench.claim_spec import check_claims
from bench.data.splits import SPLIT_FACTORS
from bench.errors import GradBenchError, SuiteError
from bench.job import Job, MetricSpec, perturbed_copies
from bench.models import perturb
from bench.models.activations import make_activation
from bench.models.train import Recipe
from bench.models.zoo import architecture_entry


def suites_dir() -> Path:
    """``suites/`` of the registry in use (:func:`bench.registry.find_registry_dir`)."""
    return registry.REGISTRY_DIR / "suites"


TOP_KEYS = {"name", "description", "datasets", "models", "methods", "metrics", "samples", "seed",
            "target", "output", "citation", "claims", "sanity", "num_gpus", "noise_resilience"}
MODEL_KEYS = {"architecture", "activations", "seeds", "accuracy_cap", "max_epochs", "lr",
              "batch_size", "optimizer", "params", "split_factor", "split_seed", "match_steps", "weight_decay",
              "augment", "cap_check_steps", "cap_required", "datasets"}
NAMED_KEYS = {"name", "params"}
SUITE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    path: Path
    jobs: tuple[Job, ...]
    # Randomisation sanity thresholds, ``{"consistency_max": 0.5}``: the board marks a method ⚠
    # whose mean ``consistency`` exceeds it (a map that survives weight randomisation explains little).
    sanity: dict[str, float] = field(default_factory=dict)
    claims: tuple[dict[str, Any], ...] = ()  # paper claims judged by `bench report --claims`
    # GPUs each job's Ray task asks for (a fraction shares a GPU); None: 1 where CUDA is present.
    num_gpus: float | None = None


def resolve_suite_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.exists():
            raise SuiteError(f"suite file {p} does not exist (bench list suites)")
        return p
    candidate = suites_dir() / f"{name_or_path}.toml"
    if not candidate.exists():
        known = sorted(q.stem for q in suites_dir().glob("*.toml"))
        raise registry.UnknownNameError("suite", name_or_path, known)
    return candidate


def load_suite(name_or_path: str) -> Suite:
    path = resolve_suite_path(name_or_path)
    try:
        with path.open("rb") as f:
            spec = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise SuiteError(f"{path}: not valid TOML: {e}") from None
    try:
        return expand(spec, path)
    except GradBenchError as e:
        raise SuiteError(f"{path}: {e}") from None
    except (ValueError, TypeError) as e:
        raise SuiteError(f"{path}: {e}") from None


def _named(items: Any, where: str) -> list[tuple[str, dict[str, Any]]]:
    """``["a", {name="b", params={...}}]`` → ``[("a", {}), ("b", {...})]``."""
    if not isinstance(items, list) or not items:
        raise SuiteError(f"'{where}' must be a non-empty list of names or {{name=…, params=…}} tables")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            out.append((item, {}))
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            extra = set(item) - NAMED_KEYS
            if extra:
                raise SuiteError(f"{where}[{i}] has unknown key(s) {sorted(extra)}; allowed: name, params")
            params = item.get("params", {})
            if not isinstance(params, dict):
                raise SuiteError(f"{where}[{i}].params must be a table")
            out.append((item["name"], params))
        else:
            raise SuiteError(f"{where}[{i}] must be a name or a table with a 'name'")
    return out


Restriction = tuple[str, ...] | None  # the datasets a metric is restricted to; None: every one


def _metric_specs(items: Any, dataset_names: list[str]) -> tuple[tuple[MetricSpec, ...], list[Restriction]]:
    """``metrics``: names or ``{name, params, datasets}`` tables → the specs and, per spec, the
    datasets it is restricted to (None: every dataset). The restriction stays out of the spec, so
    the ids of jobs whose metrics are unrestricted do not change."""
    if not isinstance(items, list):
        return tuple(MetricSpec(n, p) for n, p in _named(items, "metrics")), []  # _named names the error
    only: list[Restriction] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            only.append(None)
            continue
        extra = set(item) - NAMED_KEYS - {"datasets"}
        if extra:
            raise SuiteError(f"metrics[{i}] has unknown key(s) {sorted(extra)}; allowed: name, params, datasets")
        chosen = item.get("datasets")
        if chosen is not None and (not isinstance(chosen, list) or not chosen
                                   or not all(isinstance(d, str) for d in chosen)):
            raise SuiteError(f"metrics[{i}].datasets must be a non-empty list of dataset names, e.g. [\"shapes\"]")
        unknown = [d for d in chosen or [] if d not in dataset_names]
        if unknown:
            raise SuiteError(f"metrics[{i}].datasets names '{unknown[0]}', which is not among the suite's datasets "
                             f"({', '.join(dataset_names)})")
        only.append(None if chosen is None else tuple(chosen))
    plain = [{k: v for k, v in m.items() if k != "datasets"} if isinstance(m, dict) else m for m in items]
    return tuple(MetricSpec(n, p) for n, p in _named(plain, "metrics")), only


def _metrics_per_dataset(metrics: tuple[MetricSpec, ...], needs: list[tuple[str, Any]],
                         only: list[Restriction], dataset_names: list[str]) -> dict[str, tuple[MetricSpec, ...]]:
    """Each dataset's metrics (those not restricted to other datasets), checked against its masks."""
    per_dataset = {}
    for name in dataset_names:
        keep = [i for i in range(len(metrics)) if only[i] is None or name in only[i]]
        if not keep:
            raise SuiteError(f"dataset '{name}' gets no metric: every metric is restricted to other datasets")
        _check_masks([needs[i] for i in keep], name)
        per_dataset[name] = tuple(metrics[i] for i in keep)
    return per_dataset


def _check_params(reg: registry.Registry, name: str, params: dict[str, Any], where: str) -> None:
    entry = reg.get(name)
    accepted = entry.accepts()
    if accepted is not None:
        unknown = set(params) - accepted
        if unknown:
            raise SuiteError(f"{where}: {reg.kind} '{name}' takes no parameter "
                             f"{', '.join(sorted(unknown))}; it takes: {', '.join(sorted(accepted)) or 'none'}")


def _grid(params: dict[str, Any]) -> list[dict[str, Any]]:
    axes = {k: v if isinstance(v, list) else [v] for k, v in params.items()}
    keys = sorted(axes)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(axes[k] for k in keys))]


def method_label(name: str, params: dict[str, Any]) -> str:
    """``smoothgrad`` or ``smoothgrad(alpha=0.1)``: the parameters that differ from the registry's."""
    defaults = registry.methods.get(name).defaults
    diff = {k: v for k, v in sorted(params.items()) if defaults.get(k, object()) != v}
    return name if not diff else f"{name}({', '.join(f'{k}={v}' for k, v in diff.items())})"


def _per_dataset(value: Any, dataset: str, key: str) -> Any:
    """A suite value given once or per dataset (``{ shapes = 0.9, digits = 0.95 }``)."""
    if isinstance(value, dict):
        if dataset not in value:
            raise SuiteError(f"{key} is a table but has no entry for dataset '{dataset}'")
        return value[dataset]
    return value


def check_values(spec: dict[str, Any]) -> None:
    """Types and ranges of the suite's own values, before anything is expanded or written.

    The name becomes a results folder, so it is a slug: no path separators, no ``..``, no spaces.
    """
    name = spec.get("name")
    if not isinstance(name, str) or not SUITE_NAME_RE.fullmatch(name):
        raise SuiteError(f"name = {name!r}: a suite name is letters, digits, '.', '_' or '-', starting with a "
                         "letter or digit (it names the results folder)")
    seed = spec.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SuiteError(f"seed = {seed!r}: must be an integer")
    samples = spec.get("samples", 64)
    for value in (samples.values() if isinstance(samples, dict) else [samples]):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise SuiteError(f"samples = {value!r}: must be an integer ≥ 2, or a table of them per dataset "
                             "(samples = { shapes = 64, fashion-mnist = 256 })")
    if not isinstance(spec.get("noise_resilience", False), bool):
        raise SuiteError(f"noise_resilience = {spec['noise_resilience']!r}: must be true or false")
    models = spec.get("models")
    for i, m in enumerate(models if isinstance(models, list) else []):
        if not isinstance(m, dict):
            raise SuiteError(f"models[{i}] must be a [[models]] table")
        seeds = m.get("seeds", [0])
        if (not isinstance(seeds, list) or not seeds
                or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds)):
            raise SuiteError(f"models[{i}].seeds = {seeds!r}: must be a non-empty list of integers, e.g. [0, 1]")
        cap = m.get("accuracy_cap")
        for value in (cap.values() if isinstance(cap, dict) else [cap]):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                      or not 0 < value <= 1):
                raise SuiteError(f"models[{i}].accuracy_cap = {value!r}: must be a fraction in (0, 1]")


def expand(spec: dict[str, Any], path: Path) -> Suite:
    target, output, samples, seed = _check_top_level(spec)
    datasets = _named(spec["datasets"], "datasets")
    for name, params in datasets:
        _check_params(registry.datasets, name, params, "datasets")
    metrics, only = _metric_specs(spec["metrics"], [name for name, _ in datasets])
    for m in metrics:
        _check_params(registry.metrics, m.name, m.params, "metrics")
    needs = [(m.name, _create(registry.metrics, m.name, m.params, f"metrics[{i}]"))  # their declarations
             for i, m in enumerate(metrics)]
    per_dataset = _metrics_per_dataset(metrics, needs, only, [name for name, _ in datasets])
    methods = _methods(spec["methods"])

    models = spec["models"]
    if not isinstance(models, list) or not models:
        raise SuiteError("'models' must be a non-empty array of [[models]] tables")
    jobs = []
    for i, m in enumerate(models):
        activations, sfs = _check_model(m, i, needs)
        for recipe in _recipes(m, _model_datasets(m, i, datasets), activations, sfs):
            for name, params, label in methods:
                jobs.append(Job(spec["name"], recipe, name, params, per_dataset[recipe.dataset],
                                _per_dataset(samples, recipe.dataset, "samples"), seed,
                                target, output, label))
    _check_every_dataset_used(jobs, datasets)
    if spec.get("noise_resilience", False):  # one perturbed model per recipe (its lowest seed), after the rest
        jobs += perturbed_copies(jobs, perturb.DEFAULT_SPEC)
    claims = spec.get("claims", [])
    check_claims(claims)
    num_gpus = _num_gpus(spec)
    return Suite(spec["name"], spec.get("description", ""), path, tuple(jobs), _sanity(spec.get("sanity", {})),
                 tuple(claims), num_gpus)


def _check_top_level(spec: dict[str, Any]) -> tuple[str, str, int | dict[str, int], int]:
    """The suite's keys and scalar settings; returns ``(target, output, samples, seed)``."""
    unknown = set(spec) - TOP_KEYS
    if unknown:
        raise SuiteError(f"unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(TOP_KEYS)}")
    for key in ("name", "datasets", "models", "methods", "metrics"):
        if key not in spec:
            raise SuiteError(f"missing required key '{key}'")
    check_values(spec)
    target, output = spec.get("target", "label"), spec.get("output", "logit")
    if target not in ("label", "predicted"):
        raise SuiteError(f"target must be 'label' or 'predicted', got '{target}'")
    if output not in ("logit", "log_softmax"):
        raise SuiteError(f"output must be 'logit' or 'log_softmax', got '{output}'")
    return target, output, spec.get("samples", 64), spec.get("seed", 0)


def _methods(items: Any) -> list[tuple[str, dict[str, Any], str]]:
    """``[[methods]]`` expanded over their parameter grids: ``(name, full params, label)`` per point,
    the registered defaults filled in so equal methods get equal labels."""
    methods: list[tuple[str, dict[str, Any], str]] = []
    for i, (name, params) in enumerate(_named(items, "methods")):
        _check_params(registry.methods, name, params, "methods")
        for point in _grid(params):
            full = {**registry.methods.get(name).defaults, **point}
            _create(registry.methods, name, full, f"methods[{i}]")
            methods.append((name, full, method_label(name, full)))
    return methods


def _create(reg: registry.Registry, name: str, params: dict[str, Any], where: str) -> Any:
    """``reg``'s factory for ``name`` given ``params``: the one check of their values (the runner
    creates the same object), so a value it refuses fails the suite's load, before anything runs."""
    try:
        return reg.create(name, **params)
    except (GradBenchError, ValueError, TypeError) as e:
        raise SuiteError(f"{where}: {e}") from None


def _check_model(m: dict[str, Any], i: int, needs: list[tuple[str, Any]]) -> tuple[list[str], list[int]]:
    """Check ``models[i]`` against the registry and the metrics' needs; returns its activations and
    split factors (each an axis of the grid)."""
    extra = set(m) - MODEL_KEYS
    if extra:
        raise SuiteError(f"models[{i}] has unknown key(s) {sorted(extra)}; allowed: {sorted(MODEL_KEYS)}")
    if "architecture" not in m:
        raise SuiteError(f"models[{i}] needs an 'architecture' (bench list models)")
    architecture_entry(m["architecture"])  # registered, or timm:NAME
    activations = m.get("activations", ["relu"])
    for act in activations:
        make_activation(act)
    sfs = m.get("split_factor", 1)
    sfs = sfs if isinstance(sfs, list) else [sfs]
    if not set(sfs) <= set(SPLIT_FACTORS):
        raise SuiteError(f"models[{i}].split_factor {sfs}: each must be one of {list(SPLIT_FACTORS)}")
    _check_twins(needs, sfs, i)
    _check_split_epochs(m, sfs, i)
    return activations, sfs


def _model_datasets(m: dict[str, Any], i: int,
                    datasets: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """The suite's datasets that ``models[i]`` runs on: all, or those its ``datasets`` key names
    (with the suite's params for them), in the suite's order so the jobs keep their order."""
    names = m.get("datasets")
    if names is None:
        return datasets
    known = [name for name, _ in datasets]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise SuiteError(f"models[{i}].datasets = {names!r}: must be a non-empty list of the suite's dataset "
                         f"names, e.g. [{', '.join(repr(k) for k in known[:2])}]")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SuiteError(f"models[{i}].datasets names {', '.join(repr(n) for n in unknown)}, which the suite does "
                         f"not list; add it to the top-level datasets or use one of {', '.join(map(repr, known))}")
    return [d for d in datasets if d[0] in names]


def _check_every_dataset_used(jobs: list[Job], datasets: list[tuple[str, dict[str, Any]]]) -> None:
    """A dataset that every ``[[models]]`` leaves out by its ``datasets`` key would run nothing: a slip."""
    unused = [name for name, _ in datasets if not any(j.recipe.dataset == name for j in jobs)]
    if unused:
        raise SuiteError(f"dataset(s) {', '.join(map(repr, unused))} of the suite have no [[models]] running on "
                         "them; add them to a [[models]] table's datasets or drop them from the top-level datasets")


def _recipes(m: dict[str, Any], datasets: list[tuple[str, dict[str, Any]]], activations: list[str],
             sfs: list[int]) -> list[Recipe]:
    """One recipe per point of the model's grid: dataset × activation × seed × split factor, in
    that order (the order of the suite's jobs)."""
    recipes = []
    for (ds, ds_params), act, mseed, sf in itertools.product(datasets, activations, m.get("seeds", [0]), sfs):
        recipes.append(Recipe(
            architecture=m["architecture"], dataset=ds, activation=act, dataset_params=ds_params,
            model_params=m.get("params", {}),
            accuracy_cap=_per_dataset(m.get("accuracy_cap"), ds, "models.accuracy_cap"),
            max_epochs=_per_dataset(m.get("max_epochs", 20), ds, "models.max_epochs"), seed=mseed,
            optimizer=m.get("optimizer", "adam"), lr=m.get("lr", 3e-4),
            batch_size=m.get("batch_size", 256), split_factor=sf, split_seed=m.get("split_seed", 0),
            match_steps=m.get("match_steps", True), weight_decay=m.get("weight_decay", 0.0),
            augment=m.get("augment", False),
            cap_check_steps=_per_dataset(m.get("cap_check_steps"), ds, "models.cap_check_steps"),
            cap_required=m.get("cap_required", True)))
    return recipes


def _num_gpus(spec: dict[str, Any]) -> float | None:
    """GPUs per job's Ray task (``num_gpus``), or None: the executor's default."""
    num_gpus = spec.get("num_gpus")
    if num_gpus is not None and (isinstance(num_gpus, bool) or not isinstance(num_gpus, int | float) or num_gpus < 0):
        raise SuiteError(f"num_gpus must be a number ≥ 0 (GPUs per job's Ray task), got {num_gpus!r}")
    return None if num_gpus is None else float(num_gpus)


def _check_masks(needs: list[tuple[str, Any]], dataset: str) -> None:
    """A metric that reads ground-truth masks needs a dataset that declares them (``masks=True``)."""
    if registry.datasets.get(dataset).meta.get("masks"):
        return
    for name, metric in needs:
        if getattr(metric, "masks", False):
            having = [d for d in registry.datasets.list() if registry.datasets.get(d).meta.get("masks")]
            raise SuiteError(f"metric '{name}' needs ground-truth masks, which dataset '{dataset}' does not "
                             f"provide; use a dataset with masks ({', '.join(having) or 'none registered'}), "
                             f"restrict the metric to them ({{ name = \"{name}\", datasets = [...] }}) or drop it")


def _check_twins(needs: list[tuple[str, Any]], split_factors: list[int], i: int) -> None:
    """A metric whose twin is the other part of a split needs models trained on split parts."""
    for name, metric in needs:
        if "split" in getattr(metric, "twins", ()) and 1 in split_factors:
            raise SuiteError(f"metric '{name}' compares the other part of a split, but models[{i}] has "
                             "split_factor 1; set split_factor ≥ 2 in that [[models]] table")


def _check_split_epochs(model: dict[str, Any], split_factors: list[int], i: int) -> None:
    """Models compared across split factors train the same epochs (SPEC, split agreement): an
    accuracy cap would stop each at another epoch and equalise away the effect being measured."""
    if len(set(split_factors)) > 1 and model.get("accuracy_cap") is not None:
        raise SuiteError(f"models[{i}] compares split factors {sorted(set(split_factors))} under an accuracy_cap; "
                         "drop accuracy_cap so every split factor trains the same max_epochs")


def _sanity(table: Any) -> dict[str, float]:
    """``[sanity] consistency_max = 0.5``: keys ``<metric>_max`` or ``<metric>_min``, numbers."""
    if not isinstance(table, dict):
        raise SuiteError("[sanity] must be a table like 'consistency_max = 0.5'")
    for key, value in table.items():
        if not key.endswith(("_max", "_min")) or isinstance(value, bool) or not isinstance(value, int | float):
            raise SuiteError(f"[sanity] {key} = {value!r}: keys are <metric>_max or <metric>_min, values numbers")
    return {k: float(v) for k, v in table.items()}
