import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import GradBenchError
from bench.models import build_model
from bench.models.activations import functional_relu_calls, remaining, set_activation
from bench.models.build import trained_model as get_model
from bench.models.train import Recipe, TrainingError, cache_dir
from bench.models.zoo import ModelError, cnn_small, simple_cnn

X32 = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


# -- activation swap -----------------------------------------------------------------------------

@pytest.mark.parametrize("arch, params", [
    ("cnn-small", {}), ("mlp", {}), ("simple-cnn", {"depth": 6, "batchnorm": True, "skip": True}),
    ("resnet18-cifar", {}), ("resnet18", {}), ("timm:resnet10t", {}),
    # SiLU / GELU networks: no ReLU to begin with; replace = "all" swaps their activations too
    ("efficientnetv2_s", {"replace": "all"}), ("timm:efficientnetv2_rw_t", {"replace": "all"}),
    ("convnext_tiny", {"replace": "all"}),
])
def test_softplus_swap_leaves_no_relu_module_or_call(arch, params):
    model = build_model(arch, "softplus:5", 3, 10, 32, **params)
    assert remaining(model, (nn.ReLU,)) == []
    assert functional_relu_calls(model, X32) == []  # F.relu / torch.relu / Tensor.relu counted: none ran
    assert remaining(model, (nn.Softplus,))
    assert all(m.beta == 5 for m in model.modules() if isinstance(m, nn.Softplus))
    if params.get("replace") == "all":
        from timm.layers.activations import GELU as TimmGELU

        assert not remaining(model, (nn.SiLU, nn.GELU, TimmGELU))
    else:  # one Softplus per ReLU of the plain model
        plain = build_model(arch, "relu", 3, 10, 32, **params)
        assert len(remaining(model, (nn.Softplus,))) == len(remaining(plain, (nn.ReLU,)))


@pytest.mark.parametrize("arch", ["efficientnetv2_s", "convnext_tiny"])
def test_non_relu_activations_stay_unless_asked(arch):
    from timm.layers.activations import GELU as TimmGELU

    plain = build_model(arch, "relu", 3, 10, 32)  # nothing to swap: the network as timm builds it
    assert not remaining(plain, (nn.ReLU,)) and remaining(plain, (nn.SiLU, nn.GELU, TimmGELU))
    with pytest.raises(ModelError, match='has no ReLU module to replace with softplus:5; set params.replace = "all"'):
        build_model(arch, "softplus:5", 3, 10, 32)


def test_relu_calls_are_detected():
    assert functional_relu_calls(cnn_small(), X32)  # nn.ReLU calls F.relu: the check sees modules too

    class Functional(nn.Module):
        def forward(self, x):
            return F.relu(x).flatten(1) + x.relu().flatten(1)

    assert {"torch.nn.functional.relu", "Tensor.relu"} <= set(functional_relu_calls(Functional(), X32))
    assert F.relu is torch.nn.functional.relu  # restored


def test_set_activation_replace_option():
    with pytest.raises(ValueError, match="use 'relu'"):
        set_activation(cnn_small(), "softplus:1", replace="some")


# -- architectures -------------------------------------------------------------------------------

@pytest.mark.parametrize("depth", range(1, 9))
def test_simple_cnn_depths(depth):
    for bn, skip in [(False, False), (True, True)]:
        assert simple_cnn(3, 10, 32, depth=depth, batchnorm=bn, skip=skip)(X32).shape == (2, 10)
    with pytest.raises(ValueError, match="depth must be in 1..8"):
        simple_cnn(depth=9)


