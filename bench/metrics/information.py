"""AdaptGrad's Information Level: the PIC (performance information curve) AUC of XRAI / Guided IG.

Per image (Kapishnikov et al. 2019; PAIR ``saliency.metrics.pic``, which AdaptGrad's code copies):
1. the image as uint8 (the dataset's [x_min, x_max] mapped to 0…255 per channel);
2. a "fully blurred" image: only a random 1 % of pixels (and the four corners) kept, the rest
   linearly interpolated (``scipy.interpolate.griddata``, the channel mean outside the hull);
3. for each threshold t (0.05 … 0.30): the pixels whose 2-D saliency (signed channel sum) is at
   or above its (1 − t)-quantile are revealed as well, and the image re-interpolated;
4. information = byte length of a lossless WebP (quality 100), normalised between the fully
   blurred (0) and the original image (1), clipped to [0, 1]; performance = the model's output
   for its argmax class (the job's raw logit or log-softmax), normalised the same way and kept
   monotone (running maximum);
5. the points plus (0, 0) and (1, 1), linearly interpolated at 1000 points of [0, 1) plus 1.0,
   integrated with the trapezoid rule.

Every method is scored with the same random masks per image: ``n_masks`` (10) masks drawn from a
seed of the image alone (its uint8 bytes), never from the job's noise stream. PIC excludes an
(image, mask) pair whose blurred version is not less informative or not lower scored than the
original (and, in the released code, an original score below 0.8, an ImageNet-logit threshold, off
here by default); none of that depends on the saliency, so the exclusions and ``n`` are the same
for every method on a model. An image with every mask excluded is left out (NaN; the runner
records how many it kept in ``n``), or scores ``excluded_value`` if given.
The job value is the release's aggregate (``aggregate="reported"``): the AUC of the median curve
over all kept (image, mask) curves (``aggregate_individual_pic_results(..., "median")``). The
per-sample values are each image's mean AUC over its kept masks; they carry the spread for the CI
(the bootstrap of their mean, re-centred on the reported value: a median curve cannot be rebuilt
from per-image AUCs).
Blurring and WebP are CPU NumPy/Pillow work, one process per core; the model sees all blurred images in
one batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from itertools import repeat

import numpy as np
import torch
from PIL import Image
from scipy import interpolate
from threadpoolctl import threadpool_limits
from torch import Tensor, nn

from bench.methods.params import PositiveInt
from bench.metrics.base import MetricContext, channel_sum, register_metric

THRESHOLDS = (0.05, 0.10, 0.15, 0.20, 0.25, 0.30)


def to_uint8(x: Tensor, x_range: tuple[Tensor, Tensor]) -> np.ndarray:
    """``B×C×H×W`` normalised inputs → ``B×H×W×C`` uint8, [x_min, x_max] → [0, 255] per channel."""
    lo, hi = (r.to(x.device, torch.float64).view(1, -1, 1, 1) for r in x_range)
    u = ((x.double() - lo) / (hi - lo) * 255).round().clamp(0, 255).to(torch.uint8)
    return u.permute(0, 2, 3, 1).cpu().numpy()


def from_uint8(u: np.ndarray, x_range: tuple[Tensor, Tensor], device: torch.device) -> Tensor:
    """The inverse of :func:`to_uint8` (up to its rounding): ``B×H×W×C`` uint8 → ``B×C×H×W`` float32."""
    t = torch.from_numpy(np.ascontiguousarray(u)).to(device).permute(0, 3, 1, 2).double() / 255
    lo, hi = (r.to(device, torch.float64).view(1, -1, 1, 1) for r in x_range)
    return (lo + t * (hi - lo)).float()


def blurred_image(img: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """PIC's interpolated image: pixels where ``keep`` (plus the 4 corners) stay, the rest are
    linearly interpolated per channel, the channel mean outside the convex hull; uint8 → uint8."""
    keep = keep.copy()
    h, w = keep.shape
    keep[[0, 0, h - 1, h - 1], [0, w - 1, 0, w - 1]] = True
    if keep.all():
        return img
    out = img * keep[:, :, None].astype(np.float32)
    known, unknown = np.argwhere(keep), np.argwhere(~keep)
    # One triangulation for all channels: griddata interpolates each column of ``values`` (N×C) with
    # the same barycentric weights a call per channel (PAIR's loop) would compute, bit for bit, for a
    # third of the cost on RGB. Its fill_value is a scalar: NaN, then each channel's own mean.
    filled = interpolate.griddata(known, img[tuple(known.T)], unknown, method="linear", fill_value=np.nan)
    outside = np.isnan(filled)
    filled[outside] = np.broadcast_to(img.mean(axis=(0, 1)), filled.shape)[outside]
    out[tuple(unknown.T)] = filled
    return np.round(out).astype(img.dtype)


def webp_bytes(img: np.ndarray) -> int:
    """Information content: bytes of a lossless WebP (quality 100); a 1-channel image as grey."""
    buf = io.BytesIO()
    Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).save(buf, format="webp", lossless=True, quality=100)
    return buf.tell()


def pic_images(img: np.ndarray, saliency: np.ndarray, random_mask: np.ndarray,
               thresholds=THRESHOLDS) -> list[np.ndarray]:
    """[fully blurred, revealed at each threshold]: the images whose score and size PIC needs."""
    images = [blurred_image(img, random_mask)]
    for t in thresholds:
        revealed = (saliency >= np.quantile(saliency, 1 - t)) | random_mask
        images.append(blurred_image(img, revealed))
    return images


def pic_inputs(img: np.ndarray, saliency: np.ndarray, masks: np.ndarray, thresholds=THRESHOLDS
               ) -> tuple[list[np.ndarray], list[int]]:
    """One image's PIC inputs: [the original, then per random mask the fully blurred and the revealed
    images] and their WebP sizes. NumPy, SciPy and Pillow only: what the blur pool's workers run."""
    # One BLAS thread: each griddata call builds a small triangulation whose lazy barycentric transforms
    # are many tiny LAPACK calls, each waking OpenBLAS' pool. Beside another busy process that made them
    # 10-100x slower (8 images: 8.7-140 s vs 1.7 s); quiet, 6% (shapes jobs 17.0 -> 16.0 s). Same values.
    with threadpool_limits(limits=1, user_api="blas"):
        images = [img] + [im for mask in masks for im in pic_images(img, saliency, mask, thresholds)]
    return images, [webp_bytes(im) for im in images]


