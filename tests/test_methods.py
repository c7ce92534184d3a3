"""Methods: the contract, SPEC.md's σ rules, vectorised = Python loop, chunk-size independence,
models left as found, and the guard rail against non-finite maps."""

from __future__ import annotations

import dataclasses
import math

import pytest
import scipy.special
import torch
from torch import nn
from torch.func import functional_call

from bench.errors import MethodOutputError
from bench.methods import create_method, prepare_model
from bench.methods.base import check_maps
from bench.methods.cam import auto_layer, trace_calls
from bench.methods.noise import classifier_name, perturbed_parameters
from bench.methods.smoothing import adaptgrad_sigma, smoothgrad_sigma
from bench.registry import methods

# Small sample counts keep the test run fast; the defaults are checked by registry tests.
FAST = {"smoothgrad": {"n": 3}, "adaptgrad": {"n": 3}, "noisegrad": {"n": 3}, "fusiongrad": {"n": 2, "m": 2},
        "integrated_gradients": {"steps": 4}, "s-gi": {"n": 2}, "a-gi": {"n": 2},
        "s-ig-b": {"n": 2, "steps": 3}, "s-ig-w": {"n": 2, "steps": 3},
        "a-ig-b": {"n": 2, "steps": 3}, "a-ig-w": {"n": 2, "steps": 3},
        "s-ng": {"n": 2, "m": 2}, "a-ng": {"n": 2, "m": 2}, "smoothed_grad_x_input": {"n": 2},
        "smoothed_path_ig": {"n": 2, "steps": 3}, "smoothed_noisegrad": {"n": 2, "m": 2}}
NOISY = ["smoothgrad", "adaptgrad", "noisegrad", "fusiongrad", "s-ng"]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def run(name, model, x, y, x_range, chunk_size=None, seed=0, **params):
    return create_method(name, **{**FAST.get(name, {}), **params})(model, x, y, x_range=x_range,
                                                                    generator=gen(seed), chunk_size=chunk_size)


def model_fingerprint(model: nn.Module) -> dict:
    """Everything a method could leave behind: values, flags, modes and hooks of every module."""
    hooks = {}
    for name, m in model.named_modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
                     "_state_dict_hooks", "_load_state_dict_pre_hooks"):
            hooks[(name, attr)] = len(getattr(m, attr))
    return {"state": {k: v.clone() for k, v in model.state_dict().items()},
            "requires_grad": [p.requires_grad for p in model.parameters()],
            "training": [m.training for m in model.modules()], "hooks": hooks,
            "modules": [type(m) for m in model.modules()]}


def assert_unchanged(before: dict, model: nn.Module) -> None:
    after = model_fingerprint(model)
    assert before["state"].keys() == after["state"].keys()
    for k in before["state"]:
        assert torch.equal(before["state"][k], after["state"][k]), k
    for key in ("requires_grad", "training", "modules"):
        assert before[key] == after[key], key
    assert all(v == 0 for v in after["hooks"].values()), {k: v for k, v in after["hooks"].items() if v}


# -- the contract -----------------------------------------------------------------------------------

def test_every_method_and_combo_is_registered():
    for name in ("grad", "grad_x_input", "integrated_gradients", "smoothgrad", "adaptgrad", "noisegrad",
                 "fusiongrad", "gradcam", "guided_backprop", "s-gi", "a-gi", "s-ig-b", "s-ig-w", "a-ig-b",
                 "a-ig-w", "s-ng", "a-ng"):
        assert name in methods, name
        assert methods.get(name).citation, name
    assert methods.get("s-ig-w").defaults["baseline"] == "zero"  # the release's "WhiteBaseline"
    assert methods.get("a-ng").defaults["smoothing"] == "adaptgrad"


@pytest.mark.parametrize("name", sorted(n for n in methods.list() if not n.startswith("test")))
def test_contract_shape_dtype_device_finite(name, tiny_cnn, shapes_batch, x_range):
    x, y = shapes_batch[0][:4], shapes_batch[1][:4]
    maps = run(name, tiny_cnn, x, y, x_range)
    check_maps(maps, x, name)
    assert maps.abs().sum() > 0, "an all-zero map is almost surely a bug"


