"""MaxPool2x2 gives nn.MaxPool2d(2)'s bits: outputs, input gradients, second derivatives, under vmap;
without a gradient (its element-wise maxima) the same values and the same logits, bit for bit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.models.activations import set_activation
from bench.models.pool import MaxPool2x2
from bench.models.zoo import cnn_small


def _with_ties(shape: tuple[int, ...]) -> torch.Tensor:
    # ReLU outputs: many windows all zero and repeated positive values, where the argmax is a tie
    g = torch.Generator().manual_seed(0)
    return torch.relu(torch.randint(-3, 4, shape, generator=g).float() + 0.5 * torch.randn(shape, generator=g).round())


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("shape", [(8, 16, 28, 28), (8, 16, 7, 7), (3, 5, 9, 6), (2, 4, 3, 2)])
def test_forward_and_gradient_are_max_pool_bits(shape, layout):
    x = _with_ties(shape).contiguous(memory_format=layout)
    grad_out = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2, generator=torch.Generator().manual_seed(1))
    results = []
    for pool in (nn.MaxPool2d(2), MaxPool2x2()):
        xi = x.clone().requires_grad_(True)
        out = pool(xi)
        (g,) = torch.autograd.grad(out, xi, grad_out)
        with torch.inference_mode():
            results.append((out.detach(), g, pool(x)))
    for ref, ours in zip(*results, strict=True):
        assert torch.equal(ref, ours)
    for out in results[1]:  # handed on in the layout it came in, as nn.MaxPool2d does
        assert out.is_contiguous(memory_format=layout)


def test_second_derivative_matches_max_pool():
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    hvps = []
    for pool in (nn.MaxPool2d(2), MaxPool2x2()):
        xi = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(pool(xi).pow(2).sum(), xi, create_graph=True)
        hvps.append(torch.autograd.grad(g.sum(), xi)[0])
    assert torch.equal(*hvps)


def test_vmap_matches_max_pool():
    x = torch.randn(4, 2, 3, 8, 8)
    results = []
    for pool in (nn.MaxPool2d(2), MaxPool2x2()):
        xi = x.clone().requires_grad_(True)
        out = torch.func.vmap(pool, in_dims=1)(xi)
        (g,) = torch.autograd.grad(out.pow(2).sum(), xi)
        results.append((out, g))
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


def test_cnn_small_with_it_trains_and_explains_to_the_same_bits():
    torch.manual_seed(0)
    ours = cnn_small(in_chans=1, image_size=28)
    ref = cnn_small(in_chans=1, image_size=28)
    ref.load_state_dict(ours.state_dict())
    for i, layer in enumerate(ref):
        if isinstance(layer, MaxPool2x2):
            ref[i] = nn.MaxPool2d(2)
    assert sum(isinstance(m, MaxPool2x2) for m in ours.modules()) == 3
    x = torch.randn(16, 1, 28, 28)
    grads = []
    for model in (ref, ours):
        xi = x.clone().requires_grad_(True)
        model(xi).logsumexp(1).sum().backward()
        grads.append([xi.grad] + [p.grad for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        assert torch.equal(a, b)


def test_too_small_input_is_refused_like_max_pool():
    for pool in (nn.MaxPool2d(2), MaxPool2x2()):
        with pytest.raises(RuntimeError, match="too small"):
            pool(torch.zeros(1, 1, 1, 3))


def test_a_channels_last_input_stays_channels_last():
    x = torch.randn(2, 8, 6, 6).contiguous(memory_format=torch.channels_last)
    out = MaxPool2x2()(x)
    assert torch.equal(out, nn.MaxPool2d(2)(x)) and out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("shape", [(4, 3, 9, 7), (2, 5, 2, 2), (64, 16, 28, 28)])
def test_without_a_gradient_the_maxima_are_max_pool_values(shape, layout):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(shape, generator=g)  # negative maxima too
    x.view(-1)[torch.randint(0, x.numel(), (5,), generator=g)] = float("nan")  # a NaN wins its window
    x = x.contiguous(memory_format=layout)
    ref = nn.MaxPool2d(2)(x)
    for mode in (torch.inference_mode, torch.no_grad, torch.enable_grad):  # no input that wants a gradient
        with mode():
            out = MaxPool2x2()(x)
        torch.testing.assert_close(out, ref, rtol=0, atol=0, equal_nan=True)
        assert out.is_contiguous(memory_format=layout) and not out.requires_grad


@pytest.mark.parametrize("activation", ["relu", "softplus:1"])
def test_without_a_gradient_cnn_small_logits_are_the_same_bits(activation):
    torch.manual_seed(0)
    ours = set_activation(cnn_small(in_chans=1, image_size=28), activation).eval()
    ref = set_activation(cnn_small(in_chans=1, image_size=28), activation).eval()
    ref.load_state_dict(ours.state_dict())
    for i, layer in enumerate(ref):
        if isinstance(layer, MaxPool2x2):
            ref[i] = nn.MaxPool2d(2)
    x = torch.rand(64, 1, 28, 28)
    with torch.inference_mode():
        a, b = ours(x), ref(x)
    assert torch.equal(a.view(torch.int32), b.view(torch.int32))  # the bits, signed zeros included