def _usable_cores() -> int:
    """torch's intra-op threads, at most the cores this process may use: the CPU share it was given (a
    Ray task with one CPU runs torch on one thread, and so blurs serially)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(torch.get_num_threads(), cores))


def _blur_pool(images: int) -> ProcessPoolExecutor | contextlib.nullcontext:
    """A process per usable core for the blurring (griddata holds the GIL: threads run it one at a time),
    forked, so nothing is imported again and a user's script needs no ``__main__`` guard; the values are
    the serial ones, image by image. ``nullcontext()`` (serial) with one core or image, where fork is
    missing, or inside a daemonic process (which may not have children)."""
    cores = _usable_cores()
    if (cores < 2 or images < 2 or "fork" not in multiprocessing.get_all_start_methods()
            or multiprocessing.current_process().daemon):
        return contextlib.nullcontext()
    return ProcessPoolExecutor(min(cores, images), mp_context=multiprocessing.get_context("fork"))


CURVE_X = np.append(np.linspace(0.0, 1.0, num=1000, endpoint=False), 1.0)  # PIC's 1001 points


def pic_curve(original: tuple[float, float], points: list[tuple[float, float]], min_pred_value: float | None = None,
              keep_monotonous: bool = True) -> np.ndarray | None:
    """One image's PIC on :data:`CURVE_X` from (entropy, score) of the original and of [fully blurred,
    thresholds…]; None where PIC excludes the image."""
    (e_orig, p_orig), (e_blur, p_blur) = original, points[0]
    if (min_pred_value is not None and p_orig < min_pred_value) or e_blur >= e_orig or p_blur >= p_orig:
        return None
    curve, best = [], 0.0
    for e, p in points[1:]:
        ne = float(np.clip((e - e_blur) / (e_orig - e_blur), 0.0, 1.0))
        npred = float(np.clip((p - p_blur) / (p_orig - p_blur), 0.0, 1.0))
        best = max(best, npred)
        curve.append((ne, best if keep_monotonous else npred))
    curve += [(0.0, 0.0), (1.0, 1.0)]
    xs, ys = zip(*curve, strict=True)
    f = interpolate.interp1d(x=xs, y=ys)
    return np.append(f(CURVE_X[:-1]), 1.0)


def curve_auc(y: np.ndarray) -> float:
    return float(np.trapezoid(y, CURVE_X))


def pic_auc(original: tuple[float, float], points: list[tuple[float, float]], min_pred_value: float | None = None,
            keep_monotonous: bool = True) -> float | None:
    """AUC of one image's PIC (:func:`pic_curve`); None where PIC excludes the image."""
    y = pic_curve(original, points, min_pred_value, keep_monotonous)
    return None if y is None else curve_auc(y)


def median_curve_auc(curves: list[np.ndarray]) -> float:
    """The release's aggregate: AUC of the pointwise median of the kept curves."""
    return curve_auc(np.median(np.stack(curves), axis=0))


