"""Issue 18, item 12: concurrent runners on one results folder split the work through claim files."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from conftest import TINY_SUITE

from bench.run.results import ResultStore
from bench.suite import load_suite

SLOW = textwrap.dedent('''
    import time
    from bench.methods.base import input_gradient, register_method

    @register_method("test_slow_grad")
    def slow_grad(model, x, target, *, x_range, generator, chunk_size, tag: int = 0):
        """The input gradient, slowly: runners overlap."""
        time.sleep(0.8)
        return input_gradient(model, x, target, chunk_size)
''')

RUNNER = textwrap.dedent('''
    import json, os, sys, time
    from pathlib import Path
    sys.path.insert(0, os.path.dirname(__file__))
    import slow_method  # registers test_slow_grad
    from bench.run.runner import Runner
    from bench.suite import load_suite

    work = Path(sys.argv[1])
    (work / f"ready{sys.argv[2]}").touch()
    while not (work / "go").exists():
        time.sleep(0.05)
    report = Runner(work / "results", device="cpu", progress=False).run(load_suite(str(work / "tiny.toml")))
    print(json.dumps({"done": report.done, "claimed": report.claimed, "failed": report.failed}))
''')


def _suite_text() -> str:
    methods = "\n".join(f'[[methods]]\nname = "test_slow_grad"\nparams = {{ tag = {i} }}'
                        for i in range(6))
    return TINY_SUITE.format(metrics=["sparseness"], activations=["relu"], methods=methods)


def test_two_runners_compute_every_job_once(tmp_path):
    (tmp_path / "slow_method.py").write_text(SLOW)
    (tmp_path / "run_one.py").write_text(RUNNER)
    (tmp_path / "tiny.toml").write_text(_suite_text())
    sys.path.insert(0, str(tmp_path))
    try:
        import slow_method  # noqa: F401  (the suite names its method)
    finally:
        sys.path.remove(str(tmp_path))
    suite = load_suite(str(tmp_path / "tiny.toml"))
    assert len(suite.jobs) == 6
    from bench.models.build import trained_model

    trained_model(suite.jobs[0].recipe, "cpu", progress=False)  # train once: the runners share the cache
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, str(tmp_path / "run_one.py"), str(tmp_path), str(i)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    deadline = time.time() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        assert time.time() < deadline and all(p.poll() is None for p in procs), procs[0].communicate()
        time.sleep(0.1)
    (tmp_path / "go").touch()
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    done = [set(r["done"]) for r in reports]
    assert all(r["failed"] == [] for r in reports)
    assert done[0] | done[1] == {j.id for j in suite.jobs}  # every job computed ...
    assert not done[0] & done[1]  # ... exactly once
    assert all(done), "both runners took a share"
    assert not list((tmp_path / "results").rglob("*.claim"))  # no claim left


def test_a_dead_runners_claim_is_taken_over_and_a_live_ones_is_not(tmp_path, tiny_suite):
    job = load_suite(tiny_suite(methods=("grad",))).jobs[0]
    store = ResultStore(tmp_path / "tiny")
    assert store.claim(job)
    assert not store.claim(job)  # held by this (live) process
    path = tmp_path / "tiny" / "_claims" / f"{job.id}.claim"
    held = json.loads(path.read_text())
    assert held["pid"] == os.getpid()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path.write_text(json.dumps({**held, "pid": int(dead.stdout)}))  # its process has exited
    assert store.claim(job)
    path.write_text(json.dumps({**held, "host": "elsewhere", "time": time.time() - 10}))
    assert not store.claim(job)  # another host, recent: live as far as we can tell
    path.write_text(json.dumps({**held, "host": "elsewhere", "time": time.time() - 7 * 3600}))
    assert store.claim(job)  # another host, past the timeout
    store.release(job)
    assert not path.exists()
