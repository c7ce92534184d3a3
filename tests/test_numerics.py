"""CPU numerics are pinned to AVX2 (bench.numerics): the published rows reproduce from an empty cache on
any machine with AVX2, AVX-512 ones included, and a run on other kernels says so in its rows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.data import load_dataset
from bench.data.vision import DatasetUnavailableError
from bench.models.fingerprint import numerics_fingerprint
from bench.numerics import PINNED_ENV, cpu_has_avx2
from bench.run.results import load_rows
from bench.run.runner import select_jobs
from bench.suite import load_suite
from bench.verify import verify

REPO = Path(__file__).resolve().parent.parent
needs_avx2 = pytest.mark.skipif(not cpu_has_avx2(), reason="this processor has no AVX2: nothing is pinned here")
FINGERPRINT = "import bench; from bench.models.fingerprint import numerics_fingerprint; print(numerics_fingerprint())"
PROBE = ("import bench, torch; from bench.provenance import device_name; "
         "print(torch.backends.cpu.get_cpu_capability(), '|', device_name(torch.device('cpu')))")


def _run_unpinned(code: str, **env: str) -> str:
    """What ``code`` prints in a fresh interpreter without the pin's variables (plus ``env``)."""
    clean = {k: v for k, v in os.environ.items() if k not in PINNED_ENV} | env
    return subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True,
                          check=True).stdout.strip()


def _probe(**env: str) -> tuple[str, str]:
    capability, device = _run_unpinned(PROBE, **env).split(" | ")
    return capability, device


@needs_avx2
def test_importing_bench_pins_avx2_and_the_device_name_stays_plain():
    capability, device = _probe()
    assert capability == "AVX2"
    assert device.startswith("cpu (") and "AVX" not in device


def test_a_users_choice_is_kept_and_named_in_the_rows():
    capability, device = _probe(ATEN_CPU_CAPABILITY="default")
    assert capability == "DEFAULT"
    assert device.endswith(", DEFAULT)")


def test_avx2_is_read_from_the_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\nbugs\t\t: avx2_bug\n")
    assert cpu_has_avx2(info)
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx fma\nbugs\t\t: avx2\n")
    assert not cpu_has_avx2(info)
    assert not cpu_has_avx2(tmp_path / "absent")


# (suite, --jobs pattern, sample): two of default's jobs, and a real-data one (Fashion-MNIST, split
# agreement at sf = 16: its model and twin train on 3,375 images each, so it costs seconds)
PUBLISHED = [("default", None, 2), ("generalization-small", "fashion-mnist/cnn-small[relu]/seed0/sf16.0/grad", 1)]


@needs_avx2
@pytest.mark.skipif(any(os.environ.get(k, v) != v for k, v in PINNED_ENV.items()),
                    reason="an instruction set other than the pinned one was asked for")
@pytest.mark.parametrize(("suite", "pattern", "sample"), PUBLISHED, ids=[s for s, _, _ in PUBLISHED])
def test_published_rows_reproduce_from_an_empty_cache(suite, pattern, sample):
    """Published jobs retrained and rerun from nothing give the committed weights and numbers bit for bit
    wherever this machine's kernels are the publisher's (unpinned, an AVX-512 machine gave other weights
    for every model; pinned, a Sapphire Rapids one still did for rows published on another kind)."""
    loaded = load_suite(suite)
    jobs = select_jobs(loaded, pattern)
    for dataset in {j.recipe.dataset for j in jobs}:
        try:
            load_dataset(dataset)
        except DatasetUnavailableError as e:
            pytest.skip(f"{suite}'s {dataset} jobs need the dataset here: {e}")
    ids = {j.id for j in jobs}
    rows = load_rows(REPO / "results" / suite)
    published = set(rows[rows["job_id"].isin(ids)]["numerics"])
    here = numerics_fingerprint("cpu")
    if published != {here}:
        pytest.skip(f"{suite}'s rows were computed with kernels {sorted(published)}, this machine's are {here}: "
                    "bit identity is not expected (bench.models.fingerprint)")
    checks = verify(loaded, REPO / "results", sample=sample, pattern=pattern)
    assert len(checks) == sample and [c.line(0.0) for c in checks if not c.equal(0.0)] == []


def _fingerprint(**env: str) -> str:
    return _run_unpinned(FINGERPRINT, **env)


@needs_avx2
def test_the_fingerprint_tells_other_kernels_apart_and_is_stable():
    """Each library's kernels move the fingerprint as they move training's weights: oneDNN's ISA, MKL's
    instructions, ATen's capability; the same kernels give the same digest in another process."""
    here = _fingerprint()
    assert here == numerics_fingerprint("cpu") and len(here) == 12
    others = {_fingerprint(ONEDNN_MAX_CPU_ISA="SSE41"), _fingerprint(MKL_ENABLE_INSTRUCTIONS="SSE4_2"),
              _fingerprint(ATEN_CPU_CAPABILITY="default")}
    assert here not in others and len(others) == 3


def test_the_fingerprint_leaves_the_callers_generator_alone():
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    numerics_fingerprint("cpu")
    assert torch.equal(torch.rand(3), expected)