def image_masks(imgs: np.ndarray, n_masks: int, fraction: float) -> np.ndarray:
    """``n_masks`` random masks of ``fraction`` of the pixels per uint8 image (``B×H×W×C`` →
    ``B×M×H×W`` bool), drawn from a seed of the image's bytes alone: every method, job and run gets
    the same masks for the same image."""
    b, h, w, _ = imgs.shape
    k = int(h * w * fraction)
    masks = np.zeros((b, n_masks, h * w), dtype=bool)
    for i in range(b):
        seed = int.from_bytes(hashlib.sha256(np.ascontiguousarray(imgs[i]).tobytes()).digest()[:8], "little")
        rng = np.random.default_rng(seed)
        for m in range(n_masks):
            masks[i, m, rng.choice(h * w, size=k, replace=False)] = True
    return masks.reshape(b, n_masks, h, w)


def information_level_of(model: nn.Module, x: Tensor, maps: Tensor, x_range: tuple[Tensor, Tensor],
                         random_masks: np.ndarray, thresholds=THRESHOLDS, min_pred_value: float | None = None,
                         keep_monotonous: bool = True, chunk_size: int = 256) -> list[list[float | None]]:
    """PIC AUC of each image under each of its random masks (``B×M×H×W`` bool) → ``B`` lists of ``M``."""
    curves = pic_curves_of(model, x, maps, x_range, random_masks, thresholds, min_pred_value, keep_monotonous,
                           chunk_size)
    return [[None if c is None else curve_auc(c) for c in per] for per in curves]


def pic_curves_of(model: nn.Module, x: Tensor, maps: Tensor, x_range: tuple[Tensor, Tensor],
                  random_masks: np.ndarray, thresholds=THRESHOLDS, min_pred_value: float | None = None,
                  keep_monotonous: bool = True, chunk_size: int = 256) -> list[list[np.ndarray | None]]:
    """PIC curve of each image under each of its random masks (``B×M×H×W`` bool) → ``B`` lists of ``M``."""
    imgs = to_uint8(x, x_range)
    sal = channel_sum(maps).float().cpu().numpy()
    batch: list[np.ndarray] = []
    entropy: list[int] = []
    with _blur_pool(len(x)) as pool:
        image_map = partial(pool.map, chunksize=4) if pool else map
        for images, sizes in image_map(pic_inputs, imgs, sal, random_masks, repeat(tuple(thresholds))):
            batch.extend(images)
            entropy.extend(sizes)
    xs = from_uint8(np.stack(batch), x_range, x.device)
    with torch.inference_mode():
        scores = torch.cat([model(xs[s : s + chunk_size]).amax(dim=1) for s in range(0, len(xs), chunk_size)])
    scores = scores.double().cpu().tolist()
    per = 1 + len(thresholds)
    out, i = [], 0
    for b in range(len(x)):
        original = (entropy[i], scores[i])
        i += 1
        aucs = []
        for _ in range(len(random_masks[b])):
            aucs.append(pic_curve(original, list(zip(entropy[i : i + per], scores[i : i + per], strict=True)),
                                  min_pred_value, keep_monotonous))
            i += per
        out.append(aucs)
    return out


@register_metric("information_level", direction="higher", category="faithfulness", excludes=True,
                 aggregate="reported",
                 description="PIC AUC: score recovered per WebP byte as top-salient pixels are un-blurred (XRAI)")
def information_level(ctx: MetricContext, thresholds: tuple[float, ...] = THRESHOLDS, mask_fraction: float = 0.01,
                      n_masks: PositiveInt = 10, min_pred_value: float | None = None, keep_monotonous: bool = True,
                      excluded_value: float | None = None) -> Tensor:
    """Each image's mean PIC AUC over its ``n_masks`` random masks (the same for every method); the
    job value reported is the AUC of the median curve over all kept (image, mask) curves."""
    b = len(ctx.x)
    masks = image_masks(to_uint8(ctx.x, ctx.x_range), n_masks, mask_fraction)
    curves = pic_curves_of(ctx.model, ctx.x, ctx.maps, ctx.x_range, masks, tuple(thresholds), min_pred_value,
                           keep_monotonous, ctx.chunk_size)
    kept = [c for per in curves for c in per if c is not None]
    if not kept:
        raise ValueError(f"information_level: all {b} images are excluded by PIC under all {n_masks} masks (their "
                         "fully blurred version is not less informative or not lower scored than the original); "
                         "raise n_masks, or give excluded_value (e.g. 0.0) to score them")
    values = []
    for per in curves:
        aucs = [curve_auc(c) for c in per if c is not None]
        values.append(float(np.mean(aucs)) if aucs else float("nan") if excluded_value is None
                      else float(excluded_value))
    ctx.report(median_curve_auc(kept))
    return torch.tensor(values, dtype=torch.float64, device=ctx.x.device)
