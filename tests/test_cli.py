"""Bad input at the CLI: one line on stderr naming the fix, a non-zero exit, no traceback, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_suite_text

from bench.cli import main
from bench.methods.base import register_method

ROOT = Path(__file__).resolve().parent.parent


@register_method("test_cli_raises")
def _raises(model, x, target, *, x_range, generator, chunk_size):
    """Fails its job (a broken submission)."""
    raise RuntimeError("this method always fails")


def _suite(tmp_path: Path, old: str, new: str) -> str:
    text = tiny_suite_text()
    assert old in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(old, new, 1))
    return str(path)


MODEL = 'architecture = "cnn-small"'
SG = 'name = "smoothgrad"\nparams = { n = 4 }'
BAD_SUITES = {  # (what the tiny suite says, what the bad one says, a word the message must have)
    "name is a number": ('name = "tiny"', "name = 5", "name"),
    "name escapes the results folder": ('name = "tiny"', 'name = "../escape_x"', "name"),
    "name is an absolute path": ('name = "tiny"', 'name = "/tmp/abs"', "name"),
    "name has spaces": ('name = "tiny"', 'name = "two words"', "name"),
    "seeds is not a list": (MODEL, MODEL + "\nseeds = 0", "seeds"),
    "seeds holds a float": (MODEL, MODEL + "\nseeds = [0, 1.5]", "seeds"),
    "samples is 0": ("samples = 6", "samples = 0", "samples"),
    "seed is a fraction": ("seed = 0", "seed = 0.5", "seed"),
    "accuracy cap above 1": (MODEL, MODEL + "\naccuracy_cap = 1.5", "accuracy_cap"),
    "accuracy cap of a dataset is 0": (MODEL, MODEL + "\naccuracy_cap = { shapes = 0 }", "accuracy_cap"),
    # Method and metric parameter values: the factory's own check, run for every grid point at load.
    "smoothgrad n is a word": (SG, 'name = "smoothgrad"\nparams = { n = "ten" }', "n='ten' is not allowed"),
    "smoothgrad n is negative": (SG, 'name = "smoothgrad"\nparams = { n = -5 }', "n=-5 is not allowed"),
    "a bad value inside a list axis": (SG, 'name = "smoothgrad"\nparams = { n = [4, 0] }', "n=0 is not allowed"),
    "a composite's base_params": (SG, 'name = "smoothgrad"\nparams = { n = 4, base = "integrated_gradients", '
                                      'base_params = { steps = 0 } }', "steps=0 is not allowed"),
    "a bad metric parameter": ("'sparseness'", '{ name = "max_sensitivity", params = { nr_samples = -1 } }',
                               "nr_samples=-1 is not allowed"),
    "a metric parameter of the wrong type": ("'sparseness'", '{ name = "invariance", params = { shift = "big" } }',
                                             "shift='big' is not allowed"),
}
ALIASES = {  # registry aliases (registry/methods.toml) of composite implementations, a value their factory refuses
    "s-ig-b": ("params = { steps = 0 }", "steps=0 is not allowed"),
    "a-ng": ("params = { n = 2, m = [2, -1] }", "m=-1 is not allowed"),
    "a-gi": ('params = { rule = "paper-ish" }', "rule='paper-ish' is not allowed"),
}
BAD_FLAGS = {
    "unknown device": (["--device", "tpu"], "device"),
    "negative chunk size": (["--chunk-size", "-3"], "chunk-size"),
    "zero chunk size": (["--chunk-size", "0"], "chunk-size"),
    "fractional chunk size": (["--chunk-size", "0.5"], "chunk-size"),
}


def _refused(argv: list[str], capsys, word: str) -> None:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's usage errors exit
        code = e.code
    err = capsys.readouterr().err
    assert code not in (0, None)
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert word in err


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
@pytest.mark.parametrize("case", sorted(BAD_SUITES))
def test_bad_suite_values_are_one_line_and_write_nothing(tmp_path, capsys, case, dry_run):
    old, new, word = BAD_SUITES[case]
    results = tmp_path / "results"
    argv = ["run", _suite(tmp_path, old, new), "--results", str(results), "--quiet"]
    _refused(argv + ["--dry-run"] * dry_run, capsys, word)
    assert not results.exists()
    assert not (tmp_path / "escape_x").exists()


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_bad_values_of_aliased_composites_are_refused_at_load(tmp_path, capsys, alias, dry_run):
    params, word = ALIASES[alias]
    results = tmp_path / "results"
    argv = ["run", _suite(tmp_path, SG, f'name = "{alias}"\n{params}'), "--results", str(results), "--quiet"]
    _refused(argv + ["--dry-run"] * dry_run, capsys, word)
    assert not results.exists()


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
@pytest.mark.parametrize("case", sorted(BAD_FLAGS))
def test_bad_flags_are_one_line_and_write_nothing(tmp_path, tiny_suite, capsys, case, dry_run):
    flags, word = BAD_FLAGS[case]
    results = tmp_path / "results"
    _refused(["run", tiny_suite(), "--results", str(results), *flags] + ["--dry-run"] * dry_run, capsys, word)
    assert not results.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_cuda_without_cuda(tmp_path, tiny_suite, capsys, dry_run):
    results = tmp_path / "results"
    _refused(["run", tiny_suite(), "--results", str(results), "--device", "cuda"] + ["--dry-run"] * dry_run,
             capsys, "CUDA is not available")
    assert not results.exists()


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_unknown_suite(tmp_path, capsys, dry_run):
    results = tmp_path / "results"
    _refused(["run", "defualt", "--results", str(results)] + ["--dry-run"] * dry_run, capsys, "did you mean 'default'")
    assert not results.exists()


def test_the_installed_command_prints_one_line(tmp_path):
    """The issue's example end to end, in a fresh interpreter: it used to print a torch traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "bench", "run", "default", "--device", "tpu", "--results",
                           str(tmp_path / "results")], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert done.returncode != 0 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "--device 'tpu'" in done.stderr and not (tmp_path / "results").exists()


