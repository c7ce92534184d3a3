"""``bench run --save-maps`` then ``bench score``: the saved maps score as the run did; bad maps are refused.

The reference is the run itself: ``bench score`` on the maps a job saved must give that job's rows
(value, stderr, n, n_constant_maps) exactly, since float32 maps go through the runner's own inputs,
context and rows, and the job's generator state is saved with them.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import tiny_suite_text

from bench.cli import main

METRICS = '''metrics = ["ef", "delta_ef", "sparseness", "fidelity",
  { name = "faithfulness_correlation", params = { nr_runs = 10, subset_size = 64 } },
  { name = "max_sensitivity", params = { nr_samples = 2 } },
  { name = "pixel_flipping", params = { features_in_step = 256 } }]'''
# The same track with cheaper metrics (one draws random numbers), for the tests of formats and dtypes.
CHEAP = '''metrics = ["sparseness", "ef",
  { name = "faithfulness_correlation", params = { nr_runs = 10, subset_size = 64 } }]'''
COMPUTABLE = {"ef", "delta_ef", "sparseness", "faithfulness_correlation", "pixel_flipping"}
NOT_COMPUTABLE = {"fidelity", "max_sensitivity"}  # reads Method.unsmoothed; declares reexplains
COMPARED = ["value", "stderr", "n", "n_constant_maps"]


def _suite_text(activations=("relu",), metrics: str = METRICS) -> str:
    return re.sub(r"^metrics = .*$", metrics, tiny_suite_text(activations=activations), flags=re.M)


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The tiny suite (grad, smoothgrad) run once with --save-maps; grad ran once before without."""
    root = tmp_path_factory.mktemp("score")
    suite = root / "tiny.toml"
    suite.write_text(_suite_text())
    (root / "cheap.toml").write_text(_suite_text(metrics=CHEAP))
    results = root / "results"
    assert main(["run", str(suite), "--results", str(results), "--quiet", "--jobs", "*/grad"]) == 0
    assert not (results / "tiny" / "_maps").exists()
    assert main(["run", str(suite), "--results", str(results), "--quiet", "--save-maps"]) == 0
    rows = pd.read_parquet(results / "tiny")
    indices = {json.loads(p.read_text())["label"].rsplit("/", 1)[1]: json.loads(p.read_text())
               for p in (results / "tiny" / "_maps").glob("*.json")}
    return {"suite": str(suite), "cheap": str(root / "cheap.toml"), "results": results, "rows": rows,
            "index": indices, "root": root}


def _blob(saved, label: str) -> Path:
    return saved["results"] / "tiny" / "_maps" / saved["index"][label]["file"]


def _run_rows(saved, label: str) -> pd.DataFrame:
    rows = saved["rows"]
    return rows[rows["method_label"] == label].set_index("metric").sort_index()


def _score(saved, maps: str | Path, capsys, *extra: str, suite: str = "suite") -> tuple[int, str, str, Path]:
    out = saved["root"] / f"scored-{hashlib.sha256(str((maps, extra)).encode()).hexdigest()[:8]}.parquet"
    code, stdout, err = _cli(["score", str(maps), "--suite", saved[suite], "--results", str(saved["results"]),
                              "--out", str(out), "--quiet", *extra], capsys)
    return code, stdout, err, out


def test_a_job_done_without_maps_runs_again_with_save_maps(saved):
    assert set(saved["index"]) == {"grad", "smoothgrad(n=4)"}
    assert len(saved["rows"]) == 2 * len(COMPUTABLE | NOT_COMPUTABLE)


@pytest.mark.parametrize("label, given", [("grad", "job id"), ("smoothgrad(n=4)", "index")])
def test_scoring_saved_maps_gives_the_runs_numbers_exactly(saved, capsys, label, given):
    """smoothgrad draws from the generator before faithfulness_correlation does: equal only because the
    saved generator state is restored. MAPS given as the job's id (prefix) or its _maps/<job>.json."""
    job = saved["index"][label]["job_id"]
    maps = job[:8] if given == "job id" else saved["results"] / "tiny" / "_maps" / f"{job}.json"
    code, stdout, err, out = _score(saved, maps, capsys)
    assert code == 0, err
    scored = pd.read_parquet(out).set_index("metric").sort_index()
    assert set(scored.index) == COMPUTABLE
    pd.testing.assert_frame_equal(scored[COMPARED], _run_rows(saved, label).loc[scored.index, COMPARED],
                                  check_exact=True)
    assert set(scored["method"]) == {"saved_maps"} and set(scored["method_label"]) == {label}
    assert json.loads(scored["method_params"].iloc[0])["maps_sha256"] == saved["index"][label]["sha256"]
    for metric in NOT_COMPUTABLE:
        assert len(re.findall(rf"^not computable for saved maps: {metric} \(", stdout, flags=re.M)) == 1


