"""Issue 18, item 11: bench run --dry-run --estimate includes training for models not in the cache."""

import math

import torch

from bench.cli import main
from bench.models.build import recipe_data, trained_model
from bench.run.cost import estimate_training, training_steps
from bench.suite import load_suite


def test_estimate_includes_training_until_the_model_is_cached(tiny_suite, capsys):
    suite = load_suite(tiny_suite(methods=("grad",), activations=("softplus:7",)))  # a recipe no other test trains
    (before,) = estimate_training(suite.jobs, torch.device("cpu"))
    n_train = len(recipe_data(suite.jobs[0].recipe).x_train)  # 300: 30 held out, 270 fitted
    assert n_train == 300 and before.steps == math.ceil(270 / 64) * 1 == training_steps(suite.jobs[0].recipe, 300)
    assert not before.cached and before.seconds > 0
    trained_model(suite.jobs[0].recipe, "cpu", progress=False)
    (after,) = estimate_training(suite.jobs, torch.device("cpu"))
    assert after.cached and after.seconds == 0.0 and after.steps == 0


def test_cli_estimate_prints_training_on_its_own_line(tiny_suite, tmp_path, capsys):
    path = tiny_suite(methods=("grad",), activations=("softplus:9",))
    assert main(["run", path, "--dry-run", "--estimate", "--device", "cpu", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train " in out and "estimated explain time" in out
    training = float(out.split("training time of uncached models: ")[1].split(" s")[0])
    assert training > 0
    assert not list(tmp_path.rglob("*.parquet"))