def test_resnet18_cifar_stem():
    m = build_model("resnet18-cifar", "relu", 1, 10, 32)
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1) and isinstance(m.maxpool, nn.Identity)
    assert m(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_vit_follows_the_dataset_image_size():
    m = build_model("timm:vit_tiny_patch16_224", "relu", 3, 7, 32)
    assert m(X32).shape == (2, 7)


def test_unknown_timm_name_suggests():
    with pytest.raises(ModelError, match="did you mean 'resnet18'"):
        build_model("timm:resnt18", "relu", 3, 10, 32)


def test_pretrained_offline_fails_with_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as e:
        build_model("timm:resnet10t", "relu", 3, 10, 32, pretrained=True)
    msg = str(e.value)
    assert "\n" not in msg and "resnet10t" in msg and "pretrained = false" in msg and "network" in msg


# -- training ------------------------------------------------------------------------------------

TINY = {"n_train": 300, "n_test": 40}


def tiny(**kw) -> Recipe:
    base = {"architecture": "cnn-small", "dataset": "shapes", "dataset_params": TINY, "max_epochs": 1,
            "lr": 1e-3, "batch_size": 64}
    return Recipe(**{**base, **kw})


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_cache_hit_is_bit_identical_and_recipe_changes_the_hash():
    r = tiny(seed=11)
    first = get_model(r, progress=False)
    again = get_model(r, progress=False)
    assert _same(first.model, again.model) and first.accuracy == again.accuracy and first.epochs == 1
    meta = json.loads((cache_dir() / f"{r.hash}.json").read_text())
    assert meta["epochs"] == 1 and meta["precision"] == "fp32" and len(meta["history"]) == 1
    hashes = {r.hash, tiny(seed=12).hash, tiny(seed=11, activation="softplus:2").hash,
              tiny(seed=11, split_factor=2).hash, tiny(seed=11, optimizer="sgd").hash}
    assert len(hashes) == 5


class _Killed(Exception):
    pass


@pytest.mark.parametrize("kw", [{"optimizer": "adam"},
                                {"optimizer": "sgd", "lr": 0.05, "split_factor": 2, "augment": True}])
def test_resume_after_kill_is_bit_identical(monkeypatch, tmp_path, kw):
    import bench.models.train as train

    r = tiny(seed=21, max_epochs=2, **kw)
    monkeypatch.setenv("GRADBENCH_CACHE", str(tmp_path / "straight"))
    straight = get_model(r, progress=False)

    monkeypatch.setenv("GRADBENCH_CACHE", str(tmp_path / "killed"))
    real, calls = train.accuracy, []

    def dies_in_epoch_2(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise _Killed
        return real(*a, **k)

    monkeypatch.setattr(train, "accuracy", dies_in_epoch_2)
    with pytest.raises(_Killed):
        get_model(r, progress=False)
    assert (cache_dir() / f"{r.hash}.partial.pt").exists() and not (cache_dir() / f"{r.hash}.pt").exists()
    monkeypatch.setattr(train, "accuracy", real)
    resumed = get_model(r, progress=False)
    assert _same(straight.model, resumed.model) and resumed.epochs == 2
    assert resumed.history == straight.history


def test_accuracy_cap_stops_at_the_first_passing_epoch(monkeypatch, tmp_path):
    import bench.models.train as train

    monkeypatch.setenv("GRADBENCH_CACHE", str(tmp_path))
    scripted = iter([0.30, 0.55, 0.65, 0.40, 0.70])  # held-out after epochs 1, 2, 3; test; train accuracy

    monkeypatch.setattr(train, "accuracy", lambda *a, **k: next(scripted))
    capped = get_model(tiny(seed=31, max_epochs=6, accuracy_cap=0.6), progress=False)
    assert capped.epochs == 3 and capped.accuracy == 0.65 and capped.history == (0.30, 0.55, 0.65)
    assert capped.test_accuracy == 0.40 and capped.train_accuracy == 0.70
    monkeypatch.undo()
    monkeypatch.setenv("GRADBENCH_CACHE", str(tmp_path))
    three = get_model(tiny(seed=31, max_epochs=3), progress=False)
    assert _same(capped.model, three.model)  # the checkpoint is the model after the passing epoch


def test_accuracy_cap_on_real_data():
    r = Recipe("mlp", "digits", max_epochs=10, accuracy_cap=0.5, lr=1e-3, batch_size=64, seed=41)
    m = get_model(r, progress=False)
    assert m.history[m.epochs - 1] > 0.5 and all(a <= 0.5 for a in m.history[: m.epochs - 1])
    assert len(m.history) == m.epochs


def test_unreachable_cap_is_a_training_error():
    with pytest.raises(TrainingError, match="below the cap 1.0; raise max_epochs or lower accuracy_cap"):
        get_model(tiny(seed=51, accuracy_cap=1.0), progress=False)


def test_split_models_see_matched_steps_and_differ():
    full = get_model(tiny(seed=61), progress=False)
    parts = [get_model(tiny(seed=61, split_factor=4, split_index=i), progress=False) for i in range(2)]
    meta = [json.loads((cache_dir() / f"{m.recipe.hash}.json").read_text()) for m in (full, *parts)]
    assert meta[0]["steps"] == meta[1]["steps"] == meta[2]["steps"]
    assert meta[1]["n_train"] == meta[2]["n_train"] <= meta[0]["n_train"] // 4
    assert not _same(parts[0].model, parts[1].model)
    unmatched = get_model(tiny(seed=61, split_factor=4, match_steps=False), progress=False)
    assert json.loads((cache_dir() / f"{unmatched.recipe.hash}.json").read_text())["steps"] < meta[0]["steps"]


def test_unknown_optimizer():
    with pytest.raises(GradBenchError, match="use one of adam, sgd"):
        get_model(tiny(optimizer="lbfgs"), progress=False)


def test_pretrained_recipe_loads_from_cache_without_download():
    from bench.data import load_dataset
    from bench.models.build import initial_model

    r = Recipe("timm:resnet10t", "shapes", dataset_params=TINY, model_params={"pretrained": True})
    assert isinstance(initial_model(r, load_dataset("shapes", **TINY)), nn.Module)


# -- real datasets (no files here: the missing-data error, and ImageFolder trees written to tmp) ------

# fashion-mnist: tests/test_fashion_mnist.py (it also looks in Debian's folder, present on some machines)
@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100", "tinyimagenet", "caltech256",
                                  "imagenette", "imagenet"])
