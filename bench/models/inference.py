"""A model's accuracy: the bits of one forward per ``EVAL_BATCH`` images, at the speed of small chunks.

Training measures accuracy often: the held-out tail at every cap check and epoch end, then the test
set and its own training part (70,000 images per Fashion-MNIST model). Those forwards run at batch
``EVAL_BATCH``, and the batch cannot simply shrink: MKL blocks a Linear layer's GEMM by the number
of rows, so the logits' last bits move with the batch (and with them, rarely, an argmax, an accuracy
and a capped model's stopping step). But at 1,024 images the activations (51 MB after cnn-small's
first convolution on 28×28) spill out of the CPU's caches, and a forward runs at about half its
per-image speed at 64. The convolutions, batch norms (eval), pools and activations before a
network's first ``nn.Flatten`` compute every image from itself with the same kernels whatever the
batch, so on the CPU they run in ``FEATURE_CHUNK``-row chunks and the rest (the GEMMs) on the whole
batch: the same logits, bit for bit (``tests/test_inference.py`` checks every zoo architecture, plain
and prepared). Other networks (timm's, an MLP) and other devices take the whole batch as before.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bench.models.activations import all_activation_types

EVAL_BATCH = 1024
FEATURE_CHUNK = 64  # the runner's CPU chunk: where a cnn-small forward is fastest per image

# Leaf layers that compute each image alone (no GEMM across rows). A container of them (the zoo's
# conv blocks) adds or chains what they return, image by image.
_PER_IMAGE = (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.modules.pooling._MaxPoolNd,
              nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
              nn.modules.pooling._AdaptiveMaxPoolNd, nn.modules.dropout._DropoutNd, nn.Identity)


def feature_split(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """``(features, head)`` of an ``nn.Sequential`` in eval mode whose layers before its first
    ``nn.Flatten`` all compute each image alone; ``None`` when there is no such prefix (timm networks,
    an MLP) or the model trains (batch norm then normalises by the batch's statistics)."""
    if not isinstance(model, nn.Sequential) or model.training:
        return None
    flatten = next((i for i, m in enumerate(model) if isinstance(m, nn.Flatten)), 0)
    if flatten == 0:
        return None
    features = model[:flatten]
    per_image = _PER_IMAGE + all_activation_types()
    leaves = [m for m in features.modules() if not list(m.children())]
    if not all(isinstance(m, per_image) for m in leaves):
        return None
    return features, model[flatten:]


def logits(model: nn.Module, x: Tensor) -> Tensor:
    """``model(x)``, bit for bit, with a splittable network's features computed in chunks on the CPU."""
    split = feature_split(model) if x.device.type == "cpu" and len(x) > FEATURE_CHUNK else None
    if split is None:
        return model(x)
    features, head = split
    return head(torch.cat([features(chunk) for chunk in x.split(FEATURE_CHUNK)]))


def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch: int = EVAL_BATCH) -> float:
    """Top-1 accuracy of ``model`` (in eval mode, which it is left in) on ``x``, ``batch`` images a forward."""
    model.eval()
    with torch.inference_mode():
        correct = sum((logits(model, x[i : i + batch]).argmax(1) == y[i : i + batch]).sum().item()
                      for i in range(0, len(x), batch))
    return correct / max(len(x), 1)
