"""Where a number came from: package versions, device and its numeric settings, git commit."""

from __future__ import annotations

import json
import platform
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from bench.errors import InputError
from bench.numerics import PINNED_CAPABILITY

DEVICE_TYPES = ("cpu", "cuda")
PACKAGES = ("gradbench", "torch", "torchvision", "timm", "quantus", "numpy", "scipy", "pyarrow")


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return ""


@lru_cache(maxsize=1)
def package_versions() -> str:
    return json.dumps({p: package_version(p) for p in PACKAGES} | {"python": platform.python_version()},
                      sort_keys=True)


@lru_cache(maxsize=1)
def git_commit() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "bench"],
                               cwd=root, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha or "unknown") + ("-dirty" if dirty else "")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    # The kernels' instruction set only when it is not the pinned one (bench.numerics), so that rows
    # computed with the pinned kernels keep the name the published rows have.
    capability = torch.backends.cpu.get_cpu_capability()
    isa = "" if capability == PINNED_CAPABILITY else f", {capability}"
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads{isa})"


def resolve_device(spec: str) -> torch.device:
    """``auto`` (CUDA where present, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``; refused in one line
    when this machine cannot run it."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in DEVICE_TYPES:
        raise InputError(f"--device {spec!r} is not a device GradBench runs on; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {spec}: CUDA is not available here; use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"--device {spec}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return device


@contextmanager
def allow_tf32(enabled: bool) -> Iterator[None]:
    """TF32 matmuls and convolutions on CUDA while the block runs, restoring the previous settings after
    (a runner's ``fast`` is its own, not the process's: another runner or a caller keeps its settings)."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
