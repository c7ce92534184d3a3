"""Architectures. Small ones live here; timm names pass through to ``timm.create_model``."""

from __future__ import annotations

from torch import nn

from bench.models.activations import set_activation
from bench.registry import models


@models.register("cnn-small", citation="GradBench zoo")
def cnn_small(in_chans: int = 3, num_classes: int = 10, image_size: int = 32,
              widths: tuple[int, ...] = (16, 32, 64), global_pool: bool = False) -> nn.Module:
    """3-conv CNN (16/32/64 channels, 2×2 max-pooling after each, linear head)."""
    layers: list[nn.Module] = []
    c = in_chans
    for w in widths:
        layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        c = w
    # The flattened head keeps where things are, which this small net needs to learn shapes fast;
    # global_pool=True gives the benchmark's anchor variant (global average pool, 10 classes).
    side = image_size // 2 ** len(widths)
    head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)] if global_pool else \
        [nn.Flatten(), nn.Linear(c * side * side, num_classes)]
    return nn.Sequential(*layers, *head)


@models.register("mlp", citation="Zhou et al., AdaptGrad (MNIST model)")
def mlp(in_chans: int = 1, num_classes: int = 10, image_size: int = 32, hidden: int = 200) -> nn.Module:
    """Two-layer perceptron, 200 hidden units (AdaptGrad's MNIST model)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_chans * image_size * image_size, hidden), nn.ReLU(),
                         nn.Linear(hidden, num_classes))


def build_model(architecture: str, activation: str, in_chans: int, num_classes: int, image_size: int,
                **params) -> nn.Module:
    """Create an untrained model with the given activation in place of every ReLU."""
    entry = models.get(architecture)
    kwargs = {"in_chans": in_chans, "num_classes": num_classes, **params}
    accepted = entry.accepts()
    if accepted is None or "image_size" in accepted:
        kwargs["image_size"] = image_size
    model = entry.create(**kwargs)
    return set_activation(model, activation)
