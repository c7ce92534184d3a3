"""``bench verify``: a fresh retrain and rerun reproduces committed rows exactly, weights digest included."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import torch

from bench.cli import main
from bench.models.fingerprint import numerics_fingerprint
from bench.models.train import Recipe, training_numerics, weights_digest
from bench.suite import load_suite
from bench.verify import JobCheck, pick_jobs, verify


def test_digest_ignores_layout_and_sees_one_ulp():
    sd = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.ones(2)}
    same = {"a": torch.ones(2), "b": torch.arange(6.0).reshape(3, 2).t().contiguous().t().reshape(2, 3)}
    assert weights_digest(sd) == weights_digest(same)
    moved = dict(sd, a=torch.nextafter(torch.ones(2), torch.full((2,), 2.0)))
    assert weights_digest(moved) != weights_digest(sd)


def test_digest_of_a_batchnorm_model_sees_its_zero_dim_buffers():
    """BatchNorm's num_batches_tracked is a 0-dim int64 tensor (every ResNet has them)."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    before = weights_digest(model.state_dict())
    model.train()(torch.randn(2, 3, 5, 5))  # one step: num_batches_tracked 0 → 1, running stats move
    assert weights_digest(model.state_dict()) != before
    counted = {k: v for k, v in model.state_dict().items() if k.endswith("num_batches_tracked")}
    assert counted and all(v.dim() == 0 for v in counted.values())


def test_training_numerics_restores_threads():
    before = torch.get_num_threads()
    with training_numerics():
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before


def test_training_version_is_part_of_the_hash():
    r = Recipe("cnn-small", "shapes")
    assert Recipe("cnn-small", "shapes", training_version=r.training_version - 1).hash != r.hash


def test_pick_jobs_spreads_across_models(tiny_suite):
    suite = load_suite(tiny_suite(activations=("relu", "softplus:1")))
    picked = pick_jobs(suite.jobs, 2, seed=0)
    assert len({j.recipe.hash for j in picked}) == 2
    assert [j.id for j in picked] == [j.id for j in pick_jobs(suite.jobs, 2, seed=0)]


def test_verify_reproduces_a_run_from_an_empty_cache(tiny_suite, tmp_path, capsys):
    path = tiny_suite(methods=("grad",), metrics=("ef", "sparseness"))
    results = tmp_path / "results"
    assert main(["run", path, "--results", str(results), "--quiet", "--device", "cpu"]) == 0
    suite = load_suite(path)
    (check,) = verify(suite, results, sample=1)
    assert check.error is None and check.digest_match and check.max_abs == 0.0 and check.max_rel == 0.0
    assert main(["verify", path, "--sample", "1", "--results", str(results), "--quiet"]) == 0
    assert "weights digest matches" in capsys.readouterr().out
    # a committed value that differs is reported, and the exit code says so
    (f,) = (results / "tiny").glob("*.parquet")
    rows = pd.read_parquet(f)
    rows.loc[0, "value"] += 1e-3
    pq.write_table(__import__("pyarrow").Table.from_pandas(rows, preserve_index=False), f)
    (check,) = verify(suite, results, sample=1)
    assert check.max_abs > 0.5e-3 and check.digest_match
    assert check.same_kernels and check.numerics_here == numerics_fingerprint("cpu")
    assert main(["verify", path, "--sample", "1", "--results", str(results), "--quiet"]) == 1
    assert "kernels" not in capsys.readouterr().out  # same kernels: the difference is the code's
    # --jobs samples among the matching jobs only; a pattern matching none is one line, exit 2
    (check,) = verify(suite, results, sample=1, pattern=suite.jobs[0].label)
    assert check.label == suite.jobs[0].label
    assert main(["verify", path, "--jobs", "nothing/*", "--results", str(results), "--quiet"]) == 2
    assert "matches --jobs 'nothing/*'" in capsys.readouterr().err


def test_a_difference_from_other_kernels_says_so():
    other = JobCheck("t/m/seed0/grad", 1e-3, 1e-2, False, numerics_committed="aaaaaaaaaaaa",
                     numerics_here="bbbbbbbbbbbb")
    assert not other.equal(0.0) and other.same_kernels is False
    assert "committed with kernels aaaaaaaaaaaa, here bbbbbbbbbbbb" in other.line(0.0)
    unrecorded = JobCheck("t/m/seed0/grad", 1e-3, 1e-2, False, numerics_here="bbbbbbbbbbbb")
    assert unrecorded.same_kernels is None and "do not record their kernels" in unrecorded.line(0.0)
    same = JobCheck("t/m/seed0/grad", 0.0, 0.0, True, numerics_committed="b" * 12, numerics_here="b" * 12)
    assert same.equal(0.0) and "kernels" not in same.line(0.0)
