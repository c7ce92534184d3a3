"""Noise resilience: MetaQuantus' minor weight perturbation, its σ search and cache, the suite copies,
the rows' column, and the claims that must not see those rows."""

from __future__ import annotations

import shutil
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from conftest import tiny_suite_text
from torch import nn

from bench.claims import evaluate
from bench.errors import InputError, SuiteError
from bench.models import perturb
from bench.models.build import trained_model
from bench.models.train import Recipe, checkpoint_path, use_cache
from bench.run.results import load_rows, ordinary_rows, perturbed_rows
from bench.run.runner import Runner
from bench.suite import expand, load_suite, suites_dir

SPEC = perturb.DEFAULT_SPEC


def test_spec_is_metaquantus_sigma_and_a_bad_spec_is_one_line():
    assert SPEC == "weights*N(1,0.001^2)" and perturb.parse(SPEC) == 0.001  # configs.py:603-609
    assert perturb.parse(perturb.weight_noise(2.5e-4)) == 2.5e-4
    with pytest.raises(InputError, match=r"write it as 'weights\*N\(1,0.001\^2\)'"):
        perturb.parse("weights*1.001")


def _bn_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 4))
    net.train()(torch.randn(16, 3, 8, 8))  # non-trivial running statistics (buffers)
    with torch.no_grad():
        net[1].bias.uniform_(-1, 1)  # multiplicative noise leaves zeros at zero: no zero parameter here
    return net.eval()


def test_perturbation_matches_quantus_model_sample_as_metaquantus_calls_it():
    """Quantus' PyTorchModel.sample(mean=1, std=σ, 'multiplicative') (MetaQuantus' Model Resilience Test)
    and ours touch the same tensors (parameters, not buffers) with the same relative spread σ."""
    from quantus.helpers.model.pytorch_model import PyTorchModel

    net, sigma = _bn_net(), 0.001
    state = net.state_dict()
    ours = perturb.perturb(state, perturb.draw_noise(net, Recipe("cnn-small", "shapes")), sigma)
    theirs = PyTorchModel(net, channel_first=True).sample(mean=1.0, std=sigma, noise_type="multiplicative").state_dict()
    for key, w in state.items():
        changed_ours, changed_theirs = not torch.equal(ours[key], w), not torch.equal(theirs[key], w)
        assert changed_ours == changed_theirs == (key in dict(net.named_parameters())), key

    def spread(perturbed):
        ratios = [perturbed[k][w.abs() > 1e-6] / w[w.abs() > 1e-6] - 1 for k, w in net.named_parameters()]
        return torch.cat(ratios).double()

    r_ours, r_theirs = spread(ours), spread(theirs)
    assert len(r_ours) > 1000
    assert r_ours.std().item() == pytest.approx(sigma, rel=0.1)
    assert r_theirs.std().item() == pytest.approx(sigma, rel=0.1)
    assert abs(r_ours.mean().item()) < 1e-4 and abs(r_theirs.mean().item()) < 1e-4


def test_noise_is_seeded_by_the_recipe_alone():
    net, recipe = _bn_net(), Recipe("cnn-small", "shapes")
    a, b = perturb.draw_noise(net, recipe), perturb.draw_noise(net, recipe)
    c = perturb.draw_noise(net, replace(recipe, seed=1))
    assert all(torch.equal(a[k], b[k]) and a[k].device.type == "cpu" for k in a)
    assert not torch.equal(a["0.weight"], c["0.weight"])


def _fragile_model() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """score₀ = 0, score₁ = x − 1: ten of 100 points sit 1e-5 from the boundary, on both sides, so any
    relative weight noise much above 1e-5 moves the boundary past five of them (5 points of accuracy)."""
    net = nn.Linear(1, 2)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[0.0], [1.0]]))
        net.bias.copy_(torch.tensor([0.0, -1.0]))
    x = torch.tensor([1 + 1e-5] * 5 + [1 - 1e-5] * 5 + [2.0] * 45 + [0.0] * 45).unsqueeze(1)
    y = torch.tensor([1] * 5 + [0] * 5 + [1] * 45 + [0] * 45)
    return net, x, y


def test_sigma_is_halved_until_the_accuracy_holds():
    net, x, y = _fragile_model()

    def accuracy_of(state):
        net.load_state_dict(state)
        with torch.no_grad():
            return (net(x).argmax(1) == y).double().mean().item()

    state, noise = {k: v.clone() for k, v in net.state_dict().items()}, perturb.draw_noise(net, Recipe("mlp", "shapes"))
    found = perturb.search_sigma(accuracy_of, state, noise, 0.001)
    assert found.original_accuracy == 1.0 and found.halvings >= 1
    assert found.sigma == 0.001 / 2**found.halvings and abs(found.accuracy - 1.0) <= 0.01
    assert abs(accuracy_of(perturb.perturb(state, noise, 2 * found.sigma)) - 1.0) > 0.01  # the σ before failed
    again = perturb.search_sigma(accuracy_of, state, noise, 0.001)
    assert again.sigma == found.sigma and all(torch.equal(again.state_dict[k], found.state_dict[k]) for k in state)


