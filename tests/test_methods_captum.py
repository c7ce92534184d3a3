"""Every method that Captum has equals Captum on the same model and inputs: rel. error ≤ 1e-5.

Relative error is ‖ours − captum‖₂ / ‖captum‖₂ over the whole batch of maps (element-wise ratios
blow up where a map crosses zero).
"""

from __future__ import annotations

import pytest
import timm
import torch
from captum.attr import (
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Saliency,
)

from bench.methods import create_method
from bench.methods.integrated import baseline_for

TOL = 1e-5


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    assert ours.shape == ref.shape
    return ((ours - ref).norm() / ref.norm()).item()


def ours(name, model, x, y, x_range, generator=None, **params):
    return create_method(name, **params)(model, x, y, x_range=x_range, generator=generator)


@pytest.fixture
def batch(shapes_batch):
    return shapes_batch[0][:4], shapes_batch[1][:4]


@pytest.fixture
def resnet18():
    torch.manual_seed(0)
    return timm.create_model("resnet18", pretrained=False, num_classes=6).eval()  # ReLU(inplace=True)


@pytest.fixture
def batch64():
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 3, 64, 64, generator=g), torch.tensor([1, 4])


def test_grad_equals_saliency(tiny_cnn, batch, x_range):
    x, y = batch
    ref = Saliency(tiny_cnn).attribute(x, target=y, abs=False)
    assert rel_err(ours("grad", tiny_cnn, x, y, x_range), ref) <= TOL


def test_grad_x_input_equals_input_x_gradient(tiny_cnn, batch, x_range):
    x, y = batch
    ref = InputXGradient(tiny_cnn).attribute(x, target=y)
    assert rel_err(ours("grad_x_input", tiny_cnn, x, y, x_range), ref) <= TOL


@pytest.mark.parametrize("baseline", ["zero", "black", "white"])
def test_integrated_gradients_equals_captum_riemann_right(baseline, tiny_cnn, batch):
    x, y = batch
    x_range = (torch.tensor([-2.0, -1.5, -1.8]), torch.tensor([2.2, 2.5, 1.9]))
    x0 = baseline_for(x, baseline, x_range)
    ref = IntegratedGradients(tiny_cnn).attribute(x, baselines=x0, target=y, n_steps=16, method="riemann_right")
    got = ours("integrated_gradients", tiny_cnn, x, y, x_range, steps=16, baseline=baseline)
    assert rel_err(got, ref) <= TOL


def test_smoothgrad_equals_noise_tunnel(tiny_cnn, batch, x_range):
    # Same noise draws: Captum's NoiseTunnel draws torch.normal(0, σ) from the *global* RNG, one
    # (B·k)×C×H×W tensor per batch of k samples, rows sample-minor. With nt_samples_batch_size=1
    # that is one B×C×H×W draw per sample, which is exactly our order (one draw of x.shape per
    # sample); generator=None makes ours draw from the global RNG too, so both start from the same
    # manual_seed and see identical noise. σ is passed as an absolute value to both.
    x, y = batch
    sigma, n = 0.6, 6
    torch.manual_seed(123)
    ref = NoiseTunnel(Saliency(tiny_cnn)).attribute(x, nt_type="smoothgrad", nt_samples=n, nt_samples_batch_size=1,
                                                    stdevs=sigma, target=y, abs=False)
    torch.manual_seed(123)
    got = ours("smoothgrad", tiny_cnn, x, y, x_range, n=n, sigma=sigma)
    assert rel_err(got, ref) <= TOL
    torch.manual_seed(124)
    assert rel_err(ours("smoothgrad", tiny_cnn, x, y, x_range, n=n, sigma=sigma), ref) > 0.01  # noise matters


def test_guided_backprop_equals_captum(tiny_cnn, batch, x_range):
    x, y = batch
    ref = GuidedBackprop(tiny_cnn).attribute(x, target=y)
    got = ours("guided_backprop", tiny_cnn, x, y, x_range)
    assert rel_err(got, ref) <= TOL
    assert rel_err(got, ours("grad", tiny_cnn, x, y, x_range)) > 0.01  # really guided


def test_guided_backprop_equals_captum_with_inplace_relus(resnet18, batch64, x_range):
    x, y = batch64
    ref = GuidedBackprop(resnet18).attribute(x, target=y)
    assert rel_err(ours("guided_backprop", resnet18, x, y, x_range), ref) <= TOL


def captum_gradcam(model, layer, x, y):
    cam = LayerGradCam(model, layer).attribute(x, target=y, relu_attributions=True)
    # Captum's interpolate is F.interpolate with align_corners left at its default (False), as ours
    return LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), "bilinear").expand_as(x)


def test_gradcam_equals_layer_gradcam(tiny_cnn, batch, x_range):
    x, y = batch
    ref = captum_gradcam(tiny_cnn, tiny_cnn[7], x, y)  # the auto-detected layer
    assert rel_err(ours("gradcam", tiny_cnn, x, y, x_range), ref) <= TOL
    ref = captum_gradcam(tiny_cnn, tiny_cnn[5], x, y)  # a layer by name, with its own grid
    assert rel_err(ours("gradcam", tiny_cnn, x, y, x_range, layer="5"), ref) <= TOL


def test_gradcam_equals_layer_gradcam_on_resnet18(resnet18, batch64, x_range):
    x, y = batch64
    big = torch.nn.functional.interpolate(x, size=(128, 128), mode="bilinear")  # layer4 at 4×4
    ref = captum_gradcam(resnet18, resnet18.layer4, big, y)
    got = ours("gradcam", resnet18, big, y, x_range)  # auto: layer4
    assert rel_err(got, ref) <= TOL
    ref = captum_gradcam(resnet18, resnet18.layer3, x, y)
    assert rel_err(ours("gradcam", resnet18, x, y, x_range, layer="layer3"), ref) <= TOL
