"""``digits``: scikit-learn's bundled handwritten digits (real data, no download), at 32×32."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.data.base import ImageDataset, normalise
from bench.registry import datasets

MEAN = (0.5,)
STD = (0.5,)  # normalised range [-1, 1]


@datasets.register("digits", defaults={"image_size": 32, "test_fraction": 0.2, "seed": 0},
                   citation="Alpaydin & Kaynak, UCI Optical Recognition of Handwritten Digits (1998)")
def digits(image_size: int = 32, test_fraction: float = 0.2, seed: int = 0) -> ImageDataset:
    """scikit-learn handwritten digits (1,797 real 8×8 images), upsampled to 32×32, 1 channel."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=image_size, mode="bilinear", align_corners=False).clamp(0, 1)
    y = torch.tensor(d.target, dtype=torch.long)
    idx_tr, idx_te = train_test_split(range(len(y)), test_size=test_fraction, random_state=seed,
                                      stratify=d.target)
    idx_tr, idx_te = torch.tensor(idx_tr), torch.tensor(idx_te)
    return ImageDataset("digits", normalise(x[idx_tr], MEAN, STD), y[idx_tr],
                        normalise(x[idx_te], MEAN, STD), y[idx_te], num_classes=10,
                        mean=MEAN, std=STD, class_names=tuple(str(i) for i in range(10)))
