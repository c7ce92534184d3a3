"""kill -9 in the middle of `bench run`, run again: the same result set as an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from conftest import tiny_suite_text

SUITE = tiny_suite_text(methods=("grad", "grad_x_input", "smoothgrad", "adaptgrad", "integrated_gradients"))


def bench_run(suite: Path, results: Path, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "GRADBENCH_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "bench", "run", str(suite), "--results", str(results), "--quiet"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def read_all(root: Path) -> pd.DataFrame:
    rows = pd.read_parquet(root)
    return rows[["job_id", "metric", "value", "stderr", "n"]].sort_values(["job_id", "metric"]).reset_index(drop=True)


def test_sigkill_mid_run_then_rerun_equals_uninterrupted(tmp_path):
    suite = tmp_path / "tiny.toml"
    suite.write_text(SUITE)
    killed, clean = tmp_path / "killed", tmp_path / "clean"

    proc = bench_run(suite, killed, tmp_path / "cache-killed")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list((killed / "tiny").glob("*.parquet"))) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed; make the suite longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list((killed / "tiny").glob("*.parquet")))
    assert 2 <= done_before < 5

    assert bench_run(suite, killed, tmp_path / "cache-killed").wait() == 0
    assert bench_run(suite, clean, tmp_path / "cache-clean").wait() == 0

    pd.testing.assert_frame_equal(read_all(killed / "tiny"), read_all(clean / "tiny"))
    assert len(read_all(killed / "tiny")) == 5 * 3  # no duplicates
    assert not list(killed.glob("**/.*.tmp")) and not list((tmp_path / "cache-killed").glob("**/*.tmp"))