def test_unknown_parameter_names_the_accepted_ones():
    with pytest.raises(ValueError, match="takes: n, sigma, base, base_params, classifier, vmap"):
        create_method("noisegrad", alpha=0.1)


def test_combos_are_the_released_nesting(tiny_cnn, shapes_batch, x_range):
    x, y = shapes_batch[0][:3], shapes_batch[1][:3]
    combo = run("s-ig-b", tiny_cnn, x, y, x_range)
    explicit = run("smoothed_path_ig", tiny_cnn, x, y, x_range, smoothing="smoothgrad", alpha=0.2, n=2,
                   steps=3, baseline="one")
    torch.testing.assert_close(combo, explicit, rtol=0, atol=0)


def test_integrated_gradients_baselines_are_the_channel_bounds(tiny_cnn, shapes_batch):
    x, y = shapes_batch[0][:2], shapes_batch[1][:2]
    lo, hi = torch.tensor([-1.0, -2.0, -3.0]), torch.tensor([1.0, 2.0, 3.0])
    for baseline, bound in (("black", lo), ("white", hi)):
        x0 = bound.view(1, 3, 1, 1).expand_as(x)
        ig = run("integrated_gradients", tiny_cnn, x, y, (lo, hi), steps=4, baseline=baseline)
        ref = torch.zeros_like(x)
        for k in range(1, 5):  # right Riemann sum, SPEC.md
            ref += run("grad", tiny_cnn, x0 + k / 4 * (x - x0), y, (lo, hi)) / 4
        torch.testing.assert_close(ig, (x - x0) * ref, rtol=1e-5, atol=1e-7)


# -- σ rules (SPEC.md) ------------------------------------------------------------------------------

def test_smoothgrad_sigma_is_alpha_times_range():
    lo, hi = torch.tensor([-2.0, -1.0, 0.0]), torch.tensor([2.0, 3.0, 0.5])
    s = smoothgrad_sigma(torch.zeros(1, 3, 2, 2), (lo, hi), 0.15, None)
    torch.testing.assert_close(s.flatten(), 0.15 * (hi - lo))


@pytest.mark.parametrize("rule, p", [("eq13", lambda c: (1 + c) / 2), ("released", lambda c: c)])
@pytest.mark.parametrize("c", [0.95, 0.99])
def test_adaptgrad_sigma_elementwise(rule, p, c):
    lo, hi = torch.tensor([-2.12, -2.0, -1.8]), torch.tensor([2.64, 2.4, 2.2])
    x = torch.rand(2, 3, 5, 5, generator=gen()) * (hi - lo).view(1, 3, 1, 1) + lo.view(1, 3, 1, 1)
    sigma = adaptgrad_sigma(x, (lo, hi), c, rule)
    z = math.sqrt(2) * scipy.special.erfinv(p(c))  # Eq. 13, or the released code's erfinv(c)
    for b, ch, i, j in [(0, 0, 0, 0), (1, 2, 4, 3), (0, 1, 2, 2), (1, 0, 3, 1)]:
        xi = x[b, ch, i, j].item()
        ref = min(abs(xi - lo[ch].item()), abs(xi - hi[ch].item())) / z
        assert sigma[b, ch, i, j].item() == pytest.approx(ref, rel=1e-6)
    dist = torch.minimum((x - lo.view(1, 3, 1, 1)).abs(), (x - hi.view(1, 3, 1, 1)).abs())
    torch.testing.assert_close(sigma, dist / z, rtol=1e-6, atol=0)


# -- vectorised = Python loop with the same generator -----------------------------------------------

def grad_of(model, x, y):
    x = x.detach().requires_grad_(True)
    return torch.autograd.grad(model(x).gather(1, y[:, None]).sum(), x)[0]


