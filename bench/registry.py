"""One ``Registry`` per kind (datasets, models, methods, metrics).

Code registers factories with a decorator; ``registry/<kind>s.toml`` publishes named entries
(possibly aliases of a factory with other defaults, e.g. ``s-gi`` = smoothgrad of grad×input);
third-party packages add factories through the entry-point group ``bench.<kind>s``.
"""

from __future__ import annotations

import fnmatch
import inspect
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import GradBenchError, UnknownNameError

# The registry ships in the wheel as bench/_registry (setup.py copies the checkout's registry/ there
# at build time); in a checkout (editable install) the registry/ beside the package is that copy.
PACKAGED_DIR = Path(__file__).resolve().parent / "_registry"
CHECKOUT_DIR = Path(__file__).resolve().parent.parent / "registry"


def find_registry_dir(explicit: str | Path | None = None) -> Path:
    """The registry folder, looked up in this order: ``explicit`` (``bench --registry DIR``),
    ``$GRADBENCH_REGISTRY``, ``./registry`` in the working directory, the packaged copy."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_dir():
            raise GradBenchError(f"--registry {path} is not a folder; pass a folder holding methods.toml, "
                                 "suites/ and board.toml")
        return path.resolve()
    if os.environ.get("GRADBENCH_REGISTRY"):
        return Path(os.environ["GRADBENCH_REGISTRY"]).expanduser().resolve()
    for path in (Path("registry"), PACKAGED_DIR, CHECKOUT_DIR):
        if path.is_dir():
            return path.resolve()
    return PACKAGED_DIR


REGISTRY_DIR = find_registry_dir()


def use_registry_dir(path: str | Path) -> Path:
    """Read the registry from ``path`` from now on (before any registry is first used: ``bench --registry``)."""
    global REGISTRY_DIR
    REGISTRY_DIR = find_registry_dir(path)
    return REGISTRY_DIR


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., Any]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    citation: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    origin: str = ""  # where the code registered it (module.function), for messages

    def create(self, **params: Any) -> Any:
        return self.factory(**{**self.defaults, **params})

    def accepts(self) -> set[str] | None:
        """Parameter names the factory takes, or None if it takes ``**kwargs``."""
        sig = inspect.signature(self.factory)
        if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            return None
        return set(sig.parameters)


def checked_factory(kind: str, name: str, fn: Callable[..., Any], context: set[str],
                    build: Callable[[dict[str, Any]], Any]) -> Callable[..., Any]:
    """A factory taking ``fn``'s own parameters (those not in ``context``) by keyword, refusing others
    with the list it takes; ``build(params)`` makes the bound object. Its signature is ``fn``'s own,
    so suite validation can check parameters before anything runs."""
    own = [p for n, p in inspect.signature(fn).parameters.items() if n not in context]
    names = {p.name for p in own}

    def factory(**params: Any) -> Any:
        unknown = set(params) - names
        if unknown:
            raise ValueError(f"{kind} '{name}' takes no parameter {', '.join(sorted(unknown))}; "
                             f"it takes: {', '.join(p.name for p in own) or 'none'}")
        return build(params)

    factory.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own])
    factory.__module__, factory.__qualname__ = fn.__module__, fn.__qualname__  # where it was declared
    return factory


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._prefixes: dict[str, Callable[[str], Entry]] = {}
        self._loaders: list[Callable[[Registry], None]] = []
        self._loaded = False

    # -- registration ---------------------------------------------------------------------
    def register(self, name: str | None = None, *, description: str = "", citation: str = "",
                 defaults: dict[str, Any] | None = None, **meta: Any):
        def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
            key = name or factory.__name__
            desc = description or (inspect.getdoc(factory) or "").split("\n")[0]
            origin = f"{factory.__module__}.{getattr(factory, '__qualname__', key)}"
            self.add(Entry(key, factory, dict(defaults or {}), desc, citation, meta, origin))
            return factory

        return decorator

    def add(self, entry: Entry) -> None:
        self._entries[entry.name] = entry

    def registered(self, name: str) -> bool:
        """Whether ``name`` is registered already (no loading, no prefix resolution)."""
        return name in self._entries

    def add_loader(self, loader: Callable[[Registry], None]) -> None:
        """Run ``loader(self)`` once, before the first lookup (``bench.plugins`` installs the built-in
        families and the entry-point groups this way, so this module imports no plugin)."""
        self._loaders.append(loader)

    def register_prefix(self, prefix: str, resolver: Callable[[str], Entry]) -> None:
        """Resolve every name ``prefix…`` on first use with ``resolver(name) -> Entry`` (a family of
        entries too large or too slow to register one by one, e.g. ``quantus:<ClassName>``)."""
        self._prefixes[prefix] = resolver

    # -- lookup ---------------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for loader in self._loaders:
            loader(self)
        self._load_toml()

    def _load_toml(self) -> None:
        path = REGISTRY_DIR / f"{self.kind}s.toml"
        if not path.exists():
            return
        with path.open("rb") as f:
            table = tomllib.load(f)
        for name, spec in table.items():
            impl = spec.get("implementation", name)
            if impl not in self._entries:
                raise GradBenchError(f"{path}: [{name}] names implementation '{impl}', which is not registered")
            base = self._entries[impl]
            self.add(Entry(
                name, base.factory, {**base.defaults, **spec.get("params", {})},
                spec.get("description", base.description), self._citation(path, name, spec, base),
                {**base.meta, **{k: v for k, v in spec.items()
                                 if k not in {"implementation", "params", "description", "citation"}}},
                base.origin,
            ))

    def _citation(self, path: Path, name: str, spec: dict[str, Any], base: Entry) -> str:
        """One source per name: the code's ``citation=`` or the TOML's ``citation``, never two that differ.

        An alias (another name for an implementation) has its own citation; an entry refining the code's
        own name may cite only where the code does not (or say the same), else neither would be sure to show.
        """
        if "citation" not in spec:
            return base.citation
        cited = spec["citation"]
        if base.name == name and base.citation and cited != base.citation:
            raise GradBenchError(
                f"{path}: [{name}] cites {cited!r}, but {base.origin or 'its code'} already declares citation "
                f"{base.citation!r}; give {self.kind} '{name}' its citation in one place (remove the other)")
        return cited

    def get(self, name: str) -> Entry:
        self._ensure_loaded()
        if name not in self._entries:
            for prefix, resolver in self._prefixes.items():
                if name.startswith(prefix):
                    self.add(resolver(name))  # raises UnknownNameError itself
                    break
        try:
            return self._entries[name]
        except KeyError:
            known = sorted(self._entries) + [f"{p}*" for p in self._prefixes]
            raise UnknownNameError(self.kind, name, known) from None

    def __contains__(self, name: str) -> bool:
        try:
            self.get(name)
        except UnknownNameError:
            return False
        return True

    def list(self, pattern: str = "*") -> list[str]:
        self._ensure_loaded()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def create(self, name: str, **params: Any) -> Any:
        return self.get(name).create(**params)



datasets = Registry("dataset")
models = Registry("model")
methods = Registry("method")
metrics = Registry("metric")
REGISTRIES = {"datasets": datasets, "models": models, "methods": methods, "metrics": metrics}
