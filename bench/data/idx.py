"""Fashion-MNIST from its original IDX files, decoded here and pinned by a digest of the decoded arrays.

The files are looked for in this order: ``data_root`` (``--data-root`` / ``$GRADBENCH_DATA``), then
torchvision's layout under that root or the default data folder (``<root>/FashionMNIST/raw``, so a
machine with network can fetch them with torchvision's own download), then Debian's package
``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``). Each of the four files may be
gzipped or not. Debian recompressed the ``.gz`` files, so their md5s differ from torchvision's table:
what is pinned (``registry/datasets.toml``, ``sha256``) is the sha256 of each decoded array, which is
the same whichever compression carried it.

IDX (LeCun's format): a 4-byte big-endian magic ``0x0000 08 D`` (type ``0x08`` = uint8, ``D`` the
number of dimensions), D big-endian uint32 sizes, then the data row-major. A wrong magic, a file
shorter or longer than its header says, and image/label counts that disagree each fail in one line
naming the file; nothing is cached until all four files pass.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import torch

from bench.data.base import ImageDataset, normalise
from bench.data.vision import DatasetUnavailableError, data_cache_dir, resolve_root
from bench.registry import datasets

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
         "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
IDX_UINT8 = 0x08
FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
# The held-out tail the accuracy cap is checked on is the last 10% of the training set: the training
# images are put in one fixed, seeded order first, so that tail is a seeded random sample of the 60,000.
TRAIN_ORDER_SEED = 0


class IdxError(DatasetUnavailableError):
    """Fashion-MNIST's files absent or not the original: one line naming the file and the fix."""


def read_idx(path: Path) -> np.ndarray:
    """The uint8 array of an IDX file (gzipped or not); one-line errors name the file."""
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4:
        raise IdxError(f"{path}: {len(raw)} bytes, too short for an IDX header; the file is truncated, "
                       "reinstall it (apt-get install --reinstall dataset-fashion-mnist)")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != IDX_UINT8 or ndim not in (1, 3):
        raise IdxError(f"{path}: magic number 0x{raw[:4].hex()} is not an IDX uint8 file of 1 or 3 dimensions "
                       "(0x00000801 labels, 0x00000803 images); is it the right file?")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxError(f"{path}: truncated inside its header ({len(raw)} bytes); reinstall the file")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise IdxError(f"{path}: {what}: {len(raw)} bytes, its header {tuple(shape)} needs {expected}; "
                       "reinstall the file")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def array_digest(a: np.ndarray) -> str:
    """sha256 of the decoded array: its shape, then its bytes (row-major uint8)."""
    h = hashlib.sha256(repr(tuple(a.shape)).encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _find(folder: Path, stem: str) -> Path | None:
    return next((folder / f"{stem}{ext}" for ext in ("", ".gz") if (folder / f"{stem}{ext}").is_file()), None)


def candidate_folders(data_root: str | None) -> list[Path]:
    """Where the files are looked for, in order (see the module docstring)."""
    root = resolve_root(data_root)  # --data-root / $GRADBENCH_DATA, else ~/.cache/gradbench/data
    return [root, root / "FashionMNIST" / "raw", DEBIAN_DIR]


def locate(data_root: str | None) -> dict[str, Path]:
    """The four files, from the first folder that holds all of them."""
    folders = candidate_folders(data_root)
    for folder in folders:
        found = {key: _find(folder, stem) for key, stem in FILES.items()}
        if all(found.values()):
            return found  # type: ignore[return-value]
    looked = ", ".join(str(f) for f in folders)
    raise IdxError(f"fashion-mnist: its four IDX files are in none of {looked}; install them with "
                   "`apt-get install dataset-fashion-mnist`, or point --data-root / $GRADBENCH_DATA at the "
                   "folder that holds them")


def decode(files: dict[str, Path], sha256: dict[str, str]) -> dict[str, np.ndarray]:
    """The four arrays, each checked against its pinned digest, counts checked across files."""
    arrays = {key: read_idx(path) for key, path in files.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise IdxError(f"{files[f'{split}_labels']}: {labels.shape} labels for {images.shape} images in "
                           f"{files[f'{split}_images']}; the counts must agree, reinstall the files")
    for key, a in arrays.items():
        want, got = sha256.get(key), array_digest(a)
        if want is not None and got != want:
            raise IdxError(f"{files[key]}: decoded content has sha256 {got[:16]}…, not the pinned "
                           f"{want[:16]}… (registry/datasets.toml); the file is not the original {FILES[key]}")
    return arrays


def _cache_path(files: dict[str, Path]) -> Path:
    stat = [(os.fspath(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files.values()]
    return data_cache_dir() / f"fashion-mnist-{hashlib.sha256(repr(stat).encode()).hexdigest()[:24]}.pt"


def load_arrays(data_root: str | None, sha256: dict[str, str]) -> dict[str, torch.Tensor]:
    """Decoded once (uint8, cached by the files' path/size/mtime), verified before it is cached."""
    files = locate(data_root)
    cached = _cache_path(files)
    if cached.exists():
        return torch.load(cached, weights_only=True)
    tensors = {k: torch.from_numpy(a.copy()) for k, a in decode(files, sha256).items()}
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    torch.save(tensors, tmp)
    os.replace(tmp, cached)
    return tensors


@datasets.register("fashion-mnist", citation="Xiao, Rasul & Vollgraf, Fashion-MNIST (2017)")
def fashion_mnist(data_root: str | None = None, n_train: int | None = None,
                  n_test: int | None = None) -> ImageDataset:
    """Fashion-MNIST, 1×28×28 native, mean 0.2860 std 0.3530; the training set in a fixed seeded order."""
    arrays = load_arrays(data_root, datasets.get("fashion-mnist").meta.get("sha256", {}))
    order = torch.randperm(len(arrays["train_labels"]), generator=torch.Generator().manual_seed(TRAIN_ORDER_SEED))
    order = order[:n_train]  # index only the images kept
    x_tr, y_tr = arrays["train_images"][order], arrays["train_labels"][order]
    x_te, y_te = arrays["test_images"][:n_test], arrays["test_labels"][:n_test]

    def prepare(images: torch.Tensor) -> torch.Tensor:
        return normalise(images[:, None].float() / 255, FASHION_MEAN, FASHION_STD)

    return ImageDataset("fashion-mnist", prepare(x_tr), y_tr.long(), prepare(x_te), y_te.long(), 10,
                        FASHION_MEAN, FASHION_STD, class_names=FASHION_CLASSES)
