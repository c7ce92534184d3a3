"""The dataset contract: tensors in the model's normalised input space plus its declared range."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class ImageDataset:
    """Train/test tensors (``N×C×H×W`` float32, normalised) with labels, optional test masks.

    ``x_min``/``x_max`` are per-channel bounds of the normalised input space: the images of
    ``[0, 1]`` pixel values map onto them (AdaptGrad, SmoothGrad's relative σ and the black/white
    IG baselines need them).
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    masks_test: Tensor | None = None
    class_names: tuple[str, ...] = ()

    @property
    def in_chans(self) -> int:
        return self.x_train.shape[1]

    @property
    def image_size(self) -> int:
        return self.x_train.shape[-1]

    @property
    def x_min(self) -> Tensor:
        return (0 - torch.tensor(self.mean)) / torch.tensor(self.std)

    @property
    def x_max(self) -> Tensor:
        return (1 - torch.tensor(self.mean)) / torch.tensor(self.std)


def normalise(images01: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    m = torch.tensor(mean, dtype=images01.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=images01.dtype).view(1, -1, 1, 1)
    return ((images01 - m) / s).contiguous()
