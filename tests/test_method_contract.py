"""The method contract, for every registered method (TOML aliases included): the maps it returns,
and its declarations (``stochastic``, ``linear``, ``input_noise``) checked against its behaviour;
``Method.__call__`` refuses bad maps; bad parameter values are refused at creation in one line."""

from __future__ import annotations

import pytest
import torch
from test_methods import FAST
from torch import Tensor, nn

import bench
from bench.errors import GradBenchError, MethodOutputError
from bench.methods import Method, create_method
from bench.methods.params import ParameterError
from bench.models.zoo import cnn_small

# Test modules register their own methods (test_nan_method, …): the contract is about the published ones.
METHODS = [n for n in bench.list_methods() if not n.startswith("test")]
# What each published method adds to its input, from the papers (not from the code's declarations).
NOISE_FREE = {"grad", "grad_x_input", "integrated_gradients", "gradcam", "guided_backprop", "noisegrad",
              "random", "sobel"}  # the controls ignore the model: they perturb no input
NOISY = {"smoothgrad", "adaptgrad", "fusiongrad", "s-gi", "a-gi", "s-ig-b", "s-ig-w", "a-ig-b", "a-ig-w",
         "s-ng", "a-ng", "smoothed_grad_x_input", "smoothed_path_ig", "smoothed_noisegrad"}


def make(name: str, **params) -> Method:
    return create_method(name, **{**FAST.get(name, {}), **params})


def explain(method: Method, model: nn.Module, x: Tensor, y: Tensor, x_range, seed: int = 0, **kw) -> Tensor:
    return method(model, x, y, x_range=x_range, generator=torch.Generator().manual_seed(seed), **kw)


def test_the_published_methods_are_all_here():
    assert set(METHODS) == NOISE_FREE | NOISY, "classify a new method's input noise in NOISE_FREE or NOISY"


# -- output ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", METHODS)
def test_output_is_float32_of_the_input_shape_on_its_device_and_finite(name, tiny_cnn, shapes_batch, x_range):
    x, y = shapes_batch[0][:3], shapes_batch[1][:3]
    maps = explain(make(name), tiny_cnn, x, y, x_range)
    assert isinstance(maps, Tensor) and maps.shape == x.shape and maps.dtype == torch.float32
    assert maps.device == x.device and torch.isfinite(maps).all()


def _not_a_tensor(model, x, target, **kw):
    return x.numpy()


def _wrong_shape(model, x, target, **kw):
    return torch.zeros(len(x), 1, *x.shape[2:])


def _float64(model, x, target, **kw):
    return torch.zeros_like(x, dtype=torch.float64)


def _nan(model, x, target, **kw):
    out = torch.zeros_like(x)
    out[0, 0, 0, 0] = float("nan")
    out[-1, -1, -1, -1] = float("inf")
    return out


def _elsewhere(model, x, target, **kw):
    return torch.zeros(x.shape, device="meta")


@pytest.mark.parametrize(("fn", "message"), [
    (_not_a_tensor, "method 'mine' returned ndarray, not a Tensor"),
    (_wrong_shape, "method 'mine' returned shape (2, 1, 32, 32), expected the input's (2, 3, 32, 32)"),
    (_float64, "method 'mine' returned torch.float64, expected torch.float32"),
    (_nan, "method 'mine' returned 2 non-finite values (NaN/inf)"),
    (_elsewhere, "method 'mine' returned a map on meta, input on cpu"),
])
def test_call_refuses_maps_outside_the_contract(fn, message, tiny_cnn, shapes_batch, x_range):
    x, y = shapes_batch[0][:2], shapes_batch[1][:2]
    with pytest.raises(MethodOutputError) as e:
        Method("raw", fn).labelled("mine")(tiny_cnn, x, y, x_range=x_range)
    assert str(e.value) == message


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", [(0, 0, 0, 0), (1, 2, 17, 5), (-1, -1, -1, -1)])
def test_one_non_finite_value_anywhere_is_refused(bad, where, tiny_cnn, shapes_batch, x_range):
    """The check reads one min/max pass: a NaN or an infinity of either sign, first, last or inside."""
    def one_bad(model, x, target, **kw):
        out = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
        out[where] = bad
        return out

    x, y = shapes_batch[0][:2], shapes_batch[1][:2]
    with pytest.raises(MethodOutputError, match="returned 1 non-finite values"):
        Method("raw", one_bad).labelled("mine")(tiny_cnn, x, y, x_range=x_range)


