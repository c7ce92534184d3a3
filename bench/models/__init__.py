"""Model zoo: architectures, the activation swap and accuracy-capped training."""

from bench.models import zoo  # noqa: F401  (registration)
from bench.models.activations import make_activation, set_activation
from bench.models.zoo import build_model

__all__ = ["build_model", "make_activation", "set_activation"]
