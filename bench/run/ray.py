"""Run jobs as Ray tasks: each worker writes its job's results atomically to the shared results path.

Optional: ``pip install -e '.[ray]'``. ``address=None`` starts a local Ray; ``"auto"`` or
``"ray://host:port"`` joins a cluster, whose workers must see the same results folder (a shared
filesystem) and the same model cache (``$GRADBENCH_CACHE``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import torch
from tqdm.auto import tqdm

from bench.errors import GradBenchError
from bench.job import Job
from bench.run.results import ResultStore

ENV_KEYS = ("GRADBENCH_CACHE", "GRADBENCH_DATA", "GRADBENCH_REGISTRY", "HF_HUB_OFFLINE", "OMP_NUM_THREADS")
# The job a worker runs: ``task(job, store_root, device) -> (job, error or None)``. The runner hands
# it over (bench.run.runner.run_on_worker), so this module needs nothing from the runner.
JobTask = Callable[[Job, str, str], tuple[Job, str | None]]


def _run(task: JobTask, job: Job, store_root: str, device: str) -> tuple[Job, str | None]:
    return task(job, store_root, device)  # ray.remote takes functions, not partials: the task is an argument


def task_resources(num_gpus: float | None, device: torch.device, cuda: bool) -> tuple[float, str]:
    """GPUs a job's task asks for (``--num-gpus``, else the suite's ``num_gpus``, else 1 where CUDA is
    present) and the device its worker runs on: "auto" picks the GPU Ray assigned it (through
    CUDA_VISIBLE_DEVICES) when the task asked for one, else the CPU."""
    gpus = num_gpus if num_gpus is not None else (1.0 if cuda else 0.0)
    return gpus, "auto" if device.type == "cuda" or gpus else "cpu"


def run_on_ray(task: JobTask, jobs: list[Job], store: ResultStore, address: str | None,
               num_gpus: float | None, device: torch.device, progress: bool = True
               ) -> Iterator[tuple[Job, str | None]]:
    """Each job as a Ray task running ``task`` (picklable: a module-level function or a partial of one);
    outcomes are yielded as tasks finish."""
    try:
        import ray
    except ImportError:
        raise GradBenchError("--executor ray needs Ray: pip install -e '.[ray]'") from None
    if not jobs:
        return
    env = {k: os.environ[k] for k in ENV_KEYS if k in os.environ}
    if not ray.is_initialized():
        kwargs = {"address": address} if address else {"num_cpus": os.cpu_count(), "include_dashboard": False}
        ray.init(runtime_env={"env_vars": env}, log_to_driver=False, **kwargs)
    gpus, worker_device = task_resources(num_gpus, device, torch.cuda.is_available())
    remote = ray.remote(num_gpus=gpus, num_cpus=1)(_run)
    refs = [remote.remote(task, job, str(store.root), worker_device) for job in jobs]
    with tqdm(total=len(refs), desc="ray", unit="job", disable=not progress) as bar:
        pending = refs
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                bar.update(1)
                yield ray.get(ref)