def loop_reference(name, model, x, y, x_range, n, seed=0, **p):
    """The definition, one sample at a time, drawing from the generator in the documented order."""
    g = gen(seed)
    lo, hi = (r.view(1, -1, 1, 1) for r in x_range)
    head = classifier_name(model)
    params = [(k, v) for k, v in model.named_parameters() if not k.startswith(head + ".")]

    def copy_model():  # NoiseGrad: every non-classifier parameter × N(1, 0.2²), in parameter order
        theta = {k: v * (1 + 0.2 * torch.randn(v.shape, generator=g)) for k, v in params}
        return lambda inp: functional_call(model, theta, (inp,))

    def noisy(sigma):
        return x + sigma * torch.randn(x.shape, generator=g)

    if name == "smoothgrad":
        return sum(grad_of(model, noisy(0.15 * (hi - lo)), y) for _ in range(n)) / n
    if name == "adaptgrad":
        rule = p.get("rule", "eq13")
        z = math.sqrt(2) * scipy.special.erfinv((1 + 0.95) / 2 if rule == "eq13" else 0.95)
        sigma = torch.minimum((x - lo).abs(), (x - hi).abs()) / z
        total = sum(grad_of(model, noisy(sigma), y) for _ in range(n))
        return (total + grad_of(model, x, y)) / (n + 1) if rule == "released" else total / n
    if name == "noisegrad":
        return sum(grad_of(copy_model(), x, y) for _ in range(n)) / n
    if name == "fusiongrad":  # copy i, then its m input noises
        m, total = p["m"], 0
        for _ in range(n):
            f = copy_model()
            total = total + sum(grad_of(f, noisy(0.15 * (hi - lo)), y) for _ in range(m)) / m
        return total / n
    if name == "s-ng":  # as released: the clean model's SG (N+1 terms), then per copy its parameters, its SG
        def sg(f):
            return (grad_of(f, x, y) + sum(grad_of(f, noisy(0.2 * (hi - lo)), y) for _ in range(n))) / (n + 1)

        total = sg(model)
        for _ in range(p["m"]):  # no parameter is named "classifier": all are perturbed
            theta = {k: v * (1 + 0.2 * torch.randn(v.shape, generator=g)) for k, v in model.named_parameters()}
            total = total + sg(lambda inp, theta=theta: functional_call(model, theta, (inp,)))
        return total / (p["m"] + 1)
    raise KeyError(name)


LOOP_CASES = [("smoothgrad", {"n": 5}, {}), ("adaptgrad", {"n": 5}, {}),
              ("adaptgrad", {"n": 5, "rule": "released"}, {"rule": "released"}),
              ("noisegrad", {"n": 4}, {}), ("fusiongrad", {"n": 3, "m": 2}, {"m": 2}),
              ("s-ng", {"n": 3, "m": 2}, {"m": 2})]


@pytest.mark.parametrize("name, params, ref_params", LOOP_CASES, ids=lambda v: str(v))
def test_vectorised_equals_python_loop(name, params, ref_params, tiny_cnn, shapes_batch, x_range):
    x, y = shapes_batch[0][:4], shapes_batch[1][:4]
    got = run(name, tiny_cnn, x, y, x_range, **params)
    ref = loop_reference(name, tiny_cnn, x, y, x_range, params["n"], **ref_params)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-6)


