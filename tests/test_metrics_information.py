"""Information Level (PIC AUC): a hand-computed curve, the blur and entropy pieces, and PAIR's ``saliency``.

The PAIR ``saliency`` package (a test dependency, ``.[test]``) is the reference implementation; its
test is skipped where it is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from bench.data.base import normalise
from bench.data.synthetic import MEAN, STD, generate_shapes
from bench.methods import create_method
from bench.metrics import MetricContext, create_metric
from bench.metrics.information import (
    blurred_image,
    from_uint8,
    image_masks,
    information_level_of,
    pic_auc,
    pic_curves_of,
    to_uint8,
    webp_bytes,
)

ORIGINAL = (100.0, 1.0)  # (WebP bytes, score) of the original image
BLURRED = (50.0, 0.0)


def test_pic_auc_two_thresholds_by_hand():
    # Thresholds give (entropy, score) (75, 0.5) and (90, 0.4) → normalised (0.5, 0.5), (0.8, 0.4);
    # monotone: (0.8, 0.5). The curve through (0,0), (0.5,0.5), (0.8,0.5), (1,1) has area
    # 0.5·0.5/2 + 0.3·0.5 + 0.2·(0.5+1)/2 = 0.125 + 0.15 + 0.15 = 0.425; its knots lie on the
    # 0.001 grid, so the 1001-point trapezoid is exact.
    points = [BLURRED, (75.0, 0.5), (90.0, 0.4)]
    assert pic_auc(ORIGINAL, points) == pytest.approx(0.425, abs=1e-12)
    # Without the running maximum: 0.125 + 0.3·(0.5+0.4)/2 + 0.2·(0.4+1)/2 = 0.125 + 0.135 + 0.14.
    assert pic_auc(ORIGINAL, points, keep_monotonous=False) == pytest.approx(0.4, abs=1e-12)


def test_pic_auc_clips_and_excludes():
    assert pic_auc(ORIGINAL, [BLURRED, (120.0, 2.0)]) == pytest.approx(0.5, abs=1e-12)  # clipped to (1, 1): y = x
    assert pic_auc(ORIGINAL, [(100.0, 0.0), (75.0, 0.5)]) is None  # blurred not less informative
    assert pic_auc(ORIGINAL, [(50.0, 1.0), (75.0, 0.5)]) is None  # blurred not lower scored
    assert pic_auc(ORIGINAL, [BLURRED, (75.0, 0.5)], min_pred_value=2.0) is None


def test_blurred_image_keeps_corners_and_known_pixels():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    keep = np.zeros((16, 16), dtype=bool)
    keep[5, 7] = True
    out = blurred_image(img, keep)
    assert out.dtype == np.uint8 and out.shape == img.shape
    for r, c in [(0, 0), (0, 15), (15, 0), (15, 15), (5, 7)]:
        assert (out[r, c] == img[r, c]).all()
    assert blurred_image(img, np.ones((16, 16), dtype=bool)) is img
    flat = np.full((8, 8, 1), 77, dtype=np.uint8)
    assert (blurred_image(flat, np.zeros((8, 8), dtype=bool)) == 77).all()


@pytest.mark.parametrize("channels", [3, 1])
def test_blurred_image_equals_pair_bit_for_bit(channels):
    # PAIR interpolates channel by channel; ours interpolates all channels in one griddata call (one
    # triangulation). The images must be the same bytes, PIC's 1% masks and sparser/denser ones alike.
    pic = pytest.importorskip("saliency.metrics.pic")
    rng = np.random.default_rng(3)
    for fraction in (0.01, 0.05, 0.3):
        img = rng.integers(0, 256, (32, 28, channels), dtype=np.uint8)
        keep = rng.random((32, 28)) < fraction
        with threadpool_limits(limits=1, user_api="blas"):  # same values; no crawl beside a busy process
            ref = pic.create_blurred_image(img if channels > 1 else img[:, :, 0], keep)
        assert np.array_equal(blurred_image(img, keep), ref if channels > 1 else ref[:, :, None])


def test_blurred_image_fills_outside_the_hull_with_each_channel_mean(monkeypatch):
    # Corners are always kept, so PIC never leaves the hull; a caller's own interpolator might: each channel
    # gets its own mean there, as PAIR's fill_value=mean_color[channel].
    import bench.metrics.information as information

    griddata = information.interpolate.griddata
    monkeypatch.setattr(information.interpolate, "griddata",
                        lambda *a, **k: np.where(np.arange(len(a[2]))[:, None] == 0, np.nan, griddata(*a, **k)))
    img = np.stack([np.full((4, 4), v, dtype=np.uint8) for v in (10, 200)], axis=2)
    img[0, 0] = (0, 0)  # a corner (kept) differs from the rest, so the means are not the values
    out = blurred_image(img, np.zeros((4, 4), dtype=bool))
    assert tuple(out[0, 1]) == tuple(np.round(img.mean(axis=(0, 1))).astype(np.uint8))


def test_webp_entropy_orders_images():
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert webp_bytes(np.zeros((32, 32, 3), dtype=np.uint8)) < webp_bytes(noise)
    assert webp_bytes(noise[:, :, :1]) > 0  # grey images too


def test_uint8_round_trip(x_range):
    x = torch.rand(2, 3, 8, 8) * 4 - 2
    back = from_uint8(to_uint8(x, x_range), x_range, x.device)
    assert (back - x).abs().max().item() <= 4 / 255 / 2 + 1e-6


@pytest.fixture
def batch(tiny_cnn, x_range):
    x, y, _ = generate_shapes(4, 32, seed=2)
    x = normalise(x, MEAN, STD)
    maps = create_method("grad")(tiny_cnn, x, y, x_range=x_range).detach()
    return tiny_cnn, x, y, maps


def test_information_level_equals_pair_saliency(batch, x_range):
    pic = pytest.importorskip("saliency.metrics.pic")
    model, x, _, maps = batch
    np.random.seed(0)
    masks = np.stack([pic.generate_random_mask(32, 32, fraction=0.05) for _ in range(len(x))])[:, None]
    ours = information_level_of(model, x, maps, x_range, masks)

    def pred_func(u8):
        with torch.inference_mode():
            return model(from_uint8(u8, x_range, x.device)).amax(dim=1).double().numpy()

    imgs, sal = to_uint8(x, x_range), maps.sum(1).numpy()
    compared = 0
    for b in range(len(x)):
        try:  # on one BLAS thread, as ours: the same values, without the pool's crawl beside a busy process
            with threadpool_limits(limits=1, user_api="blas"):
                ref = pic.compute_pic_metric(imgs[b], sal[b], masks[b, 0], pred_func, [0.05, 0.1, 0.15, 0.2, 0.25, 0.3],
                                             min_pred_value=-np.inf).auc
        except pic.ComputePicMetricError:
            assert ours[b][0] is None
            continue
        assert ours[b][0] == pytest.approx(ref, rel=1e-5)  # float32 forwards: batch of 1 vs one batch
        compared += 1
    assert compared > 0


def test_information_level_metric(batch, x_range):
    model, x, y, maps = batch
    ctx = MetricContext(model, x, y, y, maps, create_method("grad"), x_range,
                        generator=torch.Generator().manual_seed(0))
    metric = create_metric("information_level", n_masks=2)
    assert metric.aggregate == "reported"
    v = metric(ctx)
    assert v.shape == (len(x),)
    kept = v[~v.isnan()]  # PIC-excluded images are NaN, which the runner drops
    assert len(kept) and ((kept >= 0) & (kept <= 1)).all()
    assert 0 <= ctx.reported <= 1  # the release's job value: AUC of the median curve
    ctx.generator = torch.Generator().manual_seed(123)  # the job's noise stream does not choose the masks
    filled = create_metric("information_level", n_masks=2, excluded_value=0.0)(ctx)
    torch.testing.assert_close(filled[~v.isnan()], kept)
    assert (filled[v.isnan()] == 0).all()


def test_information_level_same_masks_and_n_for_every_method(batch, x_range):
    model, x, y, _ = batch
    masks = image_masks(to_uint8(x, x_range), 10, 0.01)
    assert masks.shape == (4, 10, 32, 32) and (masks.sum((2, 3)) == 10).all()
    assert (image_masks(to_uint8(x[3:4], x_range), 10, 0.01) == masks[3:4]).all()  # the image alone decides
    assert (image_masks(to_uint8(x, x_range), 2, 0.01) == masks[:, :2]).all()  # fewer masks: the first ones
    masks = masks[:, :2]  # CPU time: two of the metric's ten masks per image
    excluded, n = {}, {}
    for name in ("grad", "smoothgrad"):
        method = create_method(name)
        gen = torch.Generator().manual_seed(7)  # the method's own draws: the masks do not come from here
        maps = method(model, x, y, x_range=x_range, generator=gen).detach()
        # exactly what the metric scores (it draws image_masks itself: checked above to be these)
        curves = pic_curves_of(model, x, maps, x_range, masks)
        excluded[name] = [[c is None for c in per] for per in curves]
        n[name] = sum(not all(per) for per in excluded[name])
    assert excluded["grad"] == excluded["smoothgrad"] and n["grad"] == n["smoothgrad"] > 0


def test_pic_blurring_runs_on_one_blas_thread(batch, x_range, monkeypatch):
    # griddata's many tiny LAPACK calls each wake OpenBLAS' pool, which crawls beside another busy process
    # (an unpinned run of this test took minutes beside a training job); the values are the reference's
    # either way (test_information_level_equals_pair_saliency scores through the pinned path).
    from threadpoolctl import threadpool_info

    import bench.metrics.information as information

    model, x, _, maps = batch
    seen: list[int] = []
    griddata = information.interpolate.griddata

    def spy(*args, **kwargs):
        seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
        return griddata(*args, **kwargs)

    monkeypatch.setattr(information.interpolate, "griddata", spy)
    # pic_inputs is what each blur-pool worker runs (a spy in this process sees only serial calls)
    information.pic_inputs(to_uint8(x[:1], x_range)[0], maps[0].sum(0).numpy(),
                           image_masks(to_uint8(x[:1], x_range), 1, 0.01)[0])
    assert seen and set(seen) == {1}


def test_pic_blur_pool_gives_the_serial_values(batch, x_range, monkeypatch):
    # one forked process per core blurs the images; the curves must be the serial ones, image by image
    import bench.metrics.information as information

    model, x, _, maps = batch
    masks = image_masks(to_uint8(x, x_range), 2, 0.01)
    monkeypatch.setattr(information, "_usable_cores", lambda: 2)
    assert isinstance(information._blur_pool(len(x)), information.ProcessPoolExecutor)
    pooled = pic_curves_of(model, x, maps, x_range, masks)
    monkeypatch.setattr(information, "_usable_cores", lambda: 1)
    assert information._blur_pool(len(x)).__enter__() is None
    serial = pic_curves_of(model, x, maps, x_range, masks)
    assert [[None if c is None else c.tolist() for c in per] for per in pooled] == \
        [[None if c is None else c.tolist() for c in per] for per in serial]


def test_pic_blur_pool_takes_torch_threads_share():
    # a process given one thread (a Ray task with num_cpus=1) blurs serially: no oversubscription
    import bench.metrics.information as information

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert information._usable_cores() == 1
    finally:
        torch.set_num_threads(threads)
