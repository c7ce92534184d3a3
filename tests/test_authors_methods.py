"""The AdaptGrad paper's combos, fidelity and stability against the authors' own released functions.

Reference values are outputs of the releases (tests/data/authors/README.md says which function, at
which commit). Where noise matters, the authors' recorded standard-normal draws are replayed through
``bench.methods.released.standard_normal`` (the released combos' one drawing seam) or, for the
stability–fidelity release, through the job's generator (its draws are torch's seed-0 stream).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import bench.methods.released as released
from bench.methods import create_method
from bench.metrics import robustness
from bench.metrics.base import MetricContext
from bench.metrics.fidelity import fidelity, l2_distance
from bench.metrics.robustness import stability

DATA = Path(__file__).parent / "data" / "authors"
REF = np.load(DATA / "reference_vectors.npz", allow_pickle=False)
X = torch.from_numpy(REF["x"])
T = torch.from_numpy(REF["targets"])
X_RANGE = (torch.full((3,), -2.117904), torch.full((3,), 2.64))  # the release's ImageNet bounds
PARAM_SHAPES = [(8, 3, 3, 3), (8,), (16, 8, 3, 3), (16,), (10, 16), (10,)]
INPUT_SHAPE = (1, 3, 16, 16)


def tiny_cnn(name: str) -> nn.Module:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1, stride=2),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    model.load_state_dict(torch.load(DATA / name))
    return model.eval()


MODEL_A, MODEL_B = tiny_cnn("tiny_cnn.pt"), tiny_cnn("tiny_cnn_b.pt")


def replay(monkeypatch, draws: list[np.ndarray], negate_inputs: bool, negate_params: bool) -> list:
    """Serve the recorded z in order. The release's SmoothGrad and NoiseGrad σ are negative
    ((lower − upper)·α), GradBench's positive: the same noise is GradBench's draw −z."""
    queue = [torch.from_numpy(np.ascontiguousarray(z)) for z in draws]

    def standard_normal(shape, generator, device, dtype):
        z = queue.pop(0)
        assert tuple(z.shape) == tuple(shape), "draws out of the release's order"
        negate = negate_inputs if tuple(shape) == INPUT_SHAPE else negate_params
        return -z if negate else z

    monkeypatch.setattr(released, "standard_normal", standard_normal)
    return queue


def per_input(monkeypatch, name: str, draws_of, negate_inputs: bool, negate_params: bool = False, **params):
    """The release explains one input at a time from one stream: so do we, replaying input i's draws."""
    method = create_method(name, **params)
    maps = []
    for i in range(len(X)):
        queue = replay(monkeypatch, draws_of(i), negate_inputs, negate_params)
        maps.append(method(MODEL_A, X[i : i + 1], T[i : i + 1], x_range=X_RANGE)[0])
        assert not queue, "the release drew more noise than GradBench"
    return torch.stack(maps)


def sg_draws(i):
    return [z[None] for z in REF["adaptgrad_sg_noise_z"][i]]


def sig_draws(i):
    z = REF["adaptgrad_sig_noise_z"][i]  # path step, then sample
    return [z[s, k][None] for s in range(z.shape[0]) for k in range(z.shape[1])]


def ng_draws(i, n_inputs=3, copies=2):
    """The flat record: the clean model's input draws, then per copy its parameters and its inputs."""
    flat, out, at = REF["adaptgrad_sng_noise_z_flat"][i], [], 0
    shapes = [INPUT_SHAPE] * n_inputs + ([*PARAM_SHAPES] + [INPUT_SHAPE] * n_inputs) * copies
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(flat[at : at + size].reshape(shape))
        at += size
    assert at == len(flat)
    return out


# float32 maps of magnitude ~3e-3: the same draws give the release's maps to rounding
ATOL = 1e-8


@pytest.mark.parametrize(("smoothing", "key", "negate"), [("smoothgrad", "sgi", True), ("adaptgrad", "agi", False)])
def test_grad_x_input_combos_are_the_released_ones(monkeypatch, smoothing, key, negate):
    maps = per_input(monkeypatch, "smoothed_grad_x_input", sg_draws, negate, smoothing=smoothing, n=8)
    ref = torch.from_numpy(REF[f"adaptgrad_{key}_maps"])
    torch.testing.assert_close(maps, ref, rtol=1e-5, atol=ATOL)


