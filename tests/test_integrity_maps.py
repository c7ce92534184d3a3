"""Issue 18, item 4: a map constant on an input explains nothing; no metric may score it."""

import pandas as pd
import pytest
import torch

from bench.errors import GradBenchError
from bench.methods import create_method
from bench.methods.base import register_method
from bench.run.results import ResultStore
from bench.run.runner import Runner, constant_maps
from bench.submit import SubmissionError, validate
from bench.suite import load_suite

CONSTANT_ON = (1, 3)  # the inputs of the batch on which test_partly_constant says nothing


@register_method("test_zero_maps")
def _zero_maps(model, x, target, *, x_range, generator, chunk_size):
    """Zeros everywhere (EF 0: would rank first)."""
    return torch.zeros_like(x)


@register_method("test_partly_constant")
def _partly_constant(model, x, target, *, x_range, generator, chunk_size):
    """|x| except a constant 0.5 on the inputs CONSTANT_ON of a 6-input batch."""
    maps = x.detach().abs().clone()
    if len(x) == 6:
        maps[list(CONSTANT_ON)] = 0.5
    return maps


def test_constant_maps_is_per_input():
    maps = torch.rand(4, 3, 5, 5)
    maps[1] = 0.0
    maps[2] = 7.0
    maps[3, 0, 0, 0] = 0.0  # one different element: not constant
    assert constant_maps(maps).tolist() == [False, True, True, False]


def test_all_constant_maps_fail_the_job_with_the_count(tmp_path, tiny_suite):
    suite = load_suite(tiny_suite(methods=("test_zero_maps",)))
    report = Runner(tmp_path, device="cpu", progress=False).run(suite)
    assert report.done == [] and len(report.failed) == 1
    assert "n_constant_maps = 6" in report.failed[0][1] and "\n" not in report.failed[0][1]
    (failure,) = ResultStore(tmp_path / "tiny").failures()
    assert failure["n_constant_maps"] == 6 and failure["error_type"] == "ConstantMapsError"
    assert not list((tmp_path / "tiny").glob("*.parquet"))  # no rows: nothing to rank


def test_constant_inputs_leave_every_metric(tmp_path, tiny_suite):
    suite = load_suite(tiny_suite(methods=("test_partly_constant", "grad"),
                                  metrics=("ef", "delta_ef", "sparseness")))
    report = Runner(tmp_path, device="cpu", progress=False).run(suite)
    assert report.failed == []
    rows = pd.read_parquet(tmp_path / "tiny")
    part = rows[rows.method == "test_partly_constant"]
    assert set(part.n_constant_maps) == {2} and set(part.n) == {4}
    assert set(rows[rows.method == "grad"].n_constant_maps) == {0}
    samples = pd.read_parquet(tmp_path / "tiny" / "_samples")
    kept = samples[samples.job_id.isin(part.job_id)]
    for _, g in kept.groupby("metric"):
        assert sorted(g["sample"]) == [0, 2, 4, 5]  # indices of the batch, the constant ones left out


def test_submission_refuses_a_constant_method(tiny_cnn, shapes_batch, x_range):
    x, _ = shapes_batch
    target = torch.zeros(len(x), dtype=torch.long)
    with pytest.raises(SubmissionError, match="constant map .* on 8 of 8 validation inputs") as e:
        validate(create_method("test_zero_maps"), tiny_cnn, x, target, x_range, 10.0)
    assert "\n" not in str(e.value)
    validate(create_method("grad"), tiny_cnn, x, target, x_range, 10.0)  # a real method passes


def test_smoothgrad_with_negative_n_is_refused():
    with pytest.raises(GradBenchError, match="n"):
        create_method("smoothgrad", n=-5)
