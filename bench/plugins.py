"""Where plugins come from: GradBench's own families and the ``bench.<kind>s`` entry-point groups.

The registries import no plugin (that made an import circle registry ↔ methods/metrics/…); this
module installs a loader in each, run once before the registry's first lookup. ``bench``'s package
``__init__`` imports this module, so every way into the package gets the same entries.
"""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points

from bench.registry import REGISTRIES, Entry, Registry

BUILTIN_FAMILIES = ("bench.data", "bench.methods", "bench.metrics", "bench.models")


def load_builtins() -> None:
    """Importing the families runs their ``@register…`` decorators (idempotent: modules import once)."""
    for family in BUILTIN_FAMILIES:
        importlib.import_module(family)


def load_entry_points(registry: Registry) -> None:
    """Factories published by installed packages under the group ``bench.<kind>s``."""
    for ep in entry_points(group=f"bench.{registry.kind}s"):
        obj = ep.load()
        if not registry.registered(ep.name):  # a module may register itself on import
            registry.add(Entry(ep.name, obj, description=(inspect.getdoc(obj) or "").split("\n")[0]))


def _load(registry: Registry) -> None:
    load_builtins()
    load_entry_points(registry)


for _registry in REGISTRIES.values():
    _registry.add_loader(_load)
