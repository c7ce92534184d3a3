"""Metrics. Import order registers them."""

from bench.metrics import (  # noqa: F401  (registration)
    agreement,
    complexity,
    faithfulness,
    fidelity,
    information,
    localisation,
    noise,
    quantus_adapter,
    randomisation,
    robustness,
    spectral,
)
from bench.metrics.base import TWIN_KINDS, Metric, MetricContext, SideTable, create_metric, register_metric
from bench.metrics.spectral import expected_frequency, radial_spectrum

__all__ = ["TWIN_KINDS", "Metric", "MetricContext", "SideTable", "create_metric", "expected_frequency",
           "radial_spectrum", "register_metric"]