def test_a_good_suite_still_passes_the_value_checks(tmp_path, tiny_suite, capsys):
    assert main(["run", tiny_suite(), "--results", str(tmp_path / "results"), "--dry-run"]) == 0
    assert "tiny: 2 jobs" in capsys.readouterr().out


def test_a_failed_job_exits_1_after_the_others_ran_with_the_count_last(tmp_path, tiny_suite, capsys):
    results = tmp_path / "results"
    path = tiny_suite(methods=("grad", "test_cli_raises"), metrics=("sparseness",))
    assert main(["run", path, "--results", str(results), "--quiet", "--device", "cpu"]) == 1
    out, err = capsys.readouterr()
    assert "FAILED shapes/cnn-small[relu]/seed0/test_cli_raises: RuntimeError" in err
    last = out.strip().splitlines()[-1]
    assert last.startswith("tiny: 1 ran, 0 already done, 1 failed") and last.endswith("; exit 1"), last
    assert len(list((results / "tiny").glob("*.parquet"))) == 1  # the good job ran and was written
    # Run again: the good job is done, the failed one runs again and fails again.
    assert main(["run", path, "--results", str(results), "--quiet", "--device", "cpu"]) == 1
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("tiny: 0 ran, 1 already done, 1 failed")
    assert main(["run", tiny_suite(methods=("grad",), metrics=("sparseness",)), "--results", str(results),
                 "--quiet"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("tiny: 0 ran, 1 already done, 0 failed")


def test_help_names_the_exit_codes(capsys):
    for argv in (["--help"], ["run", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = " ".join(capsys.readouterr().out.split())
        assert "exit status: 0" in text and "1 when" in text and "2 " in text, text


@pytest.mark.parametrize("metrics, pairs", [(("ef", "sparseness"), False), (("sparseness", "split_rank_corr"), True)])
def test_train_twins_only_where_split_agreement_compares_them(tmp_path, metrics, pairs):
    """`bench train --twins` trains a model's split-agreement twin only for jobs that score it."""
    from bench.cli.train import _compares_pairs
    from bench.suite import load_suite

    path = tmp_path / "s.toml"
    path.write_text(tiny_suite_text(metrics=metrics))
    assert {_compares_pairs(j) for j in load_suite(str(path)).jobs} == {pairs}
