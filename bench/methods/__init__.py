"""Explanation methods. Import order registers them."""

from bench.methods import cam, gradient, integrated, noise, smoothing  # noqa: F401  (registration)
from bench.methods.base import Method, create_method, input_gradient, prepare_model

__all__ = ["Method", "create_method", "input_gradient", "prepare_model"]
