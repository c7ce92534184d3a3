"""Metrics. Import order registers them."""

from bench.metrics import (  # noqa: F401  (registration)
    agreement,
    complexity,
    faithfulness,
    fidelity,
    information,
    noise,
    quantus_adapter,
    randomisation,
    robustness,
    spectral,
)
from bench.metrics.base import Metric, MetricContext, create_metric
from bench.metrics.spectral import expected_frequency, radial_spectrum

__all__ = ["Metric", "MetricContext", "create_metric", "expected_frequency", "radial_spectrum"]
