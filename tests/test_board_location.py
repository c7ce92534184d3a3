"""A board of a subset of the published suites never overwrites the published board or its plots."""

from __future__ import annotations

from pathlib import Path

from bench.board.build import board_paths
from bench.board.config import load_board_config
from bench.cli import main


def test_published_suites_keep_the_published_place():
    suites = list(load_board_config().suites)
    assert board_paths("results", suites) == (Path("leaderboard.md"), Path("results/plots"))
    assert board_paths("results", suites[::-1], "leaderboard.md")[1] == Path("results/plots")


def test_subset_board_goes_to_its_own_folder_with_its_plots(tmp_path):
    out, plots = board_paths("res", ["default"])
    assert out == Path("res/boards/default/leaderboard.md") and plots == Path("res/boards/default/plots")
    out, plots = board_paths("res", ["default"], tmp_path / "b" / "x.md")
    assert plots == tmp_path / "b" / "plots"
    # the full board written elsewhere draws its plots beside it too, not into results/plots
    assert board_paths("res", list(load_board_config().suites), tmp_path / "x.md")[1] == tmp_path / "plots"


def test_subset_leaderboard_leaves_the_published_board_alone(tiny_suite, tmp_path, monkeypatch, capsys):
    path = tiny_suite(methods=("grad",), metrics=("ef",))
    results = tmp_path / "results"
    assert main(["run", path, "--results", str(results), "--quiet", "--device", "cpu"]) == 0
    monkeypatch.chdir(tmp_path)
    Path("leaderboard.md").write_text("published\n")
    assert main(["leaderboard", "tiny", "--results", "results", "--no-plots"]) == 0
    assert (results / "boards" / "tiny" / "leaderboard.md").read_text().startswith("#")
    assert main(["leaderboard", "tiny", "--results", "results", "--no-plots", "--out", "leaderboard.md"]) == 2
    assert "is the published board" in capsys.readouterr().err
    assert Path("leaderboard.md").read_text() == "published\n"
    assert not (results / "plots").exists()
    assert not (results / "board").exists()  # nor the published site: its pages went beside its front
    assert (results / "boards" / "tiny" / "board" / "tiny.md").exists()