def test_the_maps_file_is_self_describing_and_named_by_its_hash(saved):
    path = _blob(saved, "smoothgrad(n=4)")
    assert path.stem == hashlib.sha256(path.read_bytes()).hexdigest()
    with np.load(path, allow_pickle=False) as z:
        assert {"maps", "indices", "meta"} <= set(z.files)
        maps, indices, meta = z["maps"], z["indices"], json.loads(str(z["meta"]))
    row = _run_rows(saved, "smoothgrad(n=4)").iloc[0]
    assert maps.dtype == np.float32 and maps.shape == (6, 3, 32, 32)
    assert indices.tolist() == list(range(6))  # no constant map: every input kept
    assert meta["job_id"] == row["job_id"] and meta["method_label"] == "smoothgrad(n=4)"
    assert (meta["dataset"], meta["model_hash"], meta["n_constant_maps"]) == ("shapes", row["model_hash"], 0)


def test_float16_maps_are_saved_as_float16_and_score_close(saved, capsys, tmp_path):
    results = tmp_path / "results"
    assert main(["run", saved["cheap"], "--results", str(results), "--quiet", "--save-maps",
                 "--maps-dtype", "float16", "--jobs", "*/grad"]) == 0
    (index,) = (results / "tiny" / "_maps").glob("*.json")
    blob = index.with_name(json.loads(index.read_text())["file"])
    assert np.load(blob)["maps"].dtype == np.float16
    code, _, err, out = _score(saved, blob, capsys, suite="cheap")
    assert code == 0, err
    scored = pd.read_parquet(out).set_index("metric")
    run = _run_rows(saved, "grad")
    # float16 keeps ~3 significant digits of each map value
    assert np.allclose(scored.loc["sparseness", "value"], run.loc["sparseness", "value"], rtol=1e-3)
    assert np.allclose(scored.loc["ef", "value"], run.loc["ef", "value"], rtol=1e-2)


def _external(saved) -> tuple[np.ndarray, np.ndarray]:
    with np.load(_blob(saved, "grad")) as z:
        return z["maps"], z["indices"]


@pytest.mark.parametrize("fmt", ["npz", "npy", "parquet", "parquet-flat"])
def test_maps_made_elsewhere_score_like_the_run(saved, capsys, tmp_path, fmt):
    """The grad maps without GradBench's metadata (npz shuffled: the scorer puts them in input order).
    grad draws no random numbers, so a fresh generator is where the run's metrics began too."""
    maps, indices = _external(saved)
    path = tmp_path / f"mine.{fmt}"
    order = np.array([3, 0, 5, 1, 4, 2])
    if fmt == "npz":
        np.savez(path, maps=maps[order], indices=indices[order])
    elif fmt == "npy":
        np.save(path, maps)
    else:  # with a shape column, or flat maps of the inputs' shape
        shapes = {"shape": [list(m.shape) for m in maps[order]]} if fmt == "parquet" else {}
        pq.write_table(pa.table({"index": indices[order], "map": [m.ravel() for m in maps[order]], **shapes}),
                       path.with_suffix(".parquet"))
        path = path.with_suffix(".parquet")
    code, stdout, err, out = _score(saved, path, capsys, "--method-label", "mine", suite="cheap")
    assert code == 0, err
    scored = pd.read_parquet(out).set_index("metric").sort_index()
    assert set(scored["method_label"]) == {"mine"} and len(scored) == 3
    pd.testing.assert_frame_equal(scored[COMPARED], _run_rows(saved, "grad").loc[scored.index, COMPARED],
                                  check_exact=True)


def _truncated(saved, tmp_path):
    blob = _blob(saved, "grad")
    path = tmp_path / blob.name
    path.write_bytes(blob.read_bytes()[:-1000])
    return path


def _write_npz(path: Path, **arrays) -> Path:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())
    return path


def _bad(kind: str, saved, tmp_path) -> Path:
    maps, indices = _external(saved)
    nan = maps.copy()
    nan[2, 0, 5, 5] = np.nan
    path = tmp_path / "bad.npz"
    cases = {
        "truncated content-addressed file": lambda: _truncated(saved, tmp_path),
        "truncated npz": lambda: path.write_bytes(_blob(saved, "grad").read_bytes()[:5000]) and path,
        "mis-shaped maps": lambda: _write_npz(path, maps=maps[:, :, :30, :30].copy(), indices=indices),
        "NaN values": lambda: _write_npz(path, maps=nan, indices=indices),
        "float64 maps": lambda: _write_npz(path, maps=maps.astype(np.float64), indices=indices),
        "index out of range": lambda: _write_npz(path, maps=maps, indices=np.array([0, 1, 2, 3, 4, 6])),
        "negative index": lambda: _write_npz(path, maps=maps, indices=np.array([-1, 1, 2, 3, 4, 5])),
        "duplicate index": lambda: _write_npz(path, maps=maps, indices=np.array([0, 1, 2, 3, 3, 5])),
        "fewer indices than maps": lambda: _write_npz(path, maps=maps, indices=indices[:4]),
        "no maps array": lambda: _write_npz(path, attributions=maps, indices=indices),
        "more maps than inputs (npy)": lambda: np.save(tmp_path / "bad.npy", np.concatenate([maps, maps]))
        or tmp_path / "bad.npy",
    }
    return cases[kind]()


