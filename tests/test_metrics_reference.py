"""SPEC.md reference values for EF, Gini, entropy, the spectrum tail slope and inherent noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.methods import create_method
from bench.metrics.complexity import entropy, gini
from bench.metrics.noise import method_sigma, out_of_bounds_mass
from bench.metrics.spectral import expected_frequency, radial_spectrum, tail_slope

VECTORS = Path(__file__).parent / "data" / "metric_vectors.npz"


def stripes(n: int) -> torch.Tensor:
    """Period-2 vertical stripes, 1×1×n×n."""
    return (torch.arange(n) % 2).float().expand(n, n).reshape(1, 1, n, n)


# -- EF (SPEC.md "ef" checks) -------------------------------------------------------------

def test_ef_constant_map_is_zero():
    assert expected_frequency(torch.ones(2, 3, 32, 32)).tolist() == [0.0, 0.0]


@pytest.mark.parametrize(("n", "expected"), [(32, 1.0626e-4), (224, 1.7353e-6)])
def test_ef_period2_stripes(n, expected):
    assert expected_frequency(stripes(n)).item() == pytest.approx(expected, rel=1e-4)  # SPEC.md, 5 digits


def test_ef_iid_noise():
    g = torch.Generator().manual_seed(0)
    values = expected_frequency(torch.randn(16, 3, 32, 32, generator=g))
    assert values.mean().item() == pytest.approx(1.6e-4, rel=0.08)  # SPEC.md: ≈1.6e-4 ± 8 % over seeds


# -- Gini and entropy (SPEC.md "sparseness" and "complexity" checks) ----------------------------

def test_gini_one_hot_224():
    a = torch.zeros(1, 1, 224, 224)
    a[0, 0, 5, 7] = 1
    assert gini(a).item() == pytest.approx(0.994988, abs=1e-6)


def test_gini_constant_is_zero():
    assert gini(torch.full((1, 3, 8, 8), 2.0)).item() == pytest.approx(0.0, abs=1e-12)


def test_gini_ramp():
    n = 224 * 224
    assert gini(torch.arange(n, dtype=torch.float64).view(1, 1, 224, 224)).item() == pytest.approx(0.33334, abs=1e-5)


def test_entropy_constant_is_ln_n():
    assert entropy(torch.ones(1, 3, 16, 16)).item() == pytest.approx(np.log(3 * 16 * 16), rel=1e-9)


@pytest.mark.parametrize("k", range(4))
def test_reference_vectors(k):
    # tests/data/metric_vectors.npz: an independent NumPy/SciPy implementation of SPEC.md.
    d = np.load(VECTORS)
    m = torch.from_numpy(d[f"map{k}"])[None]
    assert expected_frequency(m).item() == pytest.approx(float(d[f"ef{k}"]), rel=1e-5)
    assert entropy(m).item() == pytest.approx(float(d[f"entropy{k}"]), rel=1e-5)


@pytest.mark.parametrize("k", range(5))
def test_gini_reference_vectors(k):
    # gini_norm: Quantus' default (max-normalised); gini: normalise=False. map4 (~1e-4) is where they part.
    d = np.load(VECTORS)
    m = torch.from_numpy(d[f"map{k}"])[None]
    assert gini(m).item() == pytest.approx(float(d[f"gini_norm{k}"]), rel=1e-5)
    assert gini(m, normalise=False).item() == pytest.approx(float(d[f"gini{k}"]), rel=1e-5)


@pytest.mark.parametrize("c", [1e-6, 1.0, 1e6])
def test_gini_is_scale_free(c):
    m = torch.from_numpy(np.load(VECTORS)["map4"]).double()[None]
    assert gini(c * m).item() == pytest.approx(gini(m).item(), rel=1e-9)
    assert abs(gini(m, normalise=False).item() - gini(m).item()) > 1e-4  # the raw Gini is not


# -- spectrum tail slope ---------------------------------------------------------------------

def test_tail_slope_of_a_power_law_is_its_exponent():
    k = 23
    f = torch.linspace(0, 1, k, dtype=torch.float64)
    p = torch.cat([torch.ones(1, dtype=torch.float64), f[1:] ** -2.5])[None]
    assert tail_slope(p / p.sum()).item() == pytest.approx(-2.5, abs=1e-12)
    p[0, 16:] = 0  # bins beyond the full annuli do not enter the fit
    assert tail_slope(p / p.sum(), full_bins=16).item() == pytest.approx(-2.5, abs=1e-12)


def test_tail_slope_matches_numpy_polyfit_over_the_full_annuli():
    g = torch.Generator().manual_seed(1)
    p = radial_spectrum(torch.randn(3, 3, 32, 32, generator=g))
    assert p.shape[1] == 23  # ⌊√(16² + 16²)⌋ + 1 bins; the full annuli are 0 … 15
    bins = np.arange(8, 16)
    for row, slope in zip(p.numpy(), tail_slope(p, 16).numpy(), strict=True):
        ref = np.polyfit(np.log(bins), np.log(row[8:16]), 1)[0]
        assert slope == pytest.approx(ref, rel=1e-9)


def test_tail_slope_of_constant_map_is_excluded():
    assert torch.isnan(tail_slope(radial_spectrum(torch.ones(1, 1, 32, 32)), 16)).all()


def test_tail_slope_fits_only_full_annuli():
    """The corner bins (r ≥ 16 on a 32×32 map) hold few frequencies and can hold no power although the
    map has high frequencies: a raster ramp's power lies on the axes, so bins 17 … 22 are empty. Over
    every bin the slope is undefined (NaN, excluded); over the full annuli it is finite."""
    ramp = torch.arange(1024, dtype=torch.float64).reshape(1, 1, 32, 32)
    p = radial_spectrum(ramp)
    assert (p[0, 17:] < 1e-25).all() and (p[0, 1:16] > 1e-6).all()
    assert torch.isnan(tail_slope(p)).all()
    assert -5 < tail_slope(p, 16).item() < 0


# -- inherent noise (SPEC.md "inherent_noise" checks, the AdaptGrad paper's Figure 3 setting) --------

X_MIN, X_MAX = -2.12, 2.64


def uniform_x(n: int = 400_000) -> torch.Tensor:
    """Midpoints of n equal cells of [x_min, x_max]: the mean over them is the uniform expectation."""
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    return (X_MIN + (X_MAX - X_MIN) * u).float().view(1, 1, 1, n)


@pytest.mark.parametrize(("method", "params", "expected"), [
    ("smoothgrad", {"alpha": 0.2}, 0.159577),           # = α√(2/π)
    ("adaptgrad", {"c": 0.95, "rule": "eq13"}, 0.013353),
    ("adaptgrad", {"c": 0.95, "rule": "released"}, 0.027067),  # the paper prints 0.01424: neither rule
    ("grad", {}, 0.0),
])
def test_inherent_noise(method, params, expected):
    x = uniform_x()
    x_range = (torch.tensor([X_MIN]), torch.tensor([X_MAX]))
    m = create_method(method, **params)
    a = out_of_bounds_mass(x, method_sigma(m, x, x_range), x_range)
    assert a.mean().item() == pytest.approx(expected, abs=1e-4 if expected > 0.1 else 2e-6)


def test_inherent_noise_smoothgrad_closed_form():
    assert 0.2 * np.sqrt(2 / np.pi) == pytest.approx(0.159577, abs=1e-6)
