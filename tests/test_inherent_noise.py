"""inherent_noise reads the method's declared input noise (``Method.input_noise``): SPEC.md's
reference values for SmoothGrad and AdaptGrad, 0 exactly for NoiseGrad (its noise is on the
weights), and the analytic value of FusionGrad's input σ α·(x_max − x_min) (not its weight σ)."""

from __future__ import annotations

import math

import pytest
import scipy.stats
import torch
from test_metrics_reference import X_MAX, X_MIN, uniform_x

from bench.methods import create_method
from bench.metrics import MetricContext, create_metric


def uniform_mass(alpha: float) -> float:
    """Mean out-of-bounds mass of N(x, σ²), σ = α·(b − a), over x uniform on [a, b]:
    (2σ/(b−a))·∫₀^{1/α} (1 − Φ(t)) dt = 2α·(φ(0) − φ(L) + L·(1 − Φ(L))), L = 1/α, since
    ∫₀^L (1 − Φ) = [t(1 − Φ(t)) + φ(t)]₀^L. As L → ∞ it is α√(2/π): 0.159577 for α = 0.2."""
    n = scipy.stats.norm
    ell = 1 / alpha
    return 2 * alpha * (n.pdf(0) - n.pdf(ell) + ell * n.sf(ell))


def metric_value(method_name: str, **params) -> torch.Tensor:
    """inherent_noise through the metric, on the paper's Figure 3 setting (x uniform on [−2.12, 2.64])."""
    x = uniform_x()
    x_range = (torch.tensor([X_MIN]), torch.tensor([X_MAX]))
    ctx = MetricContext(None, x, torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long),
                        torch.zeros_like(x), create_method(method_name, **params), x_range)
    return create_metric("inherent_noise")(ctx)


def test_the_analytic_value_is_spec_smoothgrad_reference():
    # the tail beyond L = 5 takes 2α(φ(5) − 5(1 − Φ(5))) ≈ 2.1e-8 off α√(2/π)
    assert uniform_mass(0.2) == pytest.approx(0.2 * math.sqrt(2 / math.pi) - 2.1e-8, abs=1e-9)
    assert uniform_mass(0.2) == pytest.approx(0.159577, abs=1e-6)


@pytest.mark.parametrize(("method", "params", "expected"), [
    ("smoothgrad", {"alpha": 0.2}, 0.159577),  # SPEC.md: α√(2/π)
    ("adaptgrad", {"c": 0.95, "rule": "eq13"}, 0.013353),  # SPEC.md
    ("adaptgrad", {"c": 0.95, "rule": "released"}, 0.027067),  # SPEC.md (the paper prints 0.01424)
    ("s-ng", {"alpha": 0.2}, 0.159577),  # NoiseGrad as the base adds no input noise
    ("a-ng", {"c": 0.95}, 0.027067),  # the AdaptGrad combos follow the release: rule "released"
])
def test_spec_reference_values(method, params, expected):
    v = metric_value(method, **params)
    assert v.shape == (1,) and v.item() == pytest.approx(expected, abs=1e-4 if expected > 0.1 else 2e-6)


@pytest.mark.parametrize("params", [{}, {"alpha": 0.2, "sigma": 0.5}, {"alpha": 0.05, "sigma": 0.01}])
def test_fusiongrad_is_the_analytic_value_of_its_input_alpha(params):
    """FusionGrad's input noise is its inner SmoothGrad's, σ = α·(x_max − x_min), whatever its
    weight σ: the uniform-x mass is 2α(φ(0) − φ(1/α) + (1/α)(1 − Φ(1/α))) ≈ α√(2/π)
    (default α = 0.15: 0.119683)."""
    alpha = params.get("alpha", create_method("fusiongrad").params["alpha"])
    assert metric_value("fusiongrad", **params).item() == pytest.approx(uniform_mass(alpha), rel=1e-4)


@pytest.mark.parametrize("params", [{}, {"sigma": 1.0}, {"sigma": 0.2, "n": 3}])
def test_noisegrad_adds_no_input_noise(params):
    """NoiseGrad multiplies weights, never the input: its inherent noise is 0 exactly."""
    assert metric_value("noisegrad", **params).item() == 0.0


def test_noise_free_methods_count_only_inputs_already_out_of_range():
    x = torch.tensor([-3.0, -1.0, 0.0, 2.0, 5.0]).view(1, 1, 1, 5)
    x_range = (torch.tensor([-2.0]), torch.tensor([2.0]))
    for name in ("grad", "noisegrad", "integrated_gradients"):
        ctx = MetricContext(None, x, torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long),
                            torch.zeros_like(x), create_method(name), x_range)
        assert create_metric("inherent_noise")(ctx).item() == pytest.approx(2 / 5, abs=0)


def test_a_callable_that_is_not_a_method_is_refused():
    x = uniform_x(10)
    ctx = MetricContext(None, x, torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long),
                        torch.zeros_like(x), lambda *a, **k: None, (torch.tensor([X_MIN]), torch.tensor([X_MAX])))
    with pytest.raises(TypeError, match="needs the job's method as a bench Method"):
        create_metric("inherent_noise")(ctx)
