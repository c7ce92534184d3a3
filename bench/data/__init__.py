"""Datasets: each registered factory returns an :class:`ImageDataset`."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from bench.data import digits, idx, synthetic, vision  # noqa: F401  (registration)
from bench.data.base import ImageDataset
from bench.registry import datasets


def load_dataset(name: str, **params: Any) -> ImageDataset:
    return _load(name, json.dumps(params, sort_keys=True))


@lru_cache(maxsize=8)
def _load(name: str, params_json: str) -> ImageDataset:
    return datasets.create(name, **json.loads(params_json))


__all__ = ["ImageDataset", "load_dataset"]