def test_a_composite_refuses_its_bases_bad_maps(tiny_cnn, shapes_batch, x_range):
    """Bases are Methods too, so a smoothing of a bad method fails at the base, by the base's name."""
    x, y = shapes_batch[0][:2], shapes_batch[1][:2]
    sg = create_method("smoothgrad", n=2, base=Method("nanbase", _nan))
    with pytest.raises(MethodOutputError, match="method 'nanbase' returned .* non-finite"):
        explain(sg, tiny_cnn, x, y, x_range)


# -- stochastic -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", METHODS)
def test_stochastic_is_true_to_behaviour(name, tiny_cnn, shapes_batch, x_range):
    """Not stochastic: the same map whatever the generator, and nothing drawn from it.
    Stochastic: other generator seeds, other maps."""
    x, y = shapes_batch[0][:2], shapes_batch[1][:2]
    method = make(name)
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    before = [g.get_state() for g in gens]
    a, b = (method(tiny_cnn, x, y, x_range=x_range, generator=g) for g in gens)
    drew = [not torch.equal(g.get_state(), s) for g, s in zip(gens, before, strict=True)]
    if method.stochastic:
        assert all(drew) and not torch.equal(a, b)
    else:
        assert not any(drew) and torch.equal(a, b)


# -- linear ---------------------------------------------------------------------------------------

class Combination(nn.Module):
    """Scores a·f₁(x) + b·f₂(x) of two models."""

    def __init__(self, m1: nn.Module, m2: nn.Module, a: float, b: float):
        super().__init__()
        self.m1, self.m2, self.a, self.b = m1, m2, a, b

    def forward(self, x: Tensor) -> Tensor:
        return self.a * self.m1(x) + self.b * self.m2(x)


@pytest.fixture
def second_cnn() -> nn.Module:
    torch.manual_seed(1)
    return cnn_small(in_chans=3, num_classes=6).eval()


@pytest.mark.parametrize("name", [n for n in METHODS if create_method(n).linear])
def test_a_linear_method_maps_a_combination_of_models_to_the_combination_of_maps(
        name, tiny_cnn, second_cnn, shapes_batch, x_range):
    x, y = shapes_batch[0][:3], shapes_batch[1][:3]
    method = make(name)
    m1, m2 = (explain(method, m, x, y, x_range) for m in (tiny_cnn, second_cnn))
    for a, b in ((1.0, 1.0), (2.0, -0.5)):
        both = explain(method, Combination(tiny_cnn, second_cnn, a, b), x, y, x_range)
        torch.testing.assert_close(both, a * m1 + b * m2, rtol=1e-4, atol=1e-6 * m1.abs().max().item())


def test_the_declared_linear_methods():
    assert {n for n in METHODS if create_method(n).linear} == {"grad", "grad_x_input", "integrated_gradients"}


@pytest.mark.parametrize("name", ["gradcam", "guided_backprop", "random", "sobel"])
def test_methods_declared_non_linear_have_a_counterexample(name, tiny_cnn, second_cnn, shapes_batch, x_range):
    """Grad-CAM (a ReLU of the map) and guided backprop (gradients clamped at every ReLU) are not
    linear in the score: the map of −f is not minus the map of f; nor are the controls, whose map
    ignores f. The smoothings (SmoothGrad, …)
    are linear given the same draws, but draw noise, so they declare ``linear=False``: NoiseGrad
    batches copies only for deterministic linear bases."""
    x, y = shapes_batch[0][:3], shapes_batch[1][:3]
    method = make(name)
    plain = explain(method, tiny_cnn, x, y, x_range)
    negated = explain(method, Combination(tiny_cnn, second_cnn, -1.0, 0.0), x, y, x_range)
    assert not torch.allclose(negated, -plain, rtol=1e-3, atol=1e-6)