def test_noisegrad_vmap_equals_loop_over_copies(tiny_cnn, shapes_batch, x_range):
    x, y = shapes_batch[0][:4], shapes_batch[1][:4]
    maps = [run("noisegrad", tiny_cnn, x, y, x_range, n=4, vmap=v) for v in (True, False)]
    torch.testing.assert_close(maps[0], maps[1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name, params, ref_params", LOOP_CASES, ids=lambda v: str(v))
def test_independent_of_chunk_size(name, params, ref_params, tiny_cnn, shapes_batch, x_range):
    x, y = shapes_batch[0][:4], shapes_batch[1][:4]
    maps = [run(name, tiny_cnn, x, y, x_range, chunk_size=c, **params) for c in (3, 8, 1000)]
    for m in maps[1:]:
        torch.testing.assert_close(m, maps[0], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["grad", "integrated_gradients", "smoothgrad", "noisegrad", "gradcam",
                                  "guided_backprop"])
def test_prepared_model_gives_the_maps_of_the_model_as_given(name, tiny_cnn, shapes_batch, x_range):
    """prepare_model changes the memory format only (channels_last on CPU): the same maps, contiguous."""
    import copy

    x, y = shapes_batch[0][:4], shapes_batch[1][:4]
    prepared = prepare_model(copy.deepcopy(tiny_cnn), torch.device("cpu"))
    assert prepared[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not any(p.requires_grad for p in prepared.parameters()) and not prepared.training
    got, ref = run(name, prepared, x, y, x_range), run(name, tiny_cnn, x, y, x_range)
    assert got.is_contiguous()
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-6)


def test_prepare_model_leaves_a_net_without_convolutions_as_it_is():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    assert prepare_model(mlp, torch.device("cpu"))[1].weight.is_contiguous()


@pytest.mark.parametrize("base", [{"base": "grad_x_input"},
                                  {"base": "integrated_gradients", "base_params": {"steps": 3, "baseline": "black"}}])
def test_noisegrad_of_a_linear_base_one_copy_per_pass_equals_many(base, tiny_cnn, shapes_batch, x_range):
    # chunk 4 with 4 inputs: one copy per pass (the loop); chunk 1000: all copies through one backward
    x, y = shapes_batch[0][:4], shapes_batch[1][:4]
    maps = [run("noisegrad", tiny_cnn, x, y, x_range, chunk_size=c, n=3, **base) for c in (4, 1000)]
    torch.testing.assert_close(maps[0], maps[1], rtol=1e-4, atol=1e-6)


def test_noisegrad_perturbs_all_but_the_classifier(tiny_cnn):
    names = set(perturbed_parameters(tiny_cnn))
    assert classifier_name(tiny_cnn) == "10"  # cnn-small: the last nn.Linear
    assert names == {k for k, _ in tiny_cnn.named_parameters()} - {"10.weight", "10.bias"}
    assert set(perturbed_parameters(tiny_cnn, classifier=None)) == {k for k, _ in tiny_cnn.named_parameters()}
    assert set(perturbed_parameters(tiny_cnn, classifier="0")) == names - {"0.weight", "0.bias"} | {
        "10.weight", "10.bias"}
    with pytest.raises(ValueError, match="not a module"):
        perturbed_parameters(tiny_cnn, classifier="head")


def test_noisegrad_classifier_is_overridable(tiny_cnn, shapes_batch, x_range):
    x, y = shapes_batch[0][:2], shapes_batch[1][:2]
    auto = run("noisegrad", tiny_cnn, x, y, x_range)
    everything = run("noisegrad", tiny_cnn, x, y, x_range, classifier=None)
    assert not torch.allclose(auto, everything)


# -- models are left exactly as found ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["noisegrad", "fusiongrad", "gradcam", "guided_backprop", "s-ng"])
def test_model_left_as_found(name, tiny_cnn, shapes_batch, x_range):
    x, y = shapes_batch[0][:3], shapes_batch[1][:3]
    for p in tiny_cnn.parameters():  # as the runner hands it over
        p.requires_grad_(False)
    before = model_fingerprint(tiny_cnn)
    run(name, tiny_cnn, x, y, x_range)
    assert_unchanged(before, tiny_cnn)


def test_hooks_are_removed_when_the_method_fails(tiny_cnn, shapes_batch, x_range):
    x = shapes_batch[0][:2]
    before = model_fingerprint(tiny_cnn)
    with pytest.raises(RuntimeError):  # a target out of range fails inside the hooked pass
        run("guided_backprop", tiny_cnn, x, torch.tensor([0, 99]), x_range)
    with pytest.raises(RuntimeError):
        run("gradcam", tiny_cnn, x, torch.tensor([0, 99]), x_range)
    assert_unchanged(before, tiny_cnn)


def test_guided_backprop_needs_an_activation_to_gate(shapes_batch, x_range):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(6))
    x, y = shapes_batch[0][:2], shapes_batch[1][:2]
    model(x)
    with pytest.raises(ValueError, match="no activation module to gate"):
        run("guided_backprop", model, x, y, x_range)


def test_guided_backprop_on_softplus_gates_the_gradient_at_the_activation(x_range):
    # f_t(x) = w2[t]ᵀ softplus_β(W1 x): guided gradient = W1ᵀ (σ(β W1 x) ⊙ max(w2[t], 0)), by hand.
    torch.manual_seed(0)
    beta = 3.0
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5, bias=False), nn.Softplus(beta=beta),
                          nn.Linear(5, 3, bias=False)).eval()
    x, t = torch.randn(4, 3, 2, 2), torch.tensor([0, 1, 2, 1])
    w1, w2 = model[1].weight, model[3].weight
    expected = ((torch.sigmoid(beta * x.flatten(1) @ w1.T) * w2[t].clamp(min=0)) @ w1).view_as(x)
    torch.testing.assert_close(run("guided_backprop", model, x, t, x_range), expected.detach())