@pytest.mark.parametrize(("smoothing", "prefix", "negate"), [("smoothgrad", "sig", True), ("adaptgrad", "aig", False)])
@pytest.mark.parametrize(("baseline", "suffix"), [("zero", "w"), ("one", "b")])
def test_path_ig_combos_are_the_released_ones(monkeypatch, smoothing, prefix, negate, baseline, suffix):
    maps = per_input(monkeypatch, "smoothed_path_ig", sig_draws, negate, smoothing=smoothing, n=4, steps=5,
                     baseline=baseline)
    ref = torch.from_numpy(REF[f"adaptgrad_{prefix}_{suffix}_maps"])
    torch.testing.assert_close(maps, ref, rtol=1e-5, atol=ATOL)


@pytest.mark.parametrize(("smoothing", "key", "negate_inputs"),
                         [("smoothgrad", "sng", True), ("adaptgrad", "ang", False)])
def test_noisegrad_combos_are_the_released_ones(monkeypatch, smoothing, key, negate_inputs):
    maps = per_input(monkeypatch, "smoothed_noisegrad", ng_draws, negate_inputs, negate_params=True,
                     smoothing=smoothing, n=3, m=2)
    ref = torch.from_numpy(REF[f"adaptgrad_{key}_maps"])
    torch.testing.assert_close(maps, ref, rtol=1e-5, atol=ATOL)


def test_the_aliases_are_the_released_combos():
    for alias, impl, baseline in (("s-ig-b", "smoothed_path_ig", "one"), ("a-ig-w", "smoothed_path_ig", "zero")):
        method = create_method(alias)
        assert method.fn is create_method(impl).fn and method.params["baseline"] == baseline
        assert method.params["steps"] == 50 and method.params["n"] == 50  # the release's defaults
    assert create_method("s-gi").params["alpha"] == 0.2 and create_method("a-gi").params["rule"] == "released"


@pytest.mark.parametrize(("name", "params"), [
    ("smoothed_grad_x_input", {"smoothing": "adaptgrad", "n": 5}),
    ("smoothed_path_ig", {"smoothing": "adaptgrad", "n": 3, "steps": 4, "baseline": "one"}),
    ("smoothed_noisegrad", {"n": 2, "m": 2}),
])
def test_a_batch_equals_the_release_one_input_at_a_time_with_the_same_stream(name, params):
    """Batched over inputs and (point, sample) pairs, in chunks of any size: the same maps as the
    loop over inputs, each input's draws taken from one generator in the loop's order."""
    method = create_method(name, **params)
    batch = [method(MODEL_A, X, T, x_range=X_RANGE, generator=torch.Generator().manual_seed(3), chunk_size=c)
             for c in (1, 7, 4096)]
    for other in batch[1:]:
        torch.testing.assert_close(other, batch[0], rtol=1e-5, atol=1e-9)
    gen = torch.Generator().manual_seed(3)
    first = method(MODEL_A, X, T, x_range=X_RANGE, generator=gen, chunk_size=8)
    torch.testing.assert_close(first, batch[0], rtol=1e-5, atol=1e-9)
    assert not torch.allclose(method(MODEL_A, X, T, x_range=X_RANGE, generator=gen, chunk_size=8), first)


# -- fidelity and stability (stability–fidelity release) ----------------------------------------

SF_SIGMA = float(REF["sf_alpha"] * REF["sf_x_range"])


@dataclass(frozen=True)
class Recipe:
    seed: int = 0
    split_factor: int = 1
    split_index: int = 0


def context(method, generator, maps) -> MetricContext:
    return MetricContext(model=MODEL_A, x=X, y=T, target=T, maps=maps, method=method, x_range=X_RANGE,
                         generator=generator, recipe=Recipe(), chunk_size=4096,
                         load_model=lambda r: MODEL_B if r == replace(Recipe(), seed=1) else None)


def test_plain_gradients_are_the_releases():
    for model, key in ((MODEL_A, "sf_simplegrad_A"), (MODEL_B, "sf_simplegrad_B")):
        g = create_method("grad")(model, X, T, x_range=X_RANGE)
        torch.testing.assert_close(g, torch.from_numpy(REF[key]), rtol=1e-5, atol=1e-9)


