"""Results locations: local folders and fsspec/pyarrow URIs behave the same; writes are atomic."""

import uuid

import fsspec
import pandas as pd
import pyarrow as pa
import pytest

from bench.cli import main
from bench.errors import ResultsError
from bench.run.results import ResultStore, atomic_write, filesystem, join, load_rows, load_samples
from bench.run.runner import Runner
from bench.suite import load_suite

COMPARED = ["job_id", "method", "metric", "value", "stderr", "n"]


@pytest.fixture
def memory_root():
    """A fresh folder on fsspec's in-process memory filesystem (a stand-in for s3:// or gs://)."""
    name = f"memory://gradbench-{uuid.uuid4().hex}/results"
    yield name
    fs, bucket = fsspec.filesystem("memory"), name.removeprefix("memory://").split("/")[0]
    if fs.exists(bucket):
        fs.rm(bucket, recursive=True)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[COMPARED].sort_values(["job_id", "metric"]).reset_index(drop=True)


def test_a_run_to_a_uri_equals_the_local_run_and_resumes(tmp_path, tiny_suite, memory_root):
    suite = load_suite(tiny_suite())
    local = Runner(tmp_path / "results", device="cpu", progress=False)
    remote = Runner(memory_root, device="cpu", progress=False)
    assert local.run(suite).failed == [] and remote.run(suite).failed == []
    here, there = join(tmp_path / "results", "tiny"), join(memory_root, "tiny")
    assert there == f"{memory_root}/tiny"  # a URI is joined as text: Path would fold '//'
    pd.testing.assert_frame_equal(_sorted(load_rows(there)), _sorted(load_rows(here)))
    by = ["job_id", "metric", "sample"]
    pd.testing.assert_frame_equal(load_samples(there).sort_values(by).reset_index(drop=True),
                                  load_samples(here).sort_values(by).reset_index(drop=True))
    again = remote.run(suite)
    assert again.done == [] and again.skipped == len(suite.jobs)
    # a truncated file on the remote store is moved aside and its job rerun, as on a local disk
    store = remote.store(suite)
    with store.fs.open_output_stream(store.rows_path(suite.jobs[0])) as out:
        out.write(b"PAR1 truncated")
    assert remote.run(suite).done == [suite.jobs[0].id]
    assert store.fs.get_file_info(store.path("_corrupt", f"{suite.jobs[0].id}.parquet")).is_file
    assert main(["report", "tiny", "--results", memory_root, "--device", "cpu"]) == 0


def test_a_file_uri_and_a_path_name_the_same_folder(tmp_path, tiny_suite):
    suite = load_suite(tiny_suite(methods=("grad",)))
    assert Runner((tmp_path / "results").as_uri(), device="cpu", progress=False).run(suite).failed == []
    assert len(pd.read_parquet(tmp_path / "results" / "tiny")) == 3


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(memory_root):
    fs, base = filesystem(memory_root)

    def broken(out):
        out.write(b"PAR1 half a file")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(fs, f"{base}/job.parquet", broken)
    store = ResultStore(memory_root)
    assert not store.fs.get_file_info(f"{base}/job.parquet").is_file
    assert store.remove_stale_temporaries() == 0  # nothing was left behind
    atomic_write(fs, f"{base}/.left.tmp", lambda out: out.write(b"x"))  # what a SIGKILL would leave
    assert store.remove_stale_temporaries() == 1


def test_a_table_on_a_uri_is_readable_by_pyarrow_directly(memory_root):
    import pyarrow.parquet as pq

    fs, base = filesystem(memory_root)
    table = pa.table({"a": [1, 2, 3]})
    atomic_write(fs, f"{base}/t.parquet", lambda out: pq.write_table(table, out))
    assert pq.read_table(f"{base}/t.parquet", filesystem=fs).equals(table)


@pytest.mark.parametrize("root, match", [
    ("nosuchscheme://bucket/results", "cannot open results location nosuchscheme://bucket/results"),
    ("memory://gradbench-absent/results/tiny", "no results folder memory://gradbench-absent/results/tiny"),
])
def test_unknown_or_missing_locations_are_one_clear_error(root, match):
    with pytest.raises(ResultsError, match=match):
        load_rows(root)


def test_the_board_asks_for_a_local_copy_of_remote_results(memory_root, capsys):
    assert main(["leaderboard", "tiny", "--results", memory_root, "--no-plots"]) == 2
    err = capsys.readouterr().err.strip()
    assert "copy it down first" in err and len(err.splitlines()) == 1
