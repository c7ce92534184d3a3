"""Real image datasets: MNIST, CIFAR-10/100 (torchvision) and ImageFolder trees
(TinyImageNet, Caltech-256, Imagenette, ImageNet, any ``imagefolder``).

Files are looked for under ``data_root`` (a dataset parameter), else ``$GRADBENCH_DATA`` (what
``bench run/train --data-root`` sets), else ``~/.cache/gradbench/data``. Nothing is fetched unless
asked (``download = true`` where torchvision can); a missing dataset fails with one line naming the
folder looked in and how to fetch it.

Every loader returns the in-memory :class:`ImageDataset` in its normalised input space, with the
mean/std of the dataset (ImageNet's for the ImageFolder sets), so ``[x_min, x_max]`` is the image
of ``[0, 1]`` pixels. ImageFolder sets are decoded once into memory: each image's shorter side is
resized to ``image_size`` and centre-cropped, and at most ``*_per_class`` images per class are
read (float32 costs 12·S² bytes an image: 100k TinyImageNet images at 64² are 4.9 GB). The
decoded uint8 pixels are cached under ``$GRADBENCH_CACHE/data``, keyed by the files and the size.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.data.base import ImageDataset, normalise
from bench.errors import GradBenchError
from bench.registry import datasets

DATA_ENV = "GRADBENCH_DATA"
# Where the files lie, not what they are: left out of a recipe's hash (bench.models.train).
LOCATION_PARAMS = frozenset({"data_root", "download"})
IMAGENETTE_URL = "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-320.tgz"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DatasetUnavailableError(GradBenchError):
    pass


def resolve_root(data_root: str | None) -> Path:
    root = data_root or os.environ.get(DATA_ENV) or Path.home() / ".cache" / "gradbench" / "data"
    return Path(root).expanduser()


def _missing(name: str, where: Path, how: str) -> DatasetUnavailableError:
    return DatasetUnavailableError(f"{name}: no data under {where}; {how} (or point --data-root / "
                                   f"${DATA_ENV} at the folder that holds it)")


def _resize(x01: Tensor, image_size: int | None) -> Tensor:
    if image_size is None or image_size == x01.shape[-1]:
        return x01
    return F.interpolate(x01, size=image_size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


# -- torchvision: in-memory arrays ---------------------------------------------------------------

def _torchvision(name: str, cls_name: str, mean: tuple[float, ...], std: tuple[float, ...], num_classes: int,
                 data_root: str | None, download: bool, image_size: int | None, n_train: int | None,
                 n_test: int | None) -> ImageDataset:
    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    root = resolve_root(data_root)
    splits = []
    for train, n in ((True, n_train), (False, n_test)):
        try:
            ds = cls(str(root), train=train, download=download)
        except (RuntimeError, OSError) as e:  # not found; or (download = true) no network
            cause = " ".join(str(e).split())[:80]
            how = (f"download failed ({type(e).__name__}: {cause}); fetch torchvision.datasets.{cls_name} "
                   "on a machine with network" if download else
                   f"fetch it with dataset params {{ download = true }} (torchvision.datasets.{cls_name})")
            raise _missing(name, root, how) from None
        data = torch.as_tensor(ds.data)
        x = data[:, None] if data.ndim == 3 else data.permute(0, 3, 1, 2)  # MNIST N×H×W; CIFAR N×H×W×C
        y = torch.as_tensor(ds.targets, dtype=torch.long)
        x, y = x[:n], y[:n]  # the first n: reproducible, and the files' order is already shuffled
        splits.append((normalise(_resize(x.float() / 255, image_size), mean, std), y))
    (x_tr, y_tr), (x_te, y_te) = splits
    return ImageDataset(name, x_tr, y_tr, x_te, y_te, num_classes, mean, std,
                        class_names=tuple(getattr(ds, "classes", ())))


def _register_torchvision(name: str, cls_name: str, mean: tuple[float, ...], std: tuple[float, ...],
                          num_classes: int, citation: str) -> None:
    def factory(data_root: str | None = None, download: bool = False, image_size: int | None = None,
                n_train: int | None = None, n_test: int | None = None) -> ImageDataset:
        return _torchvision(name, cls_name, mean, std, num_classes, data_root, download, image_size,
                            n_train, n_test)

    factory.__doc__ = f"torchvision {cls_name}, mean {mean}, std {std}; first n_train/n_test images."
    datasets.register(name, citation=citation)(factory)


_register_torchvision("mnist", "MNIST", (0.1307,), (0.3081,), 10, "LeCun et al., MNIST (1998)")
_register_torchvision("cifar10", "CIFAR10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 10,
                      "Krizhevsky, Learning Multiple Layers of Features from Tiny Images (2009)")
_register_torchvision("cifar100", "CIFAR100", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 100,
                      "Krizhevsky, Learning Multiple Layers of Features from Tiny Images (2009)")


# -- ImageFolder trees: decoded, resized, bounded ------------------------------------------------

def _decode(path: str, image_size: int) -> Tensor:
    from PIL import Image
    from torchvision.transforms import functional as TF

    with Image.open(path) as im:
        im = TF.resize(im.convert("RGB"), image_size, antialias=True)  # shorter side
        return TF.pil_to_tensor(TF.center_crop(im, image_size))


def data_cache_dir() -> Path:
    """Where decoded uint8 pixels are cached: ``$GRADBENCH_CACHE/data`` (default ``~/.cache/gradbench/data``)."""
    return Path(os.environ.get("GRADBENCH_CACHE") or Path.home() / ".cache" / "gradbench") / "data"


def _decoded_cache(samples: Sequence[tuple[str, int]], image_size: int) -> Path:
    # Keyed by the exact files (path, size, mtime) and image size: a changed tree is a new key, never a stale hit.
    files = [(os.fspath(p), c, os.stat(p).st_size, os.stat(p).st_mtime_ns) for p, c in samples]
    key = hashlib.sha256(json.dumps([image_size, files]).encode()).hexdigest()
    return data_cache_dir() / f"{key[:24]}.pt"


def _read(samples: Sequence[tuple[str, int]], image_size: int) -> tuple[Tensor, Tensor]:
    """Decode (once: the uint8 pixels are cached on disk) → images in [0, 1] and labels."""
    if not samples:
        return torch.zeros(0, 3, image_size, image_size), torch.zeros(0, dtype=torch.long)
    cached = _decoded_cache(samples, image_size)
    if cached.exists():
        pixels = torch.load(cached, weights_only=True)
    else:
        with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:  # PIL decodes without the GIL
            pixels = torch.stack(list(pool.map(lambda s: _decode(s[0], image_size), samples)))
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        torch.save(pixels, tmp)
        os.replace(tmp, cached)
    return pixels.float() / 255, torch.tensor([c for _, c in samples], dtype=torch.long)


def _cap(samples: Sequence[tuple[str, int]], per_class: int | None) -> list[tuple[str, int]]:
    """The first ``per_class`` files of each class, in sorted file order (reproducible)."""
    if per_class is None:
        return list(samples)
    seen: dict[int, int] = {}
    out = []
    for path, c in samples:
        if seen.get(c, 0) < per_class:
            out.append((path, c))
            seen[c] = seen.get(c, 0) + 1
    return out


def _folder_samples(folder: Path, class_to_idx: dict[str, int] | None = None
                    ) -> tuple[list[tuple[str, int]], dict[str, int]]:
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    if class_to_idx is None:
        _, class_to_idx = find_classes(str(folder))
    return make_dataset(str(folder), class_to_idx, extensions=IMG_EXTENSIONS), class_to_idx


def _assemble(name: str, train: list[tuple[str, int]], test: list[tuple[str, int]], classes: dict[str, int],
              image_size: int, mean: tuple[float, ...] = IMAGENET_MEAN,
              std: tuple[float, ...] = IMAGENET_STD) -> ImageDataset:
    (x_tr, y_tr), (x_te, y_te) = _read(train, image_size), _read(test, image_size)
    names = tuple(sorted(classes, key=classes.get))
    return ImageDataset(name, normalise(x_tr, mean, std), y_tr, normalise(x_te, mean, std), y_te,
                        len(classes), mean, std, class_names=names)


def _first_existing(root: Path, names: Sequence[str]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def _train_val(name: str, base: Path, image_size: int, train_per_class: int | None,
               test_per_class: int | None) -> ImageDataset:
    test_dir = _first_existing(base, ("val", "test"))
    if not (base / "train").is_dir() or test_dir is None:
        raise _missing(name, base, "it needs train/<class>/* and val/<class>/* (or test/) image folders")
    train, classes = _folder_samples(base / "train")
    test, _ = _folder_samples(test_dir, classes)
    return _assemble(name, _cap(train, train_per_class), _cap(test, test_per_class), classes, image_size)


@datasets.register("imagefolder", citation="")
def imagefolder(root: str, image_size: int = 224, train_per_class: int | None = None,
                test_per_class: int | None = None) -> ImageDataset:
    """Any ``root/train/<class>/*`` + ``root/val|test/<class>/*`` tree, ImageNet normalisation."""
    return _train_val("imagefolder", Path(root).expanduser(), image_size, train_per_class, test_per_class)


@datasets.register("imagenette", citation="Howard, Imagenette (fast.ai, 2019)")
def imagenette(data_root: str | None = None, download: bool = False, image_size: int = 160,
               train_per_class: int | None = None, test_per_class: int | None = None) -> ImageDataset:
    """Imagenette (10 ImageNet classes), from ``imagenette2-320`` (or -160, full) under the root."""
    root = resolve_root(data_root)
    if download:
        from torchvision.datasets import Imagenette

        try:
            Imagenette(str(root), split="train", size="320px", download=True)
        except OSError as e:
            how = f"download failed ({type(e).__name__}); fetch {IMAGENETTE_URL}"
            raise _missing("imagenette", root, how) from None
    base = _first_existing(root, ("imagenette2-320", "imagenette2-160", "imagenette2", "imagenette"))
    if base is None:
        raise _missing("imagenette", root / "imagenette2-320", "fetch it with dataset params { download = true }")
    return _train_val("imagenette", base, image_size, train_per_class, test_per_class)


@datasets.register("imagenet", citation="Russakovsky et al., ImageNet Large Scale Visual Recognition Challenge (2015)")
def imagenet(data_root: str | None = None, image_size: int = 224, train_per_class: int | None = 10,
             test_per_class: int | None = 5) -> ImageDataset:
    """ImageNet-1k from ``imagenet/train|val/<wnid>/*`` (val sorted into class folders); 10 + 5 per class."""
    root = resolve_root(data_root)
    base = root / "imagenet"
    if not (base / "train").is_dir():
        raise _missing("imagenet", base, "ImageNet cannot be downloaded automatically: get ILSVRC2012 from "
                                         "image-net.org and sort val into class folders "
                                         "(torchvision.datasets.ImageNet does both from the tarballs)")
    return _train_val("imagenet", base, image_size, train_per_class, test_per_class)


@datasets.register("tinyimagenet", citation="Le & Yang, Tiny ImageNet Visual Recognition Challenge (2015)")
def tinyimagenet(data_root: str | None = None, image_size: int = 64, train_per_class: int | None = None,
                 test_per_class: int | None = None) -> ImageDataset:
    """TinyImageNet-200 (64×64) from ``tiny-imagenet-200``; its val split is the test set."""
    base = resolve_root(data_root) / "tiny-imagenet-200"
    if not (base / "train").is_dir() or not (base / "val").is_dir():
        raise _missing("tinyimagenet", base, "fetch http://cs231n.stanford.edu/tiny-imagenet-200.zip and unzip it "
                                             "there")
    train, classes = _folder_samples(base / "train")  # train/<wnid>/images/*.JPEG
    annotations = base / "val" / "val_annotations.txt"
    if annotations.exists():  # the official layout: val/images/* with a file → wnid table
        rows = [line.split("\t")[:2] for line in annotations.read_text().splitlines() if line.strip()]
        test = sorted((str(base / "val" / "images" / f), classes[w]) for f, w in rows)
    else:  # val already sorted into class folders
        test, _ = _folder_samples(base / "val", classes)
    return _assemble("tinyimagenet", _cap(train, train_per_class), _cap(test, test_per_class), classes, image_size)


@datasets.register("caltech256", citation="Griffin, Holub & Perona, Caltech-256 Object Category Dataset (2007)")
def caltech256(data_root: str | None = None, download: bool = False, image_size: int = 128,
               per_class: int | None = None, test_fraction: float = 0.2, seed: int = 0,
               clutter: bool = False) -> ImageDataset:
    """Caltech-256 from ``caltech256/256_ObjectCategories``; a seeded stratified train/test split.

    256 object classes; ``clutter=true`` keeps the 257th (background) class. Caltech-256 has no
    official split: ``test_fraction`` of each class (of its first ``per_class`` images) is the test set.
    """
    root = resolve_root(data_root)
    if download:
        from torchvision.datasets import Caltech256

        try:
            Caltech256(str(root), download=True)
        except (OSError, RuntimeError) as e:
            raise _missing("caltech256", root, f"download failed ({type(e).__name__}); fetch "
                                               "256_ObjectCategories.tar from data.caltech.edu") from None
    base = _first_existing(root, ("caltech256/256_ObjectCategories", "256_ObjectCategories"))
    if base is None:
        raise _missing("caltech256", root / "caltech256" / "256_ObjectCategories",
                       "fetch it with dataset params { download = true }")
    from torchvision.datasets.folder import find_classes

    names, _ = find_classes(str(base))
    classes = {c: i for i, c in enumerate(n for n in names if clutter or not n.startswith("257."))}
    samples = _cap(_folder_samples(base, classes)[0], per_class)
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in range(len(classes)):
        own = [s for s in samples if s[1] == c]
        order = torch.randperm(len(own), generator=g).tolist()
        n_test = round(len(own) * test_fraction)
        test += [own[i] for i in sorted(order[:n_test])]
        train += [own[i] for i in sorted(order[n_test:])]
    return _assemble("caltech256", train, test, classes, image_size)
