"""Control methods: maps that owe nothing to the model, to see which metrics can tell them apart.

A metric that scores a model-independent map as well as a gradient map does not measure how the
model decides (Adebayo et al., Sanity Checks for Saliency Maps, NeurIPS 2018, compare saliency with
an edge detector for this reason; citations in registry/methods.toml). Both controls run through
``Method.__call__`` like every method, so their maps pass the same contract (shape, float32,
device, finite). Both declare what they are: ``random`` is stochastic (it draws from the
generator), neither is linear in the model's scores nor adds input noise, and neither smooths
another method (``fidelity`` is then 0 for them, as for the plain gradient: it is defined for
smoothing methods), so no metric needs their names. Both declare ``control`` too: the board shows
them as reference rows, never ranked, and ``random`` (``control="noise"``) is the bar every method
has to clear (``bench.board.references``).

- ``random``: uniform noise U[0, 1) of the input's shape, drawn from the job's generator, so a job
  is reproducible and a metric that replays the generator (split agreement, shared-noise
  stability) gets the same draws, as it would for SmoothGrad.
- ``sobel``: the Sobel gradient magnitude of each input channel, deterministic. Per channel, not
  of the channel mean: a gradient map is per channel too, so metrics that sum or compare channels
  treat both alike, and an edge between two colours of equal mean (red beside green in the
  normalised space) is an edge, where the channel mean would erase it. On one channel (digits)
  the two are the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.methods.base import CONTROL_NOISE, register_method


@register_method("random", stochastic=True, control=CONTROL_NOISE)
def random_map(model, x: Tensor, target: Tensor, *, x_range, generator, chunk_size) -> Tensor:
    """Control: uniform noise U[0, 1) of the input's shape from the job's generator; ignores the model."""
    return torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float32)


# scipy.ndimage.sobel's kernel: the derivative [-1, 0, 1] along one axis, smoothed by [1, 2, 1] along
# the other (correlation, not convolution: the sign is scipy's, and the magnitude does not see it).
_DERIVATIVE = torch.tensor([-1.0, 0.0, 1.0])
_SMOOTH = torch.tensor([1.0, 2.0, 1.0])
SOBEL_ROWS = torch.outer(_DERIVATIVE, _SMOOTH)  # d/d(row): scipy's axis=-2
SOBEL_COLS = torch.outer(_SMOOTH, _DERIVATIVE)  # d/d(column): scipy's axis=-1


def sobel_magnitude(x: Tensor) -> Tensor:
    """√(S_row² + S_col²) of every channel of ``B×C×H×W``, as ``np.hypot(ndimage.sobel(img, 0),
    ndimage.sobel(img, 1))`` per channel image. The border repeats the edge pixel: scipy's default
    ``mode='reflect'`` (d c b a | a b c d) pads a 3×3 kernel with the edge value itself."""
    b, c, h, w = x.shape
    kernels = torch.stack([SOBEL_ROWS, SOBEL_COLS]).to(x.device, x.dtype).unsqueeze(1)  # 2×1×3×3
    planes = F.pad(x.reshape(b * c, 1, h, w), (1, 1, 1, 1), mode="replicate")
    d = F.conv2d(planes, kernels)  # F.conv2d correlates, as scipy's correlate1d
    return torch.hypot(d[:, 0], d[:, 1]).reshape(b, c, h, w)


@register_method("sobel", control="edge")
def sobel(model, x: Tensor, target: Tensor, *, x_range, generator, chunk_size) -> Tensor:
    """Control: Sobel gradient magnitude of each input channel (an edge map); ignores the model."""
    with torch.no_grad():
        return sobel_magnitude(x.detach().float())