def test_smoothgrad_fidelity_is_the_releases():
    """The release's draws are torch's seed-0 stream, z[0:100] for the model: the job's generator."""
    method = create_method("smoothgrad", n=100, sigma=SF_SIGMA)
    gen = torch.Generator().manual_seed(0)
    ctx = context(method, gen, method(MODEL_A, X, T, x_range=X_RANGE, generator=gen))
    assert fidelity(ctx).mean().item() == pytest.approx(float(REF["fidelity_sg_value"]), rel=1e-5)


def test_smoothgrad_stability_draws_independently_as_the_release(monkeypatch):
    """The release: net1 gets z[0:100], net2 z[100:200] of one stream. GradBench gives the twin a
    stream of its own; replaying the release's means continuing the job's stream."""
    method = create_method("smoothgrad", n=100, sigma=SF_SIGMA)
    gen = torch.Generator().manual_seed(0)
    ctx = context(method, gen, method(MODEL_A, X, T, x_range=X_RANGE, generator=gen))
    monkeypatch.setattr(robustness, "independent_generator", lambda g: g)  # continue the stream
    value = stability(ctx, twin="seed").mean().item()
    assert value == pytest.approx(float(REF["stability_sg_value"]), rel=1e-5)


def test_stability_shared_noise_is_an_option_and_differs():
    method = create_method("smoothgrad", n=16, sigma=SF_SIGMA)
    maps = method(MODEL_A, X, T, x_range=X_RANGE, generator=torch.Generator().manual_seed(0))
    own = stability(context(method, torch.Generator().manual_seed(0), maps), twin="seed")
    shared = stability(context(method, torch.Generator().manual_seed(0), maps), twin="seed", shared_noise=True)
    twin = method(MODEL_B, X, T, x_range=X_RANGE, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(shared, l2_distance(maps, twin), rtol=0, atol=0)
    assert not torch.allclose(own, shared)


def test_gradient_stability_is_the_releases():
    g = create_method("grad")
    ctx = context(g, torch.Generator().manual_seed(0), g(MODEL_A, X, T, x_range=X_RANGE))
    assert stability(ctx, twin="seed").mean().item() == pytest.approx(float(REF["stability_sg_sigma0_value"]),
                                                                       rel=1e-5)


@pytest.mark.parametrize(("name", "params", "reference"), [
    ("smoothgrad", {"n": 4, "base": "integrated_gradients", "base_params": {"steps": 8}},
     ("integrated_gradients", {"steps": 8})),
    ("adaptgrad", {"n": 4}, ("grad", {})),
    ("s-ig-b", {"n": 2, "steps": 4}, ("smoothed_path_ig", {"n": 1, "alpha": 0.0, "steps": 4, "baseline": "one"})),
    ("s-gi", {"n": 2}, ("grad_x_input", {})),
])
def test_fidelity_of_a_smoothed_method_is_to_the_method_it_smooths(name, params, reference):
    """The paper's fidelity of smoothed IG is to IG, not to the gradient; the reference is the
    method's declaration (``Method.unsmoothed``), not its name."""
    method = create_method(name, **params)
    maps = method(MODEL_A, X, T, x_range=X_RANGE, generator=torch.Generator().manual_seed(0))
    ref = create_method(reference[0], **reference[1])(MODEL_A, X, T, x_range=X_RANGE,
                                                       generator=torch.Generator().manual_seed(0))
    got = fidelity(context(method, torch.Generator().manual_seed(0), maps))
    torch.testing.assert_close(got, l2_distance(maps, ref), rtol=1e-6, atol=0)
    grad = create_method("grad")(MODEL_A, X, T, x_range=X_RANGE)
    if reference[0] != "grad":
        assert not torch.allclose(got, l2_distance(maps, grad))


def test_fidelity_of_a_method_that_smooths_nothing_is_zero():
    ig = create_method("integrated_gradients", steps=4)
    maps = ig(MODEL_A, X, T, x_range=X_RANGE)
    assert torch.equal(fidelity(context(ig, None, maps)), torch.zeros(len(X), dtype=torch.float64))