REFUSALS = {"truncated content-addressed file": "truncated", "truncated npz": "not a readable",
            "mis-shaped maps": "shape", "NaN values": "non-finite", "float64 maps": "float64",
            "index out of range": "outside", "negative index": "outside", "duplicate index": "appears 2 times",
            "fewer indices than maps": "indices for", "no maps array": "'maps'",
            "more maps than inputs (npy)": "outside"}


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kind", sorted(REFUSALS))
def test_bad_maps_are_refused_in_one_line_and_nothing_is_written(saved, capsys, tmp_path, kind):
    before = _tree(saved["results"])
    code, stdout, err, out = _score(saved, _bad(kind, saved, tmp_path), capsys, "--method-label", "mine",
                                    suite="cheap")
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and err.startswith("error: maps refused: ") and REFUSALS[kind] in err, err
    assert not out.exists()
    assert _tree(saved["results"]) == before


def test_maps_without_a_label_or_track_are_refused(saved, capsys, tmp_path):
    maps, indices = _external(saved)
    path = _write_npz(tmp_path / "mine.npz", maps=maps, indices=indices)
    code, _, err, out = _score(saved, path, capsys)
    assert code == 2 and "--method-label" in err and err.count("\n") == 1 and not out.exists()

    two = tmp_path / "two.toml"  # two tracks: refused before any model is trained
    two.write_text(_suite_text(activations=("relu", "softplus:1")))
    for extra, word in [([], "has 2 tracks"), (["--track", "digits/*"], "matches no track"),
                        (["--track", "shapes/*"], "matches 2 tracks")]:
        code, _, err = _cli(["score", str(path), "--suite", str(two), "--method-label", "mine", *extra], capsys)
        assert code == 2 and word in err and "shapes/cnn-small[softplus:1]/seed0" in err, err
        assert err.count("\n") == 1


def test_a_suite_of_re_explaining_metrics_only_is_refused(saved, capsys, tmp_path):
    suite = tmp_path / "tiny.toml"  # same name and track, only metrics that need the method
    suite.write_text(re.sub(r"^metrics = (.|\n)*?\]\]?\n", 'metrics = ["max_sensitivity"]\n', _suite_text(),
                            flags=re.M))
    code, _, err = _cli(["score", str(_blob(saved, "grad")), "--suite", str(suite)], capsys)
    assert code == 2 and "no metric" in err and "max_sensitivity" in err and err.count("\n") == 1, err


def test_prune_removes_the_maps_of_jobs_no_longer_in_the_suite(saved, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(saved["results"], results)
    suite = tmp_path / "tiny.toml"
    suite.write_text(_suite_text().split("[[methods]]\nname = \"smoothgrad\"")[0])  # grad only
    assert main(["prune", str(suite), "--results", str(results)]) == 0
    left = sorted(p.name for p in (results / "tiny" / "_maps").iterdir())
    grad = saved["index"]["grad"]
    assert left == sorted([f"{grad['job_id']}.json", grad["file"]])


def test_maps_of_a_perturbed_model_score_on_that_model(tmp_path, capsys):
    """A noise-resilience job's maps belong to the perturbed copy: scored on the trained model instead,
    ΔEF would take its grad maps from other weights (seen on the ViT: 1.9e-8 off, and a digest note)."""
    suite = tmp_path / "noisy.toml"
    text = tiny_suite_text(methods=("grad_x_input",), metrics=("ef", "delta_ef"))
    suite.write_text(text.replace('seed = 0\n', 'seed = 0\nnoise_resilience = true\n', 1))
    results = tmp_path / "results"
    assert main(["run", str(suite), "--results", str(results), "--quiet", "--save-maps"]) == 0
    rows = pd.read_parquet(results / "tiny")
    perturbed = rows[rows["model_perturbation"] != ""]
    job = perturbed["job_id"].iloc[0]
    out = tmp_path / "scored.parquet"
    code, _, err = _cli(["score", job, "--suite", str(suite), "--results", str(results), "--out", str(out),
                         "--quiet"], capsys)
    assert code == 0, err
    assert "model weights" not in err  # no digest-mismatch note: the maps' own model was built
    scored = pd.read_parquet(out).set_index("metric").sort_index()
    expected = perturbed.set_index("metric").sort_index()
    pd.testing.assert_frame_equal(scored[COMPARED], expected[COMPARED], check_exact=True)
    assert set(scored["model_perturbation"]) == set(expected["model_perturbation"])
    assert set(scored["model_weights_digest"]) == set(expected["model_weights_digest"])
    code, _, err = _cli(["score", job, "--suite", str(suite), "--results", str(results), "--quiet",
                         "--track", "shapes/cnn-small[relu]/seed0"], capsys)
    assert code == 2 and "made on track shapes/cnn-small[relu]/seed0/perturbed" in err, err