def test_a_model_no_sigma_can_spare_is_a_one_line_failure():
    net, _, _ = _fragile_model()
    state = net.state_dict()
    original = {k: v.clone() for k, v in state.items()}

    def breaks_under_any_noise(candidate):  # a model so fragile that any change costs all its accuracy
        return float(all(torch.equal(candidate[k], original[k]) for k in original))

    with pytest.raises(perturb.PerturbationError, match="too fragile") as e:
        perturb.search_sigma(breaks_under_any_noise, state, perturb.draw_noise(net, Recipe("mlp", "shapes")), 0.001)
    assert "\n" not in str(e.value) and f"{0.001 / 2**perturb.MAX_HALVINGS:.3g}" in str(e.value)


@pytest.fixture(scope="module")
def tiny_recipe() -> Recipe:
    """The tiny suite's model (1 epoch on 270 shapes): shared with the other tests through the cache."""
    return expand(tomllib.loads(tiny_suite_text(methods=("grad",))), suites_dir() / "tiny.toml").jobs[0].recipe


def test_perturbed_model_keeps_its_accuracy_is_cached_and_deterministic(tiny_recipe, tmp_path, monkeypatch):
    trained = trained_model(tiny_recipe, progress=False)
    first = trained_model(tiny_recipe, progress=False, perturbation=SPEC)
    assert first.perturbation == SPEC
    assert first.perturbation_sigma in {0.001 / 2**k for k in range(perturb.MAX_HALVINGS + 1)}
    assert abs(first.accuracy - trained.accuracy) <= 0.01 and first.weights_digest != trained.weights_digest
    assert perturb.perturbed_path(tiny_recipe, SPEC).exists()

    def no_search(*a, **k):
        raise AssertionError("searched again: the cache was not used")

    monkeypatch.setattr(perturb, "search_sigma", no_search)
    cached = trained_model(tiny_recipe, progress=False, perturbation=SPEC)
    assert cached.weights_digest == first.weights_digest and cached.test_accuracy == first.test_accuracy
    monkeypatch.undo()
    source = checkpoint_path(tiny_recipe)
    with use_cache(tmp_path):  # the same trained weights in an empty cache: the same perturbed weights
        shutil.copy(source, checkpoint_path(tiny_recipe))
        elsewhere = trained_model(tiny_recipe, progress=False, perturbation=SPEC)
    assert elsewhere.weights_digest == first.weights_digest


def _tiny_spec(**extra) -> dict:
    spec = tomllib.loads(tiny_suite_text(methods=("grad", "random"), activations=("relu", "softplus:1")))
    spec["models"][0].update(seeds=[3, 1, 2], split_factor=[1, 2])
    return {**spec, **extra}


def test_noise_resilience_adds_one_copy_per_recipe_at_its_lowest_seed(tmp_path):
    plain = expand(_tiny_spec(), tmp_path / "t.toml").jobs
    jobs = expand(_tiny_spec(noise_resilience=True), tmp_path / "t.toml").jobs
    ordinary = [j for j in jobs if not j.model_perturbation]
    copies = [j for j in jobs if j.model_perturbation]
    assert [j.id for j in ordinary] == [j.id for j in plain]  # every job id stays
    assert len(copies) == 2 * 2 * 2  # activations × split factors × methods, once each
    assert {j.recipe.seed for j in copies} == {1} and {j.model_perturbation for j in copies} == {SPEC}
    assert {replace(j, model_perturbation="").id for j in copies} <= {j.id for j in ordinary}
    assert not {j.id for j in copies} & {j.id for j in ordinary} and all("/perturbed/" in j.label for j in copies)
    with pytest.raises(SuiteError, match="noise_resilience = 'yes': must be true or false"):
        expand(_tiny_spec(noise_resilience="yes"), tmp_path / "t.toml")


@pytest.mark.parametrize("path", sorted(suites_dir().glob("*.toml")), ids=lambda p: p.stem)
def test_noise_resilience_keeps_every_job_id_of_every_suite(path):
    spec = tomllib.loads(path.read_text())
    off = expand({**spec, "noise_resilience": False}, path).jobs
    on = expand({**spec, "noise_resilience": True}, path).jobs
    assert [j.id for j in on[: len(off)]] == [j.id for j in off]
    seeds = {}
    for j in off:
        key = replace(j.recipe, seed=0).hash
        seeds[key] = min(seeds.get(key, j.recipe.seed), j.recipe.seed)
    assert len(on) - len(off) == sum(j.recipe.seed == seeds[replace(j.recipe, seed=0).hash] for j in off)
    # on where the published board's reliability table wants it: the default and architectures suites
    assert spec.get("noise_resilience", False) == (path.stem in {"default", "architectures"})


