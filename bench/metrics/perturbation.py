"""Shared pieces of the perturbation metrics: batched scoring and Quantus' baseline values."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def target_scores(model: nn.Module, x: Tensor, target: Tensor, softmax: bool, chunk_size: int) -> Tensor:
    """f_t(x) (or softmax(f(x))_t, as Quantus' ``softmax=True``) for every row, under inference mode."""
    out = torch.empty(len(x), dtype=torch.float32, device=x.device)
    with torch.inference_mode():
        for s in range(0, len(x), chunk_size):
            logits = model(x[s : s + chunk_size])
            if softmax:
                logits = logits.softmax(dim=1)
            out[s : s + chunk_size] = logits.gather(1, target[s : s + chunk_size, None]).squeeze(1)
    return out


def baseline_value(x: Tensor, baseline: str | float) -> Tensor:
    """Per-sample fill value ``B×1`` of Quantus' ``perturb_baseline`` for flattened ``B×F`` inputs.

    "black" / "white" are the sample's min / max over all its features (Quantus aggregates over
    every axis but the batch axis); a number is used as it is.
    """
    if isinstance(baseline, int | float):
        return torch.full((len(x), 1), float(baseline), dtype=x.dtype, device=x.device)
    if baseline == "black":
        return x.amin(dim=1, keepdim=True)
    if baseline == "white":
        return x.amax(dim=1, keepdim=True)
    raise ValueError(f"perturb_baseline must be 'black', 'white' or a number, got {baseline!r}")


def rows_per_call(batch: int, chunk_size: int | None) -> int:
    """How many perturbation steps of a ``batch``-row input fit in one forward of ``chunk_size`` rows."""
    return max(1, (chunk_size or 256) // max(batch, 1))
