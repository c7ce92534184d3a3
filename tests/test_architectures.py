"""The real architectures of the board: ResNet-18 (CIFAR stem) and the small ViT, as the suite builds them.

Untrained models (structure only): Grad-CAM's automatic layer, the size of its maps, and the SP(β)
swap — no ReLU left in the ResNet, no GELU in the ViT where ``replace = "all"`` asks for it.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.methods import create_method
from bench.methods.cam import auto_layer, trace_calls
from bench.models import build_model
from bench.models.activations import functional_relu_calls, remaining
from bench.models.zoo import ModelError
from bench.suite import load_suite

SUITE = "architectures"
SIDE = 32  # the suite's shapes
X = torch.randn(2, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
Y = torch.tensor([0, 3])
X_RANGE = (torch.full((3,), -2.0), torch.full((3,), 2.0))


@functools.cache
def suite_jobs():
    return load_suite(SUITE).jobs


def suite_recipe(architecture: str, activation: str):
    """The suite's recipe of that model: the test follows the suite's configuration."""
    return {(j.recipe.architecture, j.recipe.activation): j.recipe for j in suite_jobs()
            if j.recipe.dataset == "shapes"}[(architecture, activation)]


@functools.cache
def suite_model(architecture: str, activation: str) -> nn.Module:
    r = suite_recipe(architecture, activation)
    torch.manual_seed(0)
    model = build_model(r.architecture, r.activation, 3, 6, SIDE, **r.model_params)
    model.eval()
    for p in model.parameters():  # as the runner hands models over: input gradients only
        p.requires_grad_(False)
    # timm zero-initialises the ViT head: every gradient would be zero
    nn.init.normal_(model.get_classifier().weight, std=0.02)
    return model


def gelu_calls(model: nn.Module, x: torch.Tensor, monkeypatch) -> int:
    """Calls of F.gelu during a forward (nn.GELU calls it too, so modules count)."""
    calls = []
    gelu = F.gelu
    monkeypatch.setattr(F, "gelu", lambda *a, **k: calls.append(1) or gelu(*a, **k))
    with torch.no_grad():
        model(x)
    monkeypatch.setattr(F, "gelu", gelu)
    return len(calls)


def test_the_suite_runs_them_on_shapes_at_32():
    recipes = [j.recipe for j in suite_jobs() if j.recipe.dataset == "shapes"]
    assert {r.architecture for r in recipes} == {"resnet18-cifar", "vit-tiny"}
    assert {r.dataset_params.get("image_size", 32) for r in recipes} == {SIDE}


def test_the_suite_runs_them_and_cnn_small_on_fashion_mnist():
    recipes = [j.recipe for j in suite_jobs() if j.recipe.dataset == "fashion-mnist"]
    assert {r.architecture for r in recipes} == {"resnet18-cifar", "vit-tiny", "cnn-small"}


@pytest.mark.parametrize("architecture, activation, layer", [
    ("resnet18-cifar", "relu", "layer4"),  # the last conv stage
    ("vit-tiny", "gelu", None),  # the last block's norm1: the patch tokens the class token still reads
])
def test_gradcam_layer_and_map_size(architecture, activation, layer):
    model = suite_model(architecture, activation)
    if layer is None:
        layer = f"blocks.{len(model.blocks) - 1}.norm1"
    assert auto_layer(trace_calls(model, X)) == layer
    maps = create_method("gradcam", relu=False)(model, X, Y, x_range=X_RANGE, generator=torch.Generator())
    assert maps.shape == X.shape and maps.abs().sum() > 0


def test_vit_gradcam_is_pytorch_grad_cams_with_the_class_token_dropped():
    # Reference: pytorch-grad-cam's ViT recipe (jacobgil/pytorch-grad-cam, tutorials/vision_transformers.md):
    # target_layers = [model.blocks[-1].norm1], reshape_transform drops token 0 and lays the rest out
    # on the patch grid; Grad-CAM = ReLU(Σ_c mean_hw(∂y/∂A_c) · A_c), resized bilinearly to the input.
    model = suite_model("vit-tiny", "gelu")
    gh, gw = model.patch_embed.grid_size
    kept = []
    handle = model.blocks[-1].norm1.register_forward_hook(lambda m, i, o: kept.append(o))
    try:
        x = X.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(x).gather(1, Y[:, None]).sum(), kept[-1])
    finally:
        handle.remove()

    def reshape_transform(t):
        return t[:, 1:, :].reshape(t.size(0), gh, gw, t.size(2)).transpose(2, 3).transpose(1, 2)

    acts, grads = reshape_transform(kept[-1].detach()), reshape_transform(grad)
    cam = (grads.mean(dim=(2, 3), keepdim=True) * acts).sum(1, keepdim=True).clamp(min=0)
    ref = F.interpolate(cam, size=(SIDE, SIDE), mode="bilinear", align_corners=False).expand_as(X)
    ours = create_method("gradcam")(model, X, Y, x_range=X_RANGE, generator=torch.Generator())
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-6)
    assert (gh, gw) == (SIDE // model.patch_embed.patch_size[0],) * 2 and cam.abs().sum() > 0


def resnet_sp_activations() -> list[str]:
    acts = sorted({j.recipe.activation for j in suite_jobs() if j.recipe.architecture == "resnet18-cifar"})
    return [a for a in acts if a.startswith("softplus:")]


@pytest.mark.parametrize("activation", resnet_sp_activations())
def test_resnet_sp_beta_leaves_no_relu(activation):
    model = suite_model("resnet18-cifar", activation)
    plain = suite_model("resnet18-cifar", "relu")
    assert remaining(model, (nn.ReLU,)) == [] and functional_relu_calls(model, X) == []
    beta = float(activation.split(":")[1])
    softplus = [m for m in model.modules() if isinstance(m, nn.Softplus)]
    assert len(softplus) == len(remaining(plain, (nn.ReLU,))) and all(m.beta == beta for m in softplus)


def test_vit_keeps_its_gelu_and_sp_beta_replaces_it_only_when_asked(monkeypatch):
    native = suite_model("vit-tiny", "gelu")
    n_gelu = len(remaining(native, (nn.GELU,)))
    assert n_gelu == len(native.blocks) and not remaining(native, (nn.ReLU,))  # one GELU per MLP: timm's ViT
    r = suite_recipe("vit-tiny", "gelu")
    params = {k: v for k, v in r.model_params.items() if k != "replace"}
    with pytest.raises(ModelError, match='no ReLU module to replace with softplus:10; set params.replace = "all"'):
        build_model(r.architecture, "softplus:10", 3, 6, SIDE, **params)  # SP(β) is a smoothing of ReLU
    swapped = build_model(r.architecture, "softplus:10", 3, 6, SIDE, **{**params, "replace": "all"}).eval()
    assert remaining(swapped, (nn.GELU,)) == [] and gelu_calls(swapped, X, monkeypatch) == 0
    assert len(remaining(swapped, (nn.Softplus,))) == n_gelu
    assert gelu_calls(native, X, monkeypatch) == n_gelu  # the counter sees them when they are there
