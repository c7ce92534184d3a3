"""Split factor (Choi & Farnia): disjoint, stratified 1/sf subsets of a training set.

Each class's indices are shuffled by ``split_seed`` (independent of the model seed, so the two
members of a pair share one partition) and dealt into ``sf`` equal parts; the at most sf−1
images per class left over are used by no part, so every part holds exactly the same number of
images of each class. ``sf=1`` is the whole set, in its original order.
"""

from __future__ import annotations

import torch
from torch import Tensor

SPLIT_FACTORS = (1, 2, 4, 8, 16)


def split_indices(labels: Tensor, split_factor: int, split_index: int, split_seed: int = 0) -> Tensor:
    """Sorted indices into ``labels`` of part ``split_index`` of ``split_factor`` disjoint parts."""
    if split_factor not in SPLIT_FACTORS:
        raise ValueError(f"split_factor must be one of {SPLIT_FACTORS}, got {split_factor}")
    if not 0 <= split_index < split_factor:
        raise ValueError(f"split_index must be in 0..{split_factor - 1} for split_factor {split_factor}, "
                         f"got {split_index}")
    if split_factor == 1:
        return torch.arange(len(labels))
    g = torch.Generator().manual_seed(split_seed)
    parts = []
    for c in torch.unique(labels).tolist():  # sorted: the partition depends on the seed alone
        idx = (labels == c).nonzero().flatten()
        per_part = len(idx) // split_factor
        if per_part == 0:
            raise ValueError(f"class {c} has {len(idx)} training images, fewer than split_factor {split_factor}; "
                             "use a smaller split_factor or more training data")
        idx = idx[torch.randperm(len(idx), generator=g)]
        parts.append(idx[split_index * per_part:(split_index + 1) * per_part])
    return torch.cat(parts).sort().values
