"""The numerics fingerprint: which kernels this machine's torch runs, as a digest a row can carry.

Pinning the instruction set (:mod:`bench.numerics`) is not the whole story. oneDNN and MKL also
choose kernels and blockings by processor model and cache sizes, so two AVX2-pinned machines can
still add in another order: the published shapes models, trained on one machine kind, came out with
other weights on a Sapphire Rapids Xeon (AVX-512, AMX) under the same pin, and every knob moved
them (oneDNN's ISA, MKL's instructions or its CNR mode, ATen's capability), while a rerun on the same
kind is bit-identical. So "reruns give identical numbers" holds between machines whose kernels
compute the same bits, and a row says which those were: the digest of a few Adam steps of cnn-small
(SoftPlus, 32×32, seeded data) under training's fixed numerics — the same convolutions, matmuls and
reductions training and explanation run — on the job's device. Equal fingerprints: a rerun must
reproduce a row bit for bit; different ones: differences are the kernels', not the code's.
"""

from __future__ import annotations

from functools import cache

import torch
from torch import nn

from bench.models.build import prepare_model
from bench.models.train import training_numerics, weights_digest
from bench.models.zoo import build_model

_STEPS = 2
_BATCH = 64


@cache
def _fingerprint(device_type: str, device_index: int | None) -> str:
    device = torch.device(device_type, device_index)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(_BATCH, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (_BATCH,), generator=gen).to(device)
    # fork_rng: the caller's global generator state is not touched by the seeding below
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), training_numerics():
        torch.manual_seed(0)
        model = build_model("cnn-small", "softplus:10", 3, 10, 32).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(_STEPS):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        # explanation's kernels too: the input gradient of the prepared (eval, channels_last) model
        model = prepare_model(model, device)
        xg = x.clone().requires_grad_(True)
        model(xg).gather(1, y[:, None]).sum().backward()
    state = model.state_dict() | {"input_gradient": xg.grad}
    return weights_digest(state)[:12]


def numerics_fingerprint(device: torch.device | str = "cpu") -> str:
    """12 hex digits naming the kernels ``device`` computes with (computed once per process and device)."""
    device = torch.device(device)
    return _fingerprint(device.type, device.index)
