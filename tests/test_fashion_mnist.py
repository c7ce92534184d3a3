"""Fashion-MNIST's IDX loader: on IDX files the tests write themselves (decoder, digest, every error
path), and on a slice of the real files where Debian's dataset-fashion-mnist is installed."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.data import idx
from bench.data.vision import DATA_ENV
from bench.registry import datasets

REAL = idx.DEBIAN_DIR


def idx_bytes(a: np.ndarray) -> bytes:
    return struct.pack(">HBB", 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.astype(np.uint8).tobytes()


def fake_arrays(n_train: int = 30, n_test: int = 10) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "train_labels": np.arange(n_train, dtype=np.uint8) % 10,
            "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "test_labels": np.arange(n_test, dtype=np.uint8) % 10}


def write_set(folder: Path, arrays: dict[str, np.ndarray], gz: bool = True) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, a in arrays.items():
        path = folder / (idx.FILES[key] + (".gz" if gz else ""))
        data = idx_bytes(a)
        path.write_bytes(gzip.compress(data) if gz else data)
        paths[key] = path
    return paths


@pytest.fixture
def no_debian(monkeypatch, tmp_path):
    """Only the files a test writes are found; the cache is the test's own (to see nothing is written)."""
    monkeypatch.setattr(idx, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setenv("GRADBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def digests(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    return {k: idx.array_digest(a) for k, a in arrays.items()}


@pytest.mark.parametrize("gz", [True, False])
def test_decoder_reads_back_what_was_written(tmp_path, gz):
    arrays = fake_arrays()
    paths = write_set(tmp_path, arrays, gz=gz)
    for key, path in paths.items():
        assert np.array_equal(idx.read_idx(path), arrays[key])


def test_digest_is_of_the_decoded_content_not_the_compression(tmp_path):
    arrays = fake_arrays()
    a = write_set(tmp_path / "gz", arrays, gz=True)["train_images"]
    b = write_set(tmp_path / "raw", arrays, gz=False)["train_images"]
    assert a.read_bytes() != b.read_bytes()
    assert idx.array_digest(idx.read_idx(a)) == idx.array_digest(idx.read_idx(b))
    flipped = arrays["train_images"].copy()
    flipped[0, 0, 0] ^= 1
    assert idx.array_digest(flipped) != idx.array_digest(arrays["train_images"])


def test_the_factory_finds_data_root_first_then_torchvision_layout(no_debian, tmp_path, monkeypatch):
    arrays = fake_arrays()
    write_set(tmp_path / "root" / "FashionMNIST" / "raw", arrays)  # torchvision's layout under the root
    monkeypatch.setitem(datasets.get("fashion-mnist").meta, "sha256", digests(arrays))
    d = idx.fashion_mnist(data_root=str(tmp_path / "root"))
    assert d.x_train.shape == (30, 1, 28, 28) and d.x_test.shape == (10, 1, 28, 28)
    # the test set in file order, normalised with Fashion-MNIST's mean/std
    expected = (torch.from_numpy(arrays["test_images"]).float() / 255 - 0.2860) / 0.3530
    assert torch.allclose(d.x_test[:, 0], expected) and d.y_test.tolist() == arrays["test_labels"].tolist()
    # the training set: a fixed seeded order of the same images (the held-out tail is a seeded sample)
    assert sorted(d.y_train.tolist()) == sorted(arrays["train_labels"].tolist())
    assert torch.equal(d.x_train, idx.fashion_mnist(data_root=str(tmp_path / "root")).x_train)
    assert list(no_debian.glob("data/fashion-mnist-*.pt")), "decoded once into the cache"
    other = fake_arrays(n_train=20)
    write_set(tmp_path / "env", other)
    monkeypatch.setitem(datasets.get("fashion-mnist").meta, "sha256", digests(other))
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "env"))
    assert len(idx.fashion_mnist().x_train) == 20  # $GRADBENCH_DATA, the folder itself