def test_missing_dataset_names_the_root_and_the_fix(tmp_path, monkeypatch, name):
    from bench.data.vision import DatasetUnavailableError
    from bench.registry import datasets

    monkeypatch.setenv("GRADBENCH_DATA", str(tmp_path / "env-root"))
    param_root = tmp_path / "param-root"
    for kw, root in [({}, tmp_path / "env-root"), ({"data_root": str(param_root)}, param_root)]:
        with pytest.raises(DatasetUnavailableError) as e:
            datasets.create(name, **kw)
        msg = str(e.value)
        assert "\n" not in msg and str(root) in msg and "--data-root" in msg
        assert ("download = true" in msg) == (name not in ("tinyimagenet", "imagenet"))


def _png_tree(folder, classes, n, rng, size=(40, 52)):
    from PIL import Image

    for c in classes:
        (folder / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = (rng.random((*size, 3)) * 255).astype("uint8")
            Image.fromarray(arr).save(folder / c / f"{c}_{i}.png")


def test_imagefolder_tree_is_decoded_resized_and_capped(tmp_path):
    import numpy as np

    from bench.registry import datasets

    rng = np.random.default_rng(0)
    base = tmp_path / "imagenette2-320"
    _png_tree(base / "train", ["n01440764", "n02102040", "n02979186"], 4, rng)
    _png_tree(base / "val", ["n01440764", "n02102040", "n02979186"], 2, rng)
    d = datasets.create("imagenette", data_root=str(tmp_path), image_size=24, train_per_class=3)
    assert d.x_train.shape == (9, 3, 24, 24) and d.x_test.shape == (6, 3, 24, 24) and d.num_classes == 3
    assert torch.equal(torch.bincount(d.y_train), torch.tensor([3, 3, 3]))
    assert d.class_names == ("n01440764", "n02102040", "n02979186")
    lo, hi = d.x_min.view(1, -1, 1, 1), d.x_max.view(1, -1, 1, 1)
    assert torch.all(d.x_train >= lo - 1e-5) and torch.all(d.x_train <= hi + 1e-5)
    # the same tree through the generic loader: decoded pixels come from the on-disk cache
    g = datasets.create("imagefolder", root=str(base), image_size=24, train_per_class=3)
    assert torch.equal(g.x_train, d.x_train) and torch.equal(g.y_test, d.y_test)
    assert list((cache_dir().parent / "data").glob("*.pt"))
    _png_tree(base / "val", ["n01440764"], 3, rng)  # a changed tree is a new cache key, never a stale hit
    assert len(datasets.create("imagenette", data_root=str(tmp_path), image_size=24).x_test) == 7


def test_tinyimagenet_official_layout(tmp_path):
    import numpy as np

    from bench.registry import datasets

    rng = np.random.default_rng(1)
    base = tmp_path / "tiny-imagenet-200"
    for w in ["n01", "n02"]:
        _png_tree(base / "train" / w, ["images"], 3, rng, (64, 64))
        for f in (base / "train" / w / "images").iterdir():
            f.rename(f.with_name(f"{w}_{f.name}"))
    _png_tree(base / "val", ["images"], 4, rng, (64, 64))
    files = sorted(p.name for p in (base / "val" / "images").iterdir())
    (base / "val" / "val_annotations.txt").write_text(
        "".join(f"{f}\t{'n01' if i % 2 else 'n02'}\t0\t0\t8\t8\n" for i, f in enumerate(files)))
    d = datasets.create("tinyimagenet", data_root=str(tmp_path))
    assert d.x_train.shape == (6, 3, 64, 64) and d.x_test.shape == (4, 3, 64, 64)
    assert sorted(d.y_test.tolist()) == [0, 0, 1, 1] and d.class_names == ("n01", "n02")


def test_caltech256_split_is_stratified_and_drops_clutter(tmp_path):
    import numpy as np

    from bench.registry import datasets

    rng = np.random.default_rng(2)
    base = tmp_path / "caltech256" / "256_ObjectCategories"
    _png_tree(base, ["001.ak47", "002.bat", "257.clutter"], 5, rng, (30, 30))
    d = datasets.create("caltech256", data_root=str(tmp_path), image_size=16)
    assert d.num_classes == 2 and len(d.x_train) == 8 and len(d.x_test) == 2
    assert torch.equal(torch.bincount(d.y_test), torch.tensor([1, 1]))
    assert datasets.create("caltech256", data_root=str(tmp_path), image_size=16, clutter=True).num_classes == 3


def test_the_data_root_is_no_part_of_the_model_hash():
    a = Recipe("resnet18-cifar", "cifar10", dataset_params={"data_root": "/a", "download": True})
    b = Recipe("resnet18-cifar", "cifar10", dataset_params={"data_root": "/b"})
    c = Recipe("resnet18-cifar", "cifar10", dataset_params={"n_train": 100})
    assert a.hash == b.hash == Recipe("resnet18-cifar", "cifar10").hash != c.hash


def test_augment_crops_and_flips():
    from bench.models.train import _augment

    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    out = _augment(x, torch.Generator().manual_seed(0), pad=0)  # no padding: only flips
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
    out = _augment(x, torch.Generator().manual_seed(1), pad=2)
    assert out.shape == x.shape
    # every output row is a (possibly flipped) shifted window of the zero-padded input
    xp = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        found = any(torch.equal(out[i], c) for dy in range(5) for dx in range(5)
                    for c in (xp[i, :, dy:dy + 8, dx:dx + 8], xp[i, :, dy:dy + 8, dx:dx + 8].flip(-1)))
        assert found
    r = tiny(seed=71, augment=True)
    assert r.hash != tiny(seed=71).hash and get_model(r, progress=False).epochs == 1


def test_cap_checked_every_k_steps_stops_mid_epoch_and_closer_to_the_cap():
    base = Recipe("cnn-small", "digits", accuracy_cap=0.5, max_epochs=5, lr=1e-3, batch_size=32)
    per_epoch = get_model(base, progress=False)
    fine = get_model(dataclasses.replace(base, cap_check_steps=5), progress=False)
    assert fine.accuracy > 0.5 and per_epoch.accuracy > 0.5
    assert fine.accuracy <= per_epoch.accuracy  # the first passing check comes no later than the epoch end
    meta = json.loads((cache_dir() / f"{fine.recipe.hash}.json").read_text())
    assert meta["steps"] % 5 == 0 and meta["cap_reached"]


def test_cap_not_required_keeps_the_model_and_records_it():
    r = Recipe("mlp", "digits", accuracy_cap=0.999, max_epochs=1, cap_required=False)
    m = get_model(r, progress=False)
    assert m.epochs == 1 and not json.loads((cache_dir() / f"{r.hash}.json").read_text())["cap_reached"]
