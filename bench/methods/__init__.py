"""Explanation methods. Import order registers them."""

from bench.methods import cam, controls, gradient, integrated, noise, released, smoothing  # noqa: F401  (registration)
from bench.methods.base import Method, check_maps, create_method, input_gradient, prepare_model, register_method
from bench.methods.params import ParameterError

__all__ = ["Method", "ParameterError", "check_maps", "create_method", "input_gradient", "prepare_model",
           "register_method"]
