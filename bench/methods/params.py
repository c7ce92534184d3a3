"""Parameter values of a method or metric, checked when it is created.

What a parameter allows is declared once, in the method function's own annotations: the type
(``int``, ``float``, ``bool``, ``str``, ``None``, ``dict``, a class, unions of them, ``Literal[…]``
for a fixed set of choices) and, through ``Annotated``, a range (``PositiveInt``, ``NonNegative``,
``OpenUnit`` below). ``register_method`` and ``register_metric`` read the annotations once; their
factories check every given value against them, and the suite loader creates every method of
every grid point and every metric, so loading a suite (``--dry-run`` included) refuses ``n = "ten"``,
``n = 0`` or ``rule = "x"`` before anything runs, in one line naming the parameter, the value and what is
allowed. A ``bool`` is not an ``int`` or a number here (``n = true`` is a mistake, not 1).
A ``tuple[…]`` parameter takes a list (TOML has no tuples). Annotations that are not one of these
(or that do not resolve) check nothing.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from bench.errors import InputError


class ParameterError(InputError, ValueError):
    """A parameter value a method or metric does not allow (a ``ValueError`` too, for callers that catch those)."""


@dataclass(frozen=True)
class Range:
    """Bounds of a number: ``gt``/``ge`` below, ``lt``/``le`` above."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def allows(self, v: Any) -> bool:
        if not isinstance(v, int | float):  # None in an optional number: the type decides
            return True
        return ((self.gt is None or v > self.gt) and (self.ge is None or v >= self.ge)
                and (self.lt is None or v < self.lt) and (self.le is None or v <= self.le))

    def describe(self) -> str:
        lo = ("(", ">", self.gt) if self.gt is not None else ("[", "≥", self.ge) if self.ge is not None else None
        hi = (")", "<", self.lt) if self.lt is not None else ("]", "≤", self.le) if self.le is not None else None
        if lo and hi:
            return f"in {lo[0]}{lo[2]:g}, {hi[2]:g}{hi[0]}"
        bound = lo or hi
        return f"{bound[1]} {bound[2]:g}" if bound else ""


PositiveInt = Annotated[int, Range(gt=0)]  # sample counts, steps
NonNegative = Annotated[float, Range(ge=0)]  # noise scales: 0 means no noise
OpenUnit = Annotated[float, Range(gt=0, lt=1)]  # a confidence level

_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "none",
          dict: "a table", list: "a list", tuple: "a list"}


def _arms(hint: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return None


def allows(hint: Any, v: Any) -> bool:
    """Whether ``v`` is a value of the annotation ``hint`` (unknown annotations allow everything)."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        inner, *meta = typing.get_args(hint)
        return allows(inner, v) and all(m.allows(v) for m in meta if isinstance(m, Range))
    if (arms := _arms(hint)) is not None:
        return any(allows(a, v) for a in arms)
    if origin is Literal:
        return any(type(v) is type(c) and v == c for c in typing.get_args(hint))
    if origin is not None:  # dict[str, Any], list[int], …: the container type only
        hint = origin
    if hint is tuple:  # a suite (TOML) gives a list
        return isinstance(v, list | tuple)
    if hint is bool:
        return isinstance(v, bool)
    if hint is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if hint is float:
        return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    if hint is None or hint is type(None):
        return v is None
    if isinstance(hint, type):
        return isinstance(v, hint)
    return True  # Any, a protocol, a string that did not resolve: nothing to check


def describe(hint: Any) -> str:
    """``an integer > 0``, ``one of 'eq13', 'released'``, ``a string or none``."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        inner, *meta = typing.get_args(hint)
        return " ".join([describe(inner), *(m.describe() for m in meta if isinstance(m, Range))])
    if (arms := _arms(hint)) is not None:
        return " or ".join(describe(a) for a in arms)
    if origin is Literal:
        return "one of " + ", ".join(repr(c) for c in typing.get_args(hint))
    hint = origin or hint
    if hint is None:
        return "none"
    if hint is float:
        return "a finite number"
    return _NAMES.get(hint) or (f"a {hint.__name__}" if isinstance(hint, type) else str(hint))


def parameter_hints(fn: Callable[..., Any], names: set[str]) -> dict[str, Any]:
    """The resolved annotations of ``fn``'s parameters among ``names``; none if they do not resolve
    (a submitted function annotated with names its module does not define is not checked)."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # any annotation that fails to evaluate: check nothing rather than refuse
        return {}
    return {n: h for n, h in hints.items() if n in names}


def check_values(method: str, hints: dict[str, Any], params: dict[str, Any], kind: str = "method") -> None:
    """Raise ``ParameterError`` for the first value its annotation does not allow (``kind``: what
    ``method`` names in the message, a method or a metric)."""
    for name, value in params.items():
        hint = hints.get(name)
        if hint is not None and not allows(hint, value):
            raise ParameterError(f"{kind} '{method}': {name}={value!r} is not allowed; "
                                 f"{name} must be {describe(hint)}")
