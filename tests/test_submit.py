"""``bench submit``: a good method lands on the board; bad ones are refused with one line, nothing written."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_suite_text

from bench.board import write_board
from bench.cli import main
from bench.run.runner import Runner
from bench.suite import load_suite

METHODS = '''
import torch
from bench.methods import input_gradient


def abs_grad(model, x, target, *, chunk_size, power=1.0):
    """|∇ₓ f|^power: a good method that ignores x_range and generator."""
    return input_gradient(model, x, target, chunk_size).abs() ** power


def nan_map(model, x, target, *, chunk_size):
    return input_gradient(model, x, target, chunk_size) * float("nan")


def wrong_shape(model, x, target):
    return x[:, :1].clone()


def raises(model, x, target):
    raise RuntimeError("no map\\ntoday")


def noisy_grad(model, x, target, *, generator, chunk_size, sigma=0.1):
    """Noise from the job's generator: deterministic, though not item-by-item equal to the batch."""
    eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return input_gradient(model, x + sigma * eps, target, chunk_size)


def batch_max(model, x, target, *, chunk_size):
    g = input_gradient(model, x, target, chunk_size)
    return g / g.abs().max()  # normalised over the whole batch: a map depends on the other inputs


def global_rng(model, x, target, *, chunk_size):
    return input_gradient(model, x, target, chunk_size) + torch.randn_like(x)  # not the job's generator