def test_debian_folder_is_the_last_place_looked(no_debian, tmp_path, monkeypatch):
    monkeypatch.setattr(idx, "DEBIAN_DIR", tmp_path / "debian")
    write_set(tmp_path / "debian", fake_arrays())
    assert idx.locate(str(tmp_path / "empty"))["train_images"].parent == tmp_path / "debian"
    assert idx.candidate_folders(str(tmp_path / "r"))[-1] == tmp_path / "debian"


def one_line_error(fn, *args) -> str:
    with pytest.raises(idx.IdxError) as e:
        fn(*args)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_absent_data_names_the_package_and_data_root(no_debian, tmp_path):
    msg = one_line_error(idx.fashion_mnist, str(tmp_path / "nothing-here"))
    assert "apt-get install dataset-fashion-mnist" in msg and "--data-root" in msg
    assert not no_debian.exists()


def test_a_changed_file_fails_its_digest_naming_the_file(no_debian, tmp_path, monkeypatch):
    arrays = fake_arrays()
    monkeypatch.setitem(datasets.get("fashion-mnist").meta, "sha256", digests(arrays))
    changed = {**arrays, "test_labels": (arrays["test_labels"] + 1) % 10}
    write_set(tmp_path / "root", changed)
    msg = one_line_error(idx.fashion_mnist, str(tmp_path / "root"))
    assert "t10k-labels-idx1-ubyte.gz" in msg and "sha256" in msg
    assert not no_debian.exists()


@pytest.mark.parametrize("damage, words", [
    (lambda b: b[:-100], "truncated"),
    (lambda b: b[:6], "truncated"),
    (lambda b: b + b"\0", "longer than its header"),
    (lambda b: b"\x00\x00\x0d\x03" + b[4:], "magic number"),
    (lambda b: b"\x01\x00\x08\x03" + b[4:], "magic number"),
])
def test_a_damaged_file_is_one_line_naming_it_and_nothing_is_written(no_debian, tmp_path, damage, words):
    paths = write_set(tmp_path / "root", fake_arrays(), gz=False)
    path = paths["train_images"]
    path.write_bytes(damage(path.read_bytes()))
    msg = one_line_error(idx.fashion_mnist, str(tmp_path / "root"))
    assert str(path) in msg and words in msg
    assert not no_debian.exists()


def test_label_and_image_counts_must_agree(no_debian, tmp_path):
    arrays = {**fake_arrays(), "train_labels": np.zeros(29, dtype=np.uint8)}
    write_set(tmp_path / "root", arrays)
    msg = one_line_error(idx.fashion_mnist, str(tmp_path / "root"))
    assert "train-labels-idx1-ubyte.gz" in msg and "agree" in msg
    assert not no_debian.exists()


@pytest.mark.skipif(not (REAL / "train-images-idx3-ubyte.gz").exists(),
                    reason=f"Fashion-MNIST not installed under {REAL} (apt-get install dataset-fashion-mnist)")
def test_the_real_files_decode_to_the_pinned_digests_and_match_torchvision(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("GRADBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(DATA_ENV, raising=False)
    d = idx.fashion_mnist(data_root=str(tmp_path / "empty"), n_train=500, n_test=200)
    assert d.x_train.shape == (500, 1, 28, 28) and d.x_test.shape == (200, 1, 28, 28) and d.num_classes == 10
    assert float(d.x_test.min()) >= float(d.x_min) and float(d.x_test.max()) <= float(d.x_max) + 1e-6
    # An independent decoder: torchvision's own FashionMNIST on the gunzipped files (its raw layout).
    raw = tmp_path / "tv" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in idx.FILES.values():
        (raw / stem).write_bytes(gzip.decompress((REAL / f"{stem}.gz").read_bytes()))
    tv = torchvision.datasets.FashionMNIST(str(tmp_path / "tv"), train=False, download=False)
    assert torch.equal(d.y_test, tv.targets[:200])
    assert torch.allclose(d.x_test[:, 0], (tv.data[:200].float() / 255 - 0.2860) / 0.3530)
    assert np.bincount(tv.targets.numpy()).tolist() == [1000] * 10
