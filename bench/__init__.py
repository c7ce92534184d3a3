"""GradBench: a benchmark and leaderboard harness for gradient-based explanation methods."""

from __future__ import annotations

from typing import Any

from bench.numerics import pin_cpu_isa

pin_cpu_isa()  # before any torch kernel runs: CPU numbers must not depend on the machine's AVX-512

from bench import plugins  # noqa: E402, F401  (installs the loaders of the built-in and entry-point plugins)

__version__ = "0.1.0"


def create_method(name: str, **params: Any):
    """``bench.create_method("adaptgrad", c=0.99)`` — as ``timm.create_model`` reads."""
    from bench.methods import create_method as _create

    return _create(name, **params)


def create_metric(name: str, **params: Any):
    from bench.metrics import create_metric as _create

    return _create(name, **params)


def list_methods(pattern: str = "*") -> list[str]:
    from bench.registry import methods

    return methods.list(pattern)


def list_metrics(pattern: str = "*") -> list[str]:
    from bench.registry import metrics

    return metrics.list(pattern)
