"""How a job's per-sample values become the job's value: the one definition the runner, the
board's bootstrap and the claims share (NumPy only: the board does not load torch).

A metric declares its kind (``register_metric(..., aggregate=...)``):
- ``mean``: the mean of the per-sample values (most metrics);
- ``abs_mean``: |mean| of signed per-sample values, a difference of means (ΔEF: the per-sample
  values are the signed per-image differences, so the job value is |mean EF(M) − mean EF(∇f)| and
  each bootstrap resample takes |mean| of resampled differences);
- ``reported``: the metric computes the job value itself from more than the per-sample values
  (PIC's AUC of the median curve) and reports it with ``ctx.report``; the per-sample values only
  carry the spread: the CI is the bootstrap of their mean, re-centred on the reported value.
"""

from __future__ import annotations

import numpy as np

AGGREGATES = ("mean", "abs_mean", "reported")


def aggregate_values(kind: str, values: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """The statistic of ``kind`` over the last axis of ``values`` (only where ``valid``, if given).

    For ``reported`` this is the mean: the centre its CI is re-centred from."""
    if kind not in AGGREGATES:
        raise ValueError(f"aggregate '{kind}': use one of {AGGREGATES}")
    values = np.asarray(values, dtype=np.float64)
    if valid is None:
        mean = values.mean(axis=-1)
    else:  # the same expression the board has always used: published CIs do not move for "mean"
        mean = (values * valid).sum(-1) / valid.sum(-1)
    return np.abs(mean) if kind == "abs_mean" else mean
