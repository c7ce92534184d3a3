"""Row-wise similarity of two ``B×n`` batches on their device: Pearson, Spearman, 1-D SSIM.

The test oracles are ``scipy.stats.pearsonr`` / ``spearmanr`` and ``skimage``'s
``structural_similarity`` (what Quantus 0.6 calls); these are batched torch versions of them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bench.metrics.spectral import average_ranks


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` (float64; NaN for a constant row)."""
    a = a.double() - a.double().mean(dim=1, keepdim=True)
    b = b.double() - b.double().mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.square().sum(dim=1) * b.square().sum(dim=1)).sqrt()


def spearman(a: Tensor, b: Tensor, *, norm_product: bool = False) -> Tensor:
    """Spearman correlation per row: Pearson of average ranks, as ``scipy.stats.spearmanr``.

    The one Spearman of GradBench. A constant row has no ranking, so its correlation is NaN (as
    SciPy's); a metric that scores it 0 (no rank agreement) says so at its call site with
    ``.nan_to_num(nan=0.0)``. The denominator is √(Σa²·Σb²) of the centred ranks, as ``pearson``;
    ``norm_product=True`` takes ‖a‖·‖b‖, which rounds differently (the two differ in the last bit
    for most rows): split agreement's published numbers were computed that way.
    """
    ra, rb = average_ranks(a.reshape(len(a), -1).double()), average_ranks(b.reshape(len(b), -1).double())
    if not norm_product:
        return pearson(ra, rb)
    ra, rb = ra - ra.mean(dim=1, keepdim=True), rb - rb.mean(dim=1, keepdim=True)
    return (ra * rb).sum(dim=1) / (ra.norm(dim=1) * rb.norm(dim=1))


def ssim_1d(a: Tensor, b: Tensor, win_size: int = 7, k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """``skimage.metrics.structural_similarity`` of each flattened row pair, as Quantus' ``ssim`` calls it.

    Uniform window of ``win_size``, sample covariance (NP/(NP−1)), data range = max − min over both
    rows, mean over the windows that lie fully inside the row (skimage crops ``(win_size−1)/2`` on
    each side, so its border mode never matters).
    """
    a, b = a.reshape(len(a), -1).double(), b.reshape(len(b), -1).double()
    both = torch.cat([a, b], dim=1)
    data_range = both.amax(dim=1, keepdim=True) - both.amin(dim=1, keepdim=True)

    def mean(v: Tensor) -> Tensor:
        return v.unfold(1, win_size, 1).mean(dim=2)

    ux, uy = mean(a), mean(b)
    cov_norm = win_size / (win_size - 1)
    vx = cov_norm * (mean(a * a) - ux * ux)
    vy = cov_norm * (mean(b * b) - uy * uy)
    vxy = cov_norm * (mean(a * b) - ux * uy)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=1)


def normalise_by_max(maps: Tensor) -> Tensor:
    """Quantus' ``normalise_by_max`` per sample (``normalise_axes`` = all but the batch axis).

    An all-zero map is left as it is (Quantus skips normalisation when the array is all zeros).
    """
    peak = maps.reshape(len(maps), -1).abs().amax(dim=1).view(-1, *([1] * (maps.dim() - 1)))
    return torch.where(peak > 0, maps / torch.where(peak > 0, peak, torch.ones_like(peak)), maps)
