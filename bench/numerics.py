"""CPU numerics pinned to one instruction set, so that CPU reruns on different machines give the same bits.

torch picks its CPU kernels by the widest instruction set the processor has — ATen's own kernels,
oneDNN's convolutions, MKL's BLAS — and AVX-512 kernels add in another order than AVX2 ones. The same
training on an AVX-512 machine therefore gave other weights than on the AVX2 machines that produced the
published board (default's shapes cnn-small[relu]: held-out accuracy 0.938 against 0.936, pointing
game 0.953 against 0.969), and ``bench verify default`` reproduced 0 of 6 jobs. Pinning all three
libraries to AVX2, which every x86-64 server of the last decade has, reproduces 6 of 6 bit for bit
(ATen alone: 0 of 6; oneDNN alone: 3 of 6).

This module imports no torch: ``bench/__init__.py`` runs ``pin_cpu_isa()`` before anything touches a
kernel (each library reads its variable at first use). A variable already set is the user's choice
and is kept; ``bench.provenance.device_name`` names the capability in the rows whenever it is not the
pinned one, so a number computed with other kernels says so.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

PINNED_CAPABILITY = "AVX2"  # as torch.backends.cpu.get_cpu_capability() names it
PINNED_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def cpu_has_avx2(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the processor lists ``avx2`` among its flags (Linux); False where that cannot be read."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    return re.search(r"^flags\s*:.*\bavx2\b", text, flags=re.M) is not None


def pin_cpu_isa() -> None:
    """Default the three libraries' instruction set to AVX2 where the processor has it (elsewhere torch's
    own choice stands and the rows name it)."""
    if cpu_has_avx2():
        for name, value in PINNED_ENV.items():
            os.environ.setdefault(name, value)
