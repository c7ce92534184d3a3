import torch

from bench.data import load_dataset
from bench.data.synthetic import CLASSES, generate_shapes


def test_shapes_is_deterministic_in_the_seed():
    a, b = generate_shapes(16, 32, seed=5), generate_shapes(16, 32, seed=5)
    for u, v in zip(a, b, strict=True):
        assert torch.equal(u, v)
    assert not torch.equal(generate_shapes(16, 32, seed=6)[0], a[0])


def test_shapes_dataset_contract():
    d = load_dataset("shapes", n_train=60, n_test=30, image_size=64)
    assert d.x_train.shape == (60, 3, 64, 64) and d.x_test.shape == (30, 3, 64, 64)
    assert d.masks_test.shape == (30, 1, 64, 64) and d.masks_test.dtype == torch.bool
    assert d.num_classes == len(CLASSES) >= 6
    assert torch.all(d.x_train >= d.x_min.view(1, -1, 1, 1)) and torch.all(d.x_train <= d.x_max.view(1, -1, 1, 1))
    # every object mask is non-empty and not the whole image
    area = d.masks_test.float().mean(dim=(1, 2, 3))
    assert torch.all(area > 0.02) and torch.all(area < 0.6)


def test_shapes_train_and_test_are_different_draws():
    d = load_dataset("shapes", n_train=20, n_test=20)
    assert not torch.equal(d.x_train, d.x_test)


def test_digits_is_real_data_at_32px():
    d = load_dataset("digits")
    assert d.x_train.shape[1:] == (1, 32, 32) and len(d.x_train) + len(d.x_test) == 1797
    assert d.num_classes == 10 and set(d.y_test.tolist()) == set(range(10))
    assert float(d.x_min[0]) == -1.0 and float(d.x_max[0]) == 1.0