def test_gradcam_layer_auto_and_by_name(tiny_cnn, shapes_batch, x_range):
    x, y = shapes_batch[0][:2], shapes_batch[1][:2]
    assert auto_layer(trace_calls(tiny_cnn, x)) == "7"  # the ReLU after the last convolution
    auto = run("gradcam", tiny_cnn, x, y, x_range)
    torch.testing.assert_close(run("gradcam", tiny_cnn, x, y, x_range, layer="7"), auto)
    wrapped = nn.Sequential(tiny_cnn, nn.LogSoftmax(dim=1))  # as the runner wraps log_softmax jobs
    assert auto_layer(trace_calls(wrapped, x)) == "0.7"
    run("gradcam", wrapped, x, y, x_range, layer="7")  # suffix match through the wrapper
    with pytest.raises(ValueError, match="no single module named 'layer9'"):
        run("gradcam", tiny_cnn, x, y, x_range, layer="layer9")
    maps = run("gradcam", tiny_cnn, x, y, x_range)
    assert torch.equal(maps[:, 0], maps[:, 2])  # broadcast over channels
    assert (maps >= 0).all()


# -- guard rail -------------------------------------------------------------------------------------

def test_check_maps_rejects_non_finite_maps(shapes_batch):
    x = shapes_batch[0][:2]
    bad = torch.zeros_like(x)
    bad[0, 0, 0, 0] = float("nan")
    bad[1, 1, 1, 1] = float("inf")
    with pytest.raises(MethodOutputError, match="method 'nanmethod' returned 2 non-finite values"):
        check_maps(bad, x, "nanmethod")
    with pytest.raises(MethodOutputError, match="shape"):
        check_maps(torch.zeros(2, 3), x, "m")
    with pytest.raises(MethodOutputError, match="float64"):
        check_maps(torch.zeros_like(x, dtype=torch.float64), x, "m")


def test_nan_method_fails_its_job_with_a_clear_message(tmp_path, tiny_suite, monkeypatch):
    """Through the runner: the job gets a failure record naming the method; the other jobs go on."""
    import bench.run.runner
    from bench.run.results import ResultStore
    from bench.suite import load_suite

    real = bench.run.runner.create_method

    def nan_smoothgrad(name, **params):
        method = real(name, **params)
        if name != "smoothgrad":
            return method
        # a Method whose function returns NaN maps: Method.__call__ must refuse them
        return dataclasses.replace(method, fn=lambda *a, **k: method.fn(*a, **k) * float("nan"))

    monkeypatch.setattr(bench.run.runner, "create_method", nan_smoothgrad)
    report = bench.run.runner.Runner(tmp_path, device="cpu", progress=False).run(load_suite(tiny_suite()))
    assert len(report.done) == 1 and len(report.failed) == 1
    label, err = report.failed[0]
    assert "smoothgrad" in label and "method 'smoothgrad(n=4)' returned" in err and "non-finite values" in err
    (failure,) = ResultStore(tmp_path / "tiny").failures()
    assert failure["error_type"] == "MethodOutputError"
