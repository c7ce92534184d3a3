"""The Ray executor gives the local executor's result set, row for row."""

import pandas as pd
import pytest
import torch

from bench.run.ray import task_resources
from bench.run.runner import Runner
from bench.suite import load_suite

ray = pytest.importorskip("ray")

KEY = ["job_id", "metric", "value", "stderr", "n", "method_label", "model_hash"]


def test_ray_equals_local(tmp_path, tiny_suite):
    suite = load_suite(tiny_suite(methods=("grad", "smoothgrad", "integrated_gradients")))
    local = Runner(tmp_path / "local", device="cpu", progress=False)
    assert not local.run(suite).failed
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        # the workers write through a URI (any pyarrow/fsspec filesystem would do; file:// is local)
        report = Runner((tmp_path / "ray").as_uri(), device="cpu", progress=False).run(suite, executor="ray")
    finally:
        ray.shutdown()
    assert not report.failed and len(report.done) == 3
    a = pd.read_parquet(tmp_path / "local" / "tiny")[KEY].sort_values(["job_id", "metric"]).reset_index(drop=True)
    b = pd.read_parquet(tmp_path / "ray" / "tiny")[KEY].sort_values(["job_id", "metric"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("asked, device, cuda, expected", [
    (None, "cpu", False, (0.0, "cpu")),      # no GPU anywhere: CPU tasks
    (None, "cuda", True, (1.0, "auto")),     # CUDA present: one GPU a job by default
    (0.25, "cuda", True, (0.25, "auto")),    # suite's or CLI's num_gpus: four jobs share a GPU
    (0, "cpu", True, (0, "cpu")),            # asked for none: CPU even where CUDA is present
])
def test_task_resources(asked, device, cuda, expected):
    assert task_resources(asked, torch.device(device), cuda) == expected