@pytest.fixture(scope="module")
def resilience_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("resilience")
    path = root / "tiny.toml"
    path.write_text("noise_resilience = true\n" + tiny_suite_text(methods=("grad",), metrics=("ef", "sparseness")))
    suite = load_suite(str(path))
    assert Runner(root / "results", device="cpu", progress=False).run(suite).failed == []
    return root, suite


def test_perturbed_rows_carry_the_column_and_the_perturbed_models_accuracy(resilience_run):
    root, suite = resilience_run
    rows = load_rows(root / "results" / "tiny")
    plain, pert = ordinary_rows(rows), perturbed_rows(rows)
    assert len(plain) == len(pert) == 2 and len(plain) + len(pert) == len(rows)
    assert set(plain.model_perturbation) == {""} and plain.model_perturbation_sigma.isna().all()
    assert set(pert.model_perturbation) == {SPEC} and (pert.model_perturbation_sigma > 0).all()
    assert set(pert.model_hash) == set(plain.model_hash)  # the same recipe: the board pairs them by it
    assert set(pert.model_weights_digest).isdisjoint(plain.model_weights_digest)
    assert abs(pert.model_accuracy.iloc[0] - plain.model_accuracy.iloc[0]) <= 0.01


def test_older_results_read_as_ordinary_rows(tmp_path):
    """A file written before the model_perturbation (and numerics) columns existed: a committed one with
    those columns taken out reads as ordinary rows whose kernels are unrecorded."""
    folder = Path(__file__).resolve().parent.parent / "results" / "adaptgrad-small"
    newer = sorted(folder.glob("*.parquet"))[0]
    table = pq.read_table(newer)
    older = table.drop_columns([c for c in ("model_perturbation", "model_perturbation_sigma", "numerics")
                                if c in table.column_names])
    pq.write_table(older, tmp_path / newer.name)
    rows = load_rows(tmp_path)
    assert set(rows.model_perturbation) == {""} and len(ordinary_rows(rows)) == len(rows) == table.num_rows
    assert set(rows.numerics) == {""}


def test_claims_and_bench_report_leave_perturbed_rows_out(resilience_run, monkeypatch):
    rows, samples = [], []
    for seed in range(3):  # method a beats b on every seed; perturbed rows say the opposite
        for method, value, perturbation in [("a", 2.0, ""), ("b", 1.0, ""), ("a", -9.0, SPEC), ("b", 9.0, SPEC)]:
            jid = f"{method}{seed}{perturbation}"
            rows.append({"job_id": jid, "metric": "m", "method": method, "model_seed": seed,
                         "model_perturbation": perturbation})
            samples.append(pd.DataFrame({"job_id": jid, "metric": "m", "sample": range(8),
                                         "value": value + 0.01 * np.arange(8)}))
    rows, samples = pd.DataFrame(rows), pd.concat(samples, ignore_index=True)
    claim = {"id": "c", "metric": "m", "kind": "compare", "a": {"method": "a"}, "b": {"method": "b"}, "expect": "a > b"}
    with_perturbed, without = evaluate(claim, rows, samples), evaluate(claim, ordinary_rows(rows), samples)
    assert with_perturbed.verdict == without.verdict == "HOLDS" and with_perturbed.statistic == pytest.approx(1.0)

    from bench.cli import main
    from bench.run import cost

    root, _ = resilience_run
    seen = []
    monkeypatch.setattr(cost, "pass_report", lambda rows, device: seen.append(rows) or [])
    assert main(["report", str(root / "tiny.toml"), "--results", str(root / "results")]) == 0
    assert len(seen) == 1 and set(seen[0].model_perturbation) == {""} and len(seen[0]) == 2


def test_a_perturbation_no_sigma_survives_is_the_jobs_recorded_failure(resilience_run, monkeypatch, tmp_path):
    _, suite = resilience_run
    monkeypatch.setattr(perturb, "ACCURACY_TOLERANCE", -1.0)  # nothing keeps the accuracy
    report = Runner(tmp_path, device="cpu", progress=False).run(suite)
    assert len(report.done) == 1 and [label for label, _ in report.failed] == [suite.jobs[1].label]
    assert "PerturbationError" in report.failed[0][1] and "too fragile" in report.failed[0][1]
