"""Nothing GradBench runs changes process-wide state for its caller: TF32 flags, NumPy, os.environ."""

from __future__ import annotations

import importlib
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.cli import main
from bench.models.build import recipe_data
from bench.models.train import Recipe
from bench.provenance import allow_tf32
from bench.run.runner import Runner
from bench.suite import load_suite


def _tf32() -> tuple[bool, bool]:
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


@pytest.fixture
def restore_tf32():
    before = _tf32()
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_allow_tf32_sets_and_restores(restore_tf32):
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = True, False
    with allow_tf32(False):
        assert _tf32() == (False, False)
        with allow_tf32(True):
            assert _tf32() == (True, True)
        assert _tf32() == (False, False)
    assert _tf32() == (True, False)
    with pytest.raises(RuntimeError), allow_tf32(True):
        raise RuntimeError  # restored on the way out of a failing job too
    assert _tf32() == (True, False)


@pytest.mark.parametrize("fast", [False, True])
def test_a_runner_applies_tf32_only_while_its_jobs_run(tmp_path, tiny_suite, monkeypatch, restore_tf32, fast):
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = (not fast), (not fast)
    seen = []
    real = Runner.execute

    def execute(self, job):
        seen.append(_tf32())
        return real(self, job)

    monkeypatch.setattr(Runner, "execute", execute)
    runner = Runner(tmp_path, device="cpu", progress=False, fast=fast)
    assert _tf32() == (not fast, not fast)  # making a runner changes nothing
    assert not runner.run(load_suite(tiny_suite(methods=("grad",)))).failed
    assert seen == [(fast, fast)] and _tf32() == (not fast, not fast)


def test_quantus_nan_alias_stays_in_quantus():
    """Quantus 0.6 writes np.NaN (gone in NumPy 2); only its own modules see the alias."""
    from bench.metrics.quantus_adapter import NAN_ALIAS_MODULES, _quantus

    quantus = _quantus()
    assert np.lib.NumpyVersion(np.__version__) < "2.0.0" or not hasattr(np, "NaN")  # NumPy untouched
    for name in NAN_ALIAS_MODULES:
        assert math.isnan(importlib.import_module(name).np.NaN)
    # every Quantus module that still writes np.NaN is in the list
    users = {f"quantus.{p.relative_to(Path(quantus.__file__).parent).with_suffix('').as_posix().replace('/', '.')}"
             for p in Path(quantus.__file__).parent.rglob("*.py") if "np.NaN" in p.read_text(encoding="utf-8")}
    assert users <= set(NAN_ALIAS_MODULES)


def test_data_root_is_passed_not_exported(tmp_path, tiny_suite, monkeypatch, capsys):
    monkeypatch.delenv("GRADBENCH_DATA", raising=False)
    assert main(["run", tiny_suite(), "--results", str(tmp_path / "r"), "--dry-run",
                 "--data-root", str(tmp_path / "data")]) == 0
    assert "GRADBENCH_DATA" not in os.environ
    # the root reaches a dataset that takes one (no files there: the error names the folder) ...
    with pytest.raises(Exception, match=str(tmp_path / "elsewhere")):
        recipe_data(Recipe("cnn-small", "mnist"), data_root=tmp_path / "elsewhere")
    # ... and is left out for one that does not
    assert len(recipe_data(Recipe("cnn-small", "shapes", dataset_params={"n_train": 300, "n_test": 20}),
                           data_root=tmp_path / "elsewhere").x_test) == 20
