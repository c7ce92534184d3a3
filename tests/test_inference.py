"""Accuracy forwards: chunked features, whole-batch head, the bits of one plain forward per batch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.models.build import prepare_model
from bench.models.inference import FEATURE_CHUNK, accuracy, feature_split, logits
from bench.models.zoo import build_model

SPLITTABLE = [
    ("cnn-small", "relu", {}),
    ("cnn-small", "softplus:2", {}),
    ("cnn-small", "relu", {"global_pool": True}),
    ("simple-cnn", "relu", {}),
    ("simple-cnn", "softplus:1", {"batchnorm": True, "skip": True}),
]
WHOLE = [("mlp", "relu", {}), ("resnet18-cifar", "relu", {})]


def _model(arch: str, activation: str, params: dict, in_chans: int = 3) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(arch, activation, in_chans, 10, 32, **params)
    for m in model.modules():  # batch norm with statistics that are not the identity's
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _inputs(n: int = 3 * FEATURE_CHUNK + 17, in_chans: int = 3) -> torch.Tensor:
    return torch.rand(n, in_chans, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("prepared", [False, True], ids=["plain", "prepared"])
@pytest.mark.parametrize(("arch", "activation", "params"), SPLITTABLE + WHOLE)
def test_logits_are_one_whole_batch_forward_bit_for_bit(arch, activation, params, prepared):
    in_chans = 1 if arch == "mlp" else 3
    model = _model(arch, activation, params, in_chans)
    if prepared:
        prepare_model(model, torch.device("cpu"))
    x = _inputs(in_chans=in_chans)
    with torch.inference_mode():
        assert torch.equal(logits(model, x), model(x))
    assert (feature_split(model) is not None) == ((arch, activation, params) in SPLITTABLE)


def test_features_in_chunks_would_differ_from_the_head_in_chunks():
    # Why the head takes the whole batch: the GEMM's bits depend on its rows (else this module
    # could chunk the whole forward). Skipped where this machine's BLAS happens not to show it.
    model = _model("cnn-small", "relu", {})
    x = _inputs(1024)
    with torch.inference_mode():
        whole, chunked = model(x), torch.cat([model(c) for c in x.split(FEATURE_CHUNK)])
    if torch.equal(whole, chunked):
        pytest.skip("this BLAS computes a Linear layer's rows the same at every batch size")
    assert not torch.equal(whole, chunked)


def test_a_training_model_takes_the_whole_batch():
    model = _model("simple-cnn", "relu", {"batchnorm": True})
    assert feature_split(model) is not None and feature_split(model.train()) is None


def test_a_gemm_before_the_flatten_takes_the_whole_batch():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(30, 5), nn.Flatten(), nn.Linear(4 * 30 * 5, 10))
    assert feature_split(model) is None
    assert feature_split(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())) is None  # no flatten: no head


def test_accuracy_counts_whole_batch_argmaxes():
    model = _model("cnn-small", "relu", {})
    x = _inputs(2 * 1024 + 100)
    with torch.inference_mode():
        pred = torch.cat([model(x[i : i + 1024]) for i in range(0, len(x), 1024)]).argmax(1)
    y = torch.where(torch.arange(len(x)) % 3 == 0, pred, (pred + 1) % 10)  # a third right
    assert accuracy(model.train(), x, y) == (pred == y).sum().item() / len(x) == pytest.approx(1 / 3, abs=1e-3)
    assert not model.training  # evaluated, and left, in eval mode
