"""2×2 max-pooling that takes torch's fast CPU kernel and gives nn.MaxPool2d's bits.

On CPU, torch's NCHW max-pooling kernel is ~13× slower than its channels_last one (256×32×28×28
forward: 17.8 ms against 1.3 ms on the 2-core Xeon, pinned to AVX2); in cnn-small it was 26% of a
training step and half of an inference pass. A whole channels_last network would be faster still,
but oneDNN's convolutions add in another order in that layout (other weights, other maps: every
published number would move). Max-pooling only selects, so its result does not depend on the
layout: :class:`MaxPool2x2` pools a channels_last copy and hands back an ordinary contiguous tensor,
and its backward routes the gradient with the ordinary NCHW kernel from the same argmax indices
(an index is the position in its H×W plane whatever the layout). Measured on cnn-small (256 images):
forward 24 → 13 ms, forward+backward 52 → 44 ms, bit-identical outputs, input gradients and weight
gradients (tests/test_pool.py). A pass that no gradient flows back through (accuracy checks, the
metrics' perturbed forwards) needs no indices: there the maxima are two ``torch.maximum`` calls
over strided views, in the input's layout: 1.5–3× faster than pooling with indices (and, for
an NCHW input, its channels_last copy).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class _ChannelsLastMaxPool(torch.autograd.Function):
    @staticmethod
    def forward(x: Tensor, k: int) -> tuple[Tensor, Tensor]:
        if x.is_contiguous(memory_format=torch.channels_last):  # (vmap of a prepared model) as torch pools it
            return torch.ops.aten.max_pool2d_with_indices(x, [k, k], [k, k])
        out, idx = torch.ops.aten.max_pool2d_with_indices(x.contiguous(memory_format=torch.channels_last),
                                                          [k, k], [k, k])
        # The indices stay channels_last: an inference pass never reads them, and the backward
        # kernel lays them out as it needs (copying the int64 indices, twice the values' bytes,
        # was a third of an accuracy pass's copies).
        return out.contiguous(), idx

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, k = inputs
        ctx.save_for_backward(x, output[1])
        ctx.mark_non_differentiable(output[1])
        # Else autograd fills a zero int64 "gradient" of the indices for every backward: an output-sized
        # fill, 3% of a training step of cnn-small.
        ctx.set_materialize_grads(False)
        ctx.k = k

    @staticmethod
    def vmap(info, in_dims, x: Tensor, k: int) -> tuple[tuple[Tensor, Tensor], tuple[int | None, int | None]]:
        """Under ``torch.func.vmap`` (NoiseGrad's stacked models): pool the batch of batches as one."""
        if in_dims[0] is None:
            return _ChannelsLastMaxPool.apply(x, k), (None, None)
        xb = x.movedim(in_dims[0], 0)
        out, idx = _ChannelsLastMaxPool.apply(xb.flatten(0, 1), k)
        return (out.unflatten(0, xb.shape[:2]), idx.unflatten(0, xb.shape[:2])), (0, 0)

    @staticmethod
    def backward(ctx, grad: Tensor, _grad_idx: None) -> tuple[Tensor, None]:
        # grad is never None: the indices are non-differentiable, so only the values lead here
        x, idx = ctx.saved_tensors
        k = ctx.k
        return torch.ops.aten.max_pool2d_with_indices_backward(grad, x, [k, k], [k, k], [0, 0],
                                                               [1, 1], False, idx), None


class MaxPool2x2(nn.MaxPool2d):
    """``nn.MaxPool2d(2)`` (same module type, same state, same bits), pooled through the channels_last
    kernel on contiguous CPU tensors; on a channels_last input (prepare_model's layout) or another
    device it is nn.MaxPool2d itself; on the CPU with no gradient to route, element-wise maxima. Its
    backward is made of differentiable aten ops, so second derivatives work as through nn.MaxPool2d."""

    def __init__(self) -> None:
        super().__init__(2)

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu" or x.dim() != 4:
            return super().forward(x)
        if not (torch.is_grad_enabled() and x.requires_grad) and min(x.shape[-2:]) >= 2:
            return _max_of_windows(x)
        if x.is_contiguous(memory_format=torch.channels_last):  # torch's fast kernel already, and its autograd
            return super().forward(x)
        return _ChannelsLastMaxPool.apply(x, 2)[0]


def _max_of_windows(x: Tensor) -> Tensor:
    """The 2×2 maxima as two element-wise maxima (row pairs, then column pairs), in the input's layout,
    for a pass no gradient flows back through (no indices needed). A maximum is exact, so the values
    are max-pooling's; NaN wins its window as there. Only a zero maximum whose window mixes +0 and −0
    may come out with the other sign (−0 reaches a pool only from a convolution whose whole sum is −0),
    and a signed zero changes no sum that has a nonzero term, so logits and accuracies keep their bits.
    64×16×28×28: 0.7 ms against 2.1 ms for the channels_last copy and pool."""
    x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]  # floor mode: a last odd row/column is dropped
    rows = torch.maximum(x[..., 0::2, :], x[..., 1::2, :])
    return torch.maximum(rows[..., 0::2], rows[..., 1::2])