'''


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny suite, its results for `grad` and the board rendered from them (made once per module)."""
    root = tmp_path_factory.mktemp("submit-base")
    suite = root / "tiny.toml"
    suite.write_text(tiny_suite_text(metrics=("ef", "sparseness"), methods=("grad",)))
    report = Runner(root / "results", progress=False).run(load_suite(str(suite)))
    assert not report.failed, report.failed
    write_board(root / "results", ["tiny"], root / "leaderboard.md", plots=False)
    (root / "methods.py").write_text(METHODS)
    return root


@pytest.fixture
def work(base, tmp_path):
    """A private copy of the base results and board, so each test can write."""
    for name in ("results", "leaderboard.md", "board", "tiny.toml", "methods.py"):
        src = base / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    return tmp_path


def bench_submit(work: Path, function: str, name: str, *extra: str) -> int:
    return main(["submit", f"{work / 'methods.py'}:{function}", "--name", name, "--suite", str(work / "tiny.toml"),
                 "--results", str(work / "results"), "--out", str(work / "leaderboard.md"), "--no-plots",
                 "--quiet", *extra])


def board_text(work: Path) -> str:
    """The front and the suite's page (the track tables and the methods' citations are there)."""
    return (work / "leaderboard.md").read_text() + (work / "board" / "tiny.md").read_text()


def snapshot(work: Path) -> dict[str, str]:
    files = [p for p in [*(work / "results").rglob("*"), *(work / "board").rglob("*"), work / "leaderboard.md"]
             if p.is_file()]
    return {str(p.relative_to(work)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_good_method_lands_on_the_board(work, capsys):
    before = (work / "leaderboard.md").read_text()
    assert bench_submit(work, "abs_grad", "abs-grad", "--params", '{"power": 2}', "--citation", "Doe 2026") == 0
    board = board_text(work)
    assert "| abs-grad |" in board and "Doe 2026" in board and "| grad |" in board
    rows = pd.read_parquet(work / "results" / "submissions" / "abs-grad" / "tiny")
    assert set(rows["method_label"]) == {"abs-grad"} and set(rows["metric"]) == {"ef", "sparseness"}
    assert (work / "results" / "submissions" / "abs-grad" / "submission.json").exists()
    digest_line = [line for line in board.splitlines() if "Results digest" in line]
    assert digest_line and digest_line[0] not in before  # new rows, new digest
    assert "submitted 'abs-grad'" in capsys.readouterr().out


def test_duplicate_name_is_refused_unless_replace(work, capsys):
    assert bench_submit(work, "abs_grad", "abs-grad") == 0
    state = snapshot(work)
    capsys.readouterr()
    assert bench_submit(work, "abs_grad", "abs-grad", "--params", '{"power": 3}') == 2
    assert "--replace" in capsys.readouterr().err
    assert snapshot(work) == state
    assert bench_submit(work, "abs_grad", "abs-grad", "--params", '{"power": 3}', "--replace") == 0
    assert snapshot(work) != state
    assert not [p for p in (work / "results").iterdir() if p.name.startswith(".")]  # no staging left behind


def test_published_name_is_refused(work, capsys):
    assert bench_submit(work, "abs_grad", "grad") == 2
    assert "published method" in capsys.readouterr().err


@pytest.mark.parametrize(("function", "message"), [
    ("nan_map", "non-finite values"),
    ("wrong_shape", "returned shape (4, 1, 32, 32), expected the input's (4, 3, 32, 32)"),
    ("raises", "raised RuntimeError: no map today"),
    ("global_rng", "not deterministic under a fixed generator"),
    ("batch_max", "different maps than its items one by one"),
])
def test_bad_method_is_refused_and_nothing_changes(work, capsys, function, message):
    state = snapshot(work)
    assert bench_submit(work, function, "bad") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: submission refused: ") and message in err
    assert snapshot(work) == state  # results and board byte-identical
    assert not (work / "results" / "submissions" / "bad").exists()


def test_unknown_param_is_refused(work, capsys):
    assert bench_submit(work, "abs_grad", "abs-grad", "--params", '{"powr": 2}') == 2
    assert "takes no parameter powr; it takes: power" in capsys.readouterr().err


def test_method_drawing_from_the_generator_is_accepted(work, capsys):
    assert bench_submit(work, "noisy_grad", "noisy") == 0
    assert "batch-vs-items equality was not checked" in capsys.readouterr().out


def test_slow_method_is_refused(work, capsys):
    state = snapshot(work)
    assert bench_submit(work, "abs_grad", "slow", "--max-seconds", "0") == 2
    assert "s per map" in capsys.readouterr().err and snapshot(work) == state


def test_installed_entry_point_is_submittable(work, monkeypatch, capsys):
    import importlib.util

    import bench.submit

    spec = importlib.util.spec_from_file_location("plugin_methods", work / "methods.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class EntryPoint:  # what importlib.metadata yields for an installed `bench.methods` plugin
        name = "plugin-grad"

        def load(self):
            return module.abs_grad

    monkeypatch.setattr(bench.submit, "entry_points",
                        lambda group, name: [EntryPoint()] if name == "plugin-grad" else [])
    assert main(["submit", "plugin-grad", "--name", "plugin-grad", "--suite", str(work / "tiny.toml"),
                 "--results", str(work / "results"), "--out", str(work / "leaderboard.md"), "--no-plots",
                 "--quiet"]) == 0
    assert "| plugin-grad |" in board_text(work)


def test_regenerating_the_board_gives_the_same_bytes(work):
    assert bench_submit(work, "abs_grad", "abs-grad") == 0
    first = snapshot(work)
    assert main(["leaderboard", "tiny", "--results", str(work / "results"), "--out", str(work / "leaderboard.md"),
                 "--no-plots"]) == 0
    assert snapshot(work) == first  # every page


def test_validation_runs_the_model_as_the_runner_does(work):
    """The contract checks see the model in the memory layout, mode and grad state the runner uses."""
    import torch

    from bench.submit import validation_batch

    suite = load_suite(str(work / "tiny.toml"))
    job = suite.jobs[0]
    checked, x, _, _ = validation_batch(suite, torch.device("cpu"))
    runs = Runner(work / "results", device="cpu", progress=False).scored(job.recipe, job.output)

    def layout(m):
        return [(tuple(p.shape), p.stride(), p.requires_grad) for p in m.parameters()], m.training

    assert layout(checked) == layout(runs)
    conv = next(p for p in checked.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()  # CPU: NHWC


def test_a_submission_is_marked_in_its_registry_entry(work, capsys):
    from bench import registry
    from bench.submit import SUBMITTED

    assert bench_submit(work, "abs_grad", "abs_grad_marked") == 0
    assert registry.methods.get("abs_grad_marked").meta[SUBMITTED]
    assert not registry.methods.get("grad").meta.get(SUBMITTED)


def test_slowness_is_timed_on_the_first_call_and_stops_there(work, capsys):
    (work / "counted.py").write_text(
        "from pathlib import Path\nfrom bench.methods import input_gradient\n\n\n"
        "def counted(model, x, target, *, chunk_size):\n"
        "    calls = Path(__file__).with_suffix('.calls')\n"
        "    calls.write_text(calls.read_text() + 'x' if calls.exists() else 'x')\n"
        "    return input_gradient(model, x, target, chunk_size)\n")
    state = snapshot(work)
    assert main(["submit", f"{work / 'counted.py'}:counted", "--name", "counted", "--suite", str(work / "tiny.toml"),
                 "--results", str(work / "results"), "--out", str(work / "leaderboard.md"), "--no-plots",
                 "--max-seconds", "0"]) == 2
    err = capsys.readouterr().err
    assert "first call on 4 inputs" in err and "over the limit" in err  # progress, then the refusal
    assert (work / "counted.calls").read_text() == "x"  # one call: no untimed warm-up, no further checks
    assert snapshot(work) == state


def test_submission_keeps_its_source_and_can_be_withdrawn(work, capsys):
    assert bench_submit(work, "abs_grad", "abs-grad") == 0
    folder = work / "results" / "submissions" / "abs-grad"
    assert (folder / "source" / "methods.py").read_bytes() == (work / "methods.py").read_bytes()
    assert '"source_copy": "source/methods.py"' in (folder / "submission.json").read_text()
    capsys.readouterr()
    assert main(["submit", "--withdraw", "abs-grad", "--results", str(work / "results")]) == 0
    out = capsys.readouterr().out
    assert "withdrew 'abs-grad'" in out and str(folder) in out and not folder.exists()
    assert (work / "results" / "tiny").is_dir()  # the suite's own results stay
    assert main(["submit", "--withdraw", "abs-grad", "--results", str(work / "results")]) == 2
    assert "no submission named 'abs-grad'" in capsys.readouterr().err
    assert main(["submit", "--withdraw", "../tiny", "--results", str(work / "results")]) == 2
    assert (work / "results" / "tiny").is_dir()
