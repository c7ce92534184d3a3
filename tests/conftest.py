"""Shared fixtures: a tiny untrained CNN, a small shapes batch, and an isolated model cache."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # timm must never wait on DNS in tests

import pytest
import torch

from bench.data.base import normalise
from bench.data.synthetic import MEAN, STD, generate_shapes
from bench.models.zoo import cnn_small

TINY_SUITE = """
name = "tiny"
description = "test suite"
samples = 6
seed = 0
datasets = [{{ name = "shapes", params = {{ n_train = 300, n_test = 20 }} }}]
metrics = {metrics}

[[models]]
architecture = "cnn-small"
activations = {activations}
max_epochs = 1
lr = 1e-3
batch_size = 64

{methods}
"""


FAST_PARAMS = {"smoothgrad": "n = 4", "adaptgrad": "n = 4", "integrated_gradients": "steps = 4"}


def tiny_suite_text(metrics=("ef", "delta_ef", "sparseness"), activations=("relu",),
                    methods=("grad", "smoothgrad")) -> str:
    meth = "\n".join(f'[[methods]]\nname = "{m}"\nparams = {{ {FAST_PARAMS.get(m, "")} }}' for m in methods)
    return TINY_SUITE.format(metrics=list(metrics), activations=list(activations), methods=meth)


@pytest.fixture(autouse=True, scope="session")
def _model_cache(tmp_path_factory):
    os.environ["GRADBENCH_CACHE"] = str(tmp_path_factory.mktemp("gradbench-cache"))


@pytest.fixture
def tiny_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return cnn_small(in_chans=3, num_classes=6).eval()


@pytest.fixture
def shapes_batch() -> tuple[torch.Tensor, torch.Tensor]:
    x, y, _ = generate_shapes(8, 32, seed=0)
    return normalise(x, MEAN, STD), y


@pytest.fixture
def x_range() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((3,), -2.0), torch.full((3,), 2.0)


@pytest.fixture
def tiny_suite(tmp_path):
    """Write a tiny suite TOML and return its path; call with keyword overrides."""

    def make(**kw) -> str:
        path = tmp_path / "tiny.toml"
        path.write_text(tiny_suite_text(**kw))
        return str(path)

    return make
