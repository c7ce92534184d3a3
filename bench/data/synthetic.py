"""``shapes``: GradBench's embedded dataset, generated from a seed, with ground-truth masks.

Six shape classes (the class is the shape alone), each drawn with a random colour, texture, size
and position over a cluttered background (smooth colour noise plus distractor line segments).
Everything is vectorised torch on the CPU: 6,000 images at 32×32 take well under a second.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from bench.data.base import ImageDataset, normalise
from bench.registry import datasets

CLASSES = ("circle", "square", "triangle", "cross", "ring", "diamond")
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)  # normalised range is exactly [-2, 2] per channel


def _shape_masks(u: Tensor, v: Tensor) -> Tensor:
    """All class masks for unit-scaled coordinates ``u, v`` (N×S×S) → 6×N×S×S bool."""
    d = torch.sqrt(u**2 + v**2)
    t = (v + 0.9) / 1.7  # triangle: apex up, 0 at top, 1 at the base
    return torch.stack([
        d < 1.0,
        torch.maximum(u.abs(), v.abs()) < 0.85,
        (t >= 0) & (t <= 1) & (u.abs() <= t),
        ((u.abs() < 0.3) & (v.abs() < 0.95)) | ((v.abs() < 0.3) & (u.abs() < 0.95)),
        (d > 0.55) & (d < 1.0),
        u.abs() + v.abs() < 1.0,
    ])


def _texture(u: Tensor, v: Tensor, kind: Tensor, freq: Tensor, angle: Tensor) -> Tensor:
    """Per-pixel shade in [0, 1]: solid, stripes, checker or dots (N×S×S)."""
    proj = u * torch.cos(angle) + v * torch.sin(angle)
    stripes = (torch.sin(freq * proj) > 0).float()
    checker = ((torch.sin(freq * u) > 0) ^ (torch.sin(freq * v) > 0)).float()
    dots = ((torch.sin(freq * u) * torch.sin(freq * v)) > 0.4).float()
    solid = torch.ones_like(u)
    return torch.stack([solid, stripes, checker, dots]).gather(
        0, kind.view(1, -1, 1, 1).expand(1, *u.shape)).squeeze(0)


def _background(n: int, size: int, g: torch.Generator, brightness: Tensor) -> Tensor:
    base = (brightness.view(-1, 1, 1, 1) + 0.15 * (torch.rand(n, 3, 1, 1, generator=g) - 0.5)).clamp(0, 1)
    blobs = torch.nn.functional.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=size,
                                            mode="bicubic", align_corners=False)
    img = (base + 0.35 * (blobs - 0.5)).clamp(0, 1)
    # Distractor line segments: thin, random colour, never a closed shape.
    k = 3
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    p0 = torch.rand(n, k, 2, generator=g) * size
    ang = torch.rand(n, k, generator=g) * math.pi
    length = (torch.rand(n, k, generator=g) * 0.4 + 0.3) * size
    dvec = torch.stack([torch.cos(ang), torch.sin(ang)], -1)
    rel_x = xx.view(1, 1, size, size) - p0[..., 0, None, None]
    rel_y = yy.view(1, 1, size, size) - p0[..., 1, None, None]
    along = (rel_x * dvec[..., 0, None, None] + rel_y * dvec[..., 1, None, None])
    along_c = along.clamp(min=torch.zeros_like(length)[..., None, None], max=length[..., None, None])
    dist = torch.sqrt((rel_x - along_c * dvec[..., 0, None, None]) ** 2
                      + (rel_y - along_c * dvec[..., 1, None, None]) ** 2)
    on_line = (dist < 0.6 * size / 32).float()  # N×k×S×S
    line_col = torch.rand(n, k, 3, generator=g)
    for j in range(k):  # k=3 layers; order matters where lines cross
        m = on_line[:, j : j + 1]
        img = img * (1 - m) + line_col[:, j, :, None, None] * m
    return img


def generate_shapes(n: int, size: int = 32, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Return ``(images in [0,1] N×3×S×S, labels N, masks N×1×S×S bool)``, deterministic in seed."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(len(CLASSES), (n,), generator=g)
    radius = (torch.rand(n, generator=g) * 0.13 + 0.22) * size  # 22–35% of the side
    cx = radius + torch.rand(n, generator=g) * (size - 2 * radius)
    cy = radius + torch.rand(n, generator=g) * (size - 2 * radius)
    coords = torch.arange(size).float() + 0.5
    u = (coords.view(1, 1, -1) - cx.view(-1, 1, 1)) / radius.view(-1, 1, 1)
    v = (coords.view(1, -1, 1) - cy.view(-1, 1, 1)) / radius.view(-1, 1, 1)
    u, v = u.expand(n, size, size), v.expand(n, size, size)
    masks = _shape_masks(u, v).gather(0, labels.view(1, -1, 1, 1).expand(1, n, size, size))[0]

    # Contrast by construction: a dark object on a light background or the reverse.
    brightness = torch.rand(n, generator=g) * 0.5 + 0.25
    light_bg = (brightness > 0.5).float().view(-1, 1)
    hue = torch.rand(n, 3, generator=g)
    colour = light_bg * (0.35 * hue) + (1 - light_bg) * (0.6 + 0.4 * hue)
    shade = _texture(u, v, torch.randint(4, (n,), generator=g),
                     (torch.rand(n, generator=g) * 4 + 4).view(-1, 1, 1),
                     (torch.rand(n, generator=g) * math.pi).view(-1, 1, 1))
    # Texture darkens light objects and lightens dark ones, never towards the background.
    s = shade[:, None]
    obj = torch.where(light_bg[..., None, None] > 0, colour[:, :, None, None] * (0.5 + 0.5 * s),
                      colour[:, :, None, None] + (1 - colour[:, :, None, None]) * 0.5 * (1 - s))
    img = _background(n, size, g, brightness)
    m = masks[:, None].float()
    img = img * (1 - m) + obj * m
    img = (img + 0.03 * torch.randn(img.shape, generator=g)).clamp(0, 1)
    return img, labels, masks[:, None]


@datasets.register("shapes", defaults={"image_size": 32, "n_train": 5000, "n_test": 1000, "seed": 0},
                   citation="GradBench embedded dataset", masks=True)  # masks: suites may ask for mask metrics
def shapes(image_size: int = 32, n_train: int = 5000, n_test: int = 1000, seed: int = 0) -> ImageDataset:
    """Embedded: 6 textured shapes on clutter, RGB, with ground-truth object masks (no download)."""
    if image_size not in (32, 64):
        raise ValueError(f"shapes: image_size must be 32 or 64, got {image_size}")
    x_tr, y_tr, _ = generate_shapes(n_train, image_size, seed=2 * seed)
    x_te, y_te, m_te = generate_shapes(n_test, image_size, seed=2 * seed + 1)
    return ImageDataset("shapes", normalise(x_tr, MEAN, STD), y_tr, normalise(x_te, MEAN, STD), y_te,
                        num_classes=len(CLASSES), mean=MEAN, std=STD, masks_test=m_te,
                        class_names=CLASSES)