# -- input noise ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", METHODS)
def test_input_noise_is_none_exactly_for_noise_free_methods(name, shapes_batch, x_range):
    x = shapes_batch[0][:2]
    sigma = make(name).input_noise(x, x_range)
    if name in NOISE_FREE:
        assert sigma is None
    else:
        assert isinstance(sigma, Tensor) and sigma.dtype == x.dtype and (sigma > 0).any()
        assert torch.broadcast_shapes(sigma.shape, x.shape) == x.shape


class Probe(nn.Module):
    """A linear model that records every input it is evaluated at."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.head = nn.Linear(int(torch.tensor(shape).prod()), 3)
        self.seen: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        self.seen.append(x.detach().clone())
        return self.head(x.flatten(1))


@pytest.mark.parametrize(("name", "params"), [
    ("grad", {}),
    ("noisegrad", {"n": 8}),
    ("smoothgrad", {"n": 64, "alpha": 0.1}),
    ("smoothgrad", {"n": 64, "sigma": 0.3}),
    ("adaptgrad", {"n": 64, "c": 0.9}),
    ("fusiongrad", {"n": 8, "m": 8, "alpha": 0.1, "sigma": 0.5, "classifier": None}),
    ("smoothgrad", {"n": 64, "base": "noisegrad", "base_params": {"n": 2}}),
    ("adaptgrad", {"n": 64, "base": "noisegrad", "base_params": {"n": 2}}),
    ("smoothgrad", {"n": 16, "alpha": 0.1, "base": "smoothgrad", "base_params": {"n": 4, "alpha": 0.05}}),
])
def test_input_noise_is_the_noise_the_method_adds(name, params):
    """The inputs the model actually sees, minus x, divided by the declared σ, are N(0, 1); for a
    method that declares None the model sees x itself (SmoothGrad of SmoothGrad: the variances add)."""
    torch.manual_seed(0)
    x = torch.rand(4, 3, 8, 8) * 3 - 1.5
    x_range = (torch.tensor([-2.0, -1.5, -2.5]), torch.tensor([2.0, 1.5, 3.0]))
    probe = Probe(x.shape[1:]).eval()
    method = create_method(name, **params)
    explain(method, probe, x, torch.zeros(4, dtype=torch.long), x_range, chunk_size=64)
    assert all(len(s) % len(x) == 0 for s in probe.seen)  # so row i of all inputs seen is x[i mod 4]
    seen = torch.cat(probe.seen).view(-1, *x.shape)
    noise = seen - x
    sigma = method.input_noise(x, x_range)
    if sigma is None:
        assert torch.equal(noise, torch.zeros_like(noise))
        return
    z = noise / sigma.expand_as(x)
    assert z.std().item() == pytest.approx(1.0, abs=0.03) and abs(z.mean().item()) < 0.03


def test_aliases_inherit_the_declarations(shapes_batch, x_range):
    x = shapes_batch[0][:2]
    for alias, impl, p in (("s-gi", "smoothed_grad_x_input", {}),
                           ("a-gi", "smoothed_grad_x_input", {"smoothing": "adaptgrad"}),
                           ("s-ig-b", "smoothed_path_ig", {"baseline": "one"}),
                           ("a-ng", "smoothed_noisegrad", {"smoothing": "adaptgrad", "n": 10, "m": 10}),
                           ("s-ng", "smoothed_noisegrad", {"n": 10, "m": 10})):
        a, m = create_method(alias), create_method(impl, **p)
        assert (a.stochastic, a.linear) == (m.stochastic, m.linear)
        torch.testing.assert_close(a.input_noise(x, x_range), m.input_noise(x, x_range), rtol=0, atol=0)


def test_fusiongrads_input_noise_is_its_alpha_not_its_weight_sigma(x_range):
    x = torch.zeros(1, 3, 2, 2)
    a = create_method("fusiongrad", alpha=0.1, sigma=0.7).input_noise(x, x_range)
    torch.testing.assert_close(a, torch.full((1, 3, 1, 1), 0.1 * 4.0))  # x_range is [−2, 2]


# -- parameter values -----------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "params", "allowed"), [
    ("smoothgrad", {"n": "ten"}, "n must be an integer > 0"),
    ("smoothgrad", {"n": 0}, "n must be an integer > 0"),
    ("smoothgrad", {"n": -5}, "n must be an integer > 0"),
    ("smoothgrad", {"n": 2.5}, "n must be an integer > 0"),
    ("smoothgrad", {"n": True}, "n must be an integer > 0"),  # a bool is not an int here
    ("smoothgrad", {"alpha": -1}, "alpha must be a finite number ≥ 0"),
    ("smoothgrad", {"alpha": float("inf")}, "alpha must be a finite number ≥ 0"),
    ("smoothgrad", {"sigma": "big"}, "sigma must be a finite number ≥ 0 or none"),
    ("s-gi", {"n": 0}, "n must be an integer > 0"),
    ("adaptgrad", {"c": 1.5}, "c must be a finite number in (0, 1)"),
    ("adaptgrad", {"c": 0}, "c must be a finite number in (0, 1)"),
    ("adaptgrad", {"rule": "x"}, "rule must be one of 'eq13', 'released'"),
    ("integrated_gradients", {"steps": 0}, "steps must be an integer > 0"),
    ("integrated_gradients", {"baseline": "grey"}, "baseline must be one of 'zero', 'black', 'white'"),
    ("noisegrad", {"sigma": -0.2}, "sigma must be a finite number ≥ 0"),
    ("noisegrad", {"n": "50"}, "n must be an integer > 0"),
    ("fusiongrad", {"m": 0}, "m must be an integer > 0"),
    ("gradcam", {"relu": "yes"}, "relu must be true or false"),
    ("gradcam", {"layer": 4}, "layer must be a string or none"),
    ("smoothgrad", {"base": "nosuchmethod"}, "unknown method 'nosuchmethod'"),
    ("smoothgrad", {"base_params": [1]}, "base_params must be a table or none"),
    ("s-ig-b", {"steps": 0}, "steps must be an integer > 0"),
    ("a-ig-w", {"baseline": "grey"}, "baseline must be"),
])
def test_bad_parameter_values_are_refused_in_one_line(name, params, allowed):
    with pytest.raises(ParameterError) as e:
        create_method(name, **params)
    message = str(e.value)
    (key, value), = params.items()
    assert "\n" not in message and allowed in message
    assert f"{key}={value!r}" in message or key == "base_params"
    assert isinstance(e.value, ValueError) and isinstance(e.value, GradBenchError)  # one line at the CLI


@pytest.mark.parametrize(("name", "params"), [
    ("smoothgrad", {"n": 1, "alpha": 0}),  # α = 0: no noise, the plain base
    ("smoothgrad", {"alpha": 1, "sigma": None}),  # an int where a number is asked
    ("smoothgrad", {"sigma": 0.5, "base": create_method("grad_x_input")}),
    ("adaptgrad", {"c": 0.5, "rule": "released"}),
    ("integrated_gradients", {"steps": 1, "baseline": "white"}),
    ("noisegrad", {"sigma": 0.0, "classifier": None, "vmap": False}),
    ("gradcam", {"layer": "features.3", "relu": False}),
])
def test_good_parameter_values_are_accepted(name, params):
    assert create_method(name, **params).params.items() >= params.items()
