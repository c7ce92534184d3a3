"""Any model: the methods run on timm CNNs, ViTs and MLP-Mixers (random weights, small inputs)."""

from __future__ import annotations

import pytest
import timm
import torch
from test_methods import assert_unchanged, model_fingerprint

from bench.methods import create_method
from bench.methods.base import check_maps
from bench.methods.cam import auto_layer, trace_calls
from bench.methods.noise import classifier_name

# name, timm kwargs, input side, the last conv block Grad-CAM must find. The big ones take 1.4–1.8 s
# each on one idle core (2.5–3 s on a loaded one): under the ~3 s bar for @pytest.mark.slow.
MODELS = [
    pytest.param("resnet18", {}, 64, "layer4", id="resnet18"),
    pytest.param("convnext_tiny", {}, 64, "norm_pre", id="convnext_tiny"),  # Identity after stages.3
    pytest.param("vit_tiny_patch16_224", {"img_size": 32}, 32, "blocks.11.norm1", id="vit_tiny"),
    pytest.param("resnet50", {}, 64, "layer4", id="resnet50"),
    pytest.param("efficientnetv2_rw_s", {}, 64, "bn2", id="efficientnetv2_rw_s"),
    pytest.param("mixer_b16_224", {"img_size": 32}, 32, "blocks.11.norm1", id="mixer_b16"),
]
_cache: dict[str, torch.nn.Module] = {}


def make(name: str, kwargs: dict) -> torch.nn.Module:
    if name not in _cache:
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False, num_classes=5, **kwargs).eval()
        # timm zero-initialises some heads (MLP-Mixer): every gradient would be exactly zero
        torch.nn.init.normal_(model.get_classifier().weight, std=0.02)
        for p in model.parameters():  # as the runner hands models over: input gradients only
            p.requires_grad_(False)
        _cache[name] = model
    return _cache[name]


def inputs(side: int) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(0))
    return x, torch.tensor([0, 3]), (torch.full((3,), -2.5), torch.full((3,), 2.5))


@pytest.mark.parametrize("name, kwargs, side, layer", MODELS)
def test_methods_on_timm_model(name, kwargs, side, layer):
    model = make(name, kwargs)
    x, y, x_range = inputs(side)
    before = model_fingerprint(model)
    assert auto_layer(trace_calls(model, x)) == layer
    for method, params in (("grad", {}), ("smoothgrad", {"n": 2}), ("gradcam", {}), ("gradcam", {"relu": False})):
        maps = create_method(method, **params)(model, x, y, x_range=x_range, generator=torch.Generator())
        check_maps(maps, x, method)
        # random weights can make the whole CAM negative, so its ReLU'd form may be all zero
        assert params == {} and method == "gradcam" or maps.abs().sum() > 0, f"{method} on {name}: all-zero map"
    assert_unchanged(before, model)


@pytest.mark.parametrize("name, kwargs, side, head", [("resnet18", {}, 64, "fc"),
                                                       ("vit_tiny_patch16_224", {"img_size": 32}, 32, "head")])
def test_noisegrad_on_timm_model(name, kwargs, side, head):
    model = make(name, kwargs)
    x, y, x_range = inputs(side)
    assert classifier_name(model) == head  # timm's get_classifier()
    before = model_fingerprint(model)
    maps = create_method("noisegrad", n=3)(model, x, y, x_range=x_range, generator=torch.Generator().manual_seed(0),
                                           chunk_size=4)  # two copies in one pass, then one
    check_maps(maps, x, "noisegrad")
    for chunk, vmap in ((2, None), (4, True), (4, False)):  # one copy per pass; vmapped; looped
        other = create_method("noisegrad", n=3, vmap=vmap)(model, x, y, x_range=x_range,
                                                           generator=torch.Generator().manual_seed(0), chunk_size=chunk)
        torch.testing.assert_close(maps, other, rtol=1e-4, atol=1e-6)
    assert_unchanged(before, model)
