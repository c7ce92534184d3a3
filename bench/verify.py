"""``bench verify``: retrain a sample of a suite's models from an empty cache and rerun their jobs.

The committed rows say what a job gave; this module checks that the current code, starting from
nothing (a temporary model cache, a temporary results folder), gives the same: per job the largest
absolute and relative difference of every metric value and whether the model's weights digest
matches. Nothing outside the temporary folder is written.
"""

from __future__ import annotations

import math
import random
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.errors import SuiteError
from bench.job import Job
from bench.models.train import use_cache
from bench.run.results import join, load_rows
from bench.suite import Suite

COMPARED = ("value", "stderr", "n")  # the numbers a row reports about its metric


@dataclass
class JobCheck:
    label: str
    max_abs: float  # largest |fresh − committed| over the job's metrics and COMPARED columns
    max_rel: float  # the same, relative to |committed| (inf where committed is 0 and fresh is not)
    digest_match: bool
    error: str | None = None
    digest_recorded: bool = True  # False: the committed rows predate model_weights_digest
    numerics_committed: str = ""  # the committed rows' numerics fingerprint ("": not recorded)
    numerics_here: str = ""  # this run's (bench.models.fingerprint)

    @property
    def same_kernels(self) -> bool | None:
        """Whether the committed rows were computed with this machine's kernels (None: not recorded)."""
        return None if not self.numerics_committed else self.numerics_committed == self.numerics_here

    def equal(self, rtol: float) -> bool:
        return self.error is None and self.digest_match and self.max_rel <= rtol

    def line(self, rtol: float) -> str:
        if self.error is not None:
            return f"FAIL  {self.label}: {self.error}"
        verdict = "ok  " if self.equal(rtol) else "DIFF"
        digest = ("matches" if self.digest_match else "DIFFERS" if self.digest_recorded
                  else "not in the committed rows (regenerate them)")
        kernels = ""
        if verdict == "DIFF" and self.same_kernels is False:
            kernels = (f" (committed with kernels {self.numerics_committed}, here {self.numerics_here}: "
                       "bit identity is not expected across kernels)")
        elif verdict == "DIFF" and self.same_kernels is None:
            kernels = " (the committed rows do not record their kernels)"
        return (f"{verdict}  {self.label}: max |diff| {self.max_abs:.3g}, max rel diff {self.max_rel:.3g}, "
                f"weights digest {digest}{kernels}")


def pick_jobs(jobs: list[Job], k: int, seed: int = 0) -> list[Job]:
    """``k`` jobs drawn with ``seed``, spread across models: one from each model in turn (models in a
    seeded order) before a second from any."""
    rng = random.Random(seed)
    by_model: dict[str, list[Job]] = defaultdict(list)
    for job in sorted(jobs, key=lambda j: j.id):
        by_model[job.recipe.hash].append(job)
    pools = [rng.sample(group, len(group)) for _, group in sorted(by_model.items())]
    rng.shuffle(pools)
    picked: list[Job] = []
    while len(picked) < k and any(pools):
        for pool in pools:
            if pool and len(picked) < k:
                picked.append(pool.pop())
    return picked


def _differences(committed: pd.DataFrame, fresh: pd.DataFrame) -> tuple[float, float]:
    key = ["metric", "metric_params"]
    both = committed.merge(fresh, on=key, how="outer", suffixes=("_c", "_f"), indicator=True)
    if (both["_merge"] != "both").any():
        return math.inf, math.inf  # a metric present on one side only
    max_abs = max_rel = 0.0
    for col in COMPARED:
        for c, f in zip(both[f"{col}_c"].astype(float), both[f"{col}_f"].astype(float), strict=True):
            if math.isnan(c) and math.isnan(f):
                continue
            diff = abs(f - c)
            diff = math.inf if math.isnan(diff) else diff
            max_abs = max(max_abs, diff)
            max_rel = max(max_rel, 0.0 if diff == 0 else diff / abs(c) if c else math.inf)
    return max_abs, max_rel


def _first(rows: pd.DataFrame, column: str) -> str:
    value = rows[column].iloc[0] if column in rows and len(rows) else ""
    return value if isinstance(value, str) else ""


def verify(suite: Suite, results: str | Path = "results", sample: int = 6, seed: int = 0, device: str = "cpu",
           data_root: str | Path | None = None, progress: bool = False,
           workdir: str | Path | None = None, pattern: str | None = None) -> list[JobCheck]:
    """Retrain and rerun ``sample`` of the suite's committed jobs (those matching ``pattern``, as
    ``bench run --jobs``) in a temporary folder (``workdir`` when given: kept, for inspection) and
    compare with the committed rows."""
    from bench.run.results import ResultStore
    from bench.run.runner import Runner, select_jobs

    committed = load_rows(join(results, suite.name))
    ids = set(committed["job_id"]) if not committed.empty else set()
    jobs = [j for j in select_jobs(suite, pattern) if j.id in ids]
    if not jobs:
        raise SuiteError(f"no committed rows of suite '{suite.name}' in {join(results, suite.name)}; "
                         f"run 'bench run {suite.name}' first or pass --results")
    checks = []
    with tempfile.TemporaryDirectory(prefix="gradbench-verify-") as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        with use_cache(work / "cache"):
            runner = Runner(work / "results", device=device, progress=progress, data_root=data_root)
            store = ResultStore(join(work / "results", suite.name))
            for job in pick_jobs(jobs, sample, seed):
                _, error = runner.run_job(job, store)
                old = committed[committed["job_id"] == job.id]
                if error is not None:
                    checks.append(JobCheck(job.label, math.inf, math.inf, False, error))
                    continue
                new = load_rows(store.root)
                new = new[new["job_id"] == job.id]
                digest_old = _first(old, "model_weights_digest")
                recorded = bool(digest_old)
                match = recorded and digest_old == _first(new, "model_weights_digest")
                checks.append(JobCheck(job.label, *_differences(old, new), match, digest_recorded=recorded,
                                       numerics_committed=_first(old, "numerics"),
                                       numerics_here=_first(new, "numerics")))
    return checks
