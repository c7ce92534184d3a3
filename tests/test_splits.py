import re

import pytest
import torch

from bench.data.splits import SPLIT_FACTORS, split_indices


@pytest.fixture
def labels():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 6, (1000,), generator=g)


@pytest.mark.parametrize("sf", SPLIT_FACTORS)
def test_parts_are_disjoint_stratified_and_each_1_over_sf(labels, sf):
    parts = [split_indices(labels, sf, i, split_seed=3) for i in range(sf)]
    union = torch.cat(parts)
    assert len(union) == len(set(union.tolist()))  # disjoint
    counts = torch.bincount(labels, minlength=6)
    for p in parts:
        # the same number of each class in every part: ⌊n_c / sf⌋
        assert torch.equal(torch.bincount(labels[p], minlength=6), counts // sf)
    assert len(labels) - len(union) <= 6 * (sf - 1)  # at most sf−1 left over per class


def test_same_seed_same_partition_other_seed_other(labels):
    a = split_indices(labels, 4, 1, split_seed=7)
    assert torch.equal(a, split_indices(labels, 4, 1, split_seed=7))
    assert not torch.equal(a, split_indices(labels, 4, 1, split_seed=8))


def test_sf1_is_the_whole_set_in_order(labels):
    assert torch.equal(split_indices(labels, 1, 0, split_seed=5), torch.arange(len(labels)))


@pytest.mark.parametrize("sf, index, match", [(3, 0, "split_factor must be one of"),
                                              (4, 4, "split_index must be in 0..3")])
def test_bad_split_arguments_name_the_fix(labels, sf, index, match):
    with pytest.raises(ValueError, match=match):
        split_indices(labels, sf, index)


def test_too_few_images_per_class():
    with pytest.raises(ValueError, match="fewer than split_factor 16"):
        split_indices(torch.tensor([0] * 20 + [1] * 5), 16, 0)


def test_split_factor_suite_validates():
    from bench.suite import load_suite

    s = load_suite("split-factor")
    assert sorted({j.recipe.split_factor for j in s.jobs}) == list(SPLIT_FACTORS)
    assert all(j.recipe.split_index == 0 and j.recipe.match_steps for j in s.jobs)
    assert len(s.jobs) == 5 * (1 + 5 + 1 + 2)  # sf × (grad, 5 SmoothGrad σ, IG, the random and sobel controls)


@pytest.mark.parametrize("name", ["generalization-small", "generalization-full"])
def test_generalization_suites_train_every_split_factor_alike_without_a_cap(name):
    from bench.suite import load_suite

    s = load_suite(name)
    recipes = list({j.recipe.hash: j.recipe for j in s.jobs}.values())
    assert sorted({r.split_factor for r in recipes}) == list(SPLIT_FACTORS)
    assert all(r.accuracy_cap is None for r in recipes)
    for ds in {r.dataset for r in recipes}:  # the same epochs (and steps per epoch) at every split factor
        assert len({(r.max_epochs, r.match_steps) for r in recipes if r.dataset == ds}) == 1
    assert "split_prediction_corr" in {m.name for m in s.jobs[0].metrics}


def test_an_accuracy_cap_across_split_factors_is_refused(tmp_path):
    from bench.errors import GradBenchError
    from bench.suite import load_suite

    p = tmp_path / "s.toml"
    body = ('name = "t"\ndatasets = ["shapes"]\nmetrics = ["split_rank_corr"]\n[[models]]\n'
            'architecture = "cnn-small"\nsplit_factor = [1, 2]\n{cap}[[methods]]\nname = "grad"\n')
    p.write_text(body.format(cap="accuracy_cap = 0.85\n"))
    with pytest.raises(GradBenchError, match="drop accuracy_cap"):
        load_suite(str(p))
    p.write_text(body.format(cap=""))
    assert {j.recipe.max_epochs for j in load_suite(str(p)).jobs} == {20}


@pytest.mark.parametrize("models, match", [
    ('architecture = "cnn-small"\nsplit_factor = [2, 3]', "each must be one of [1, 2, 4, 8, 16]"),
    ('architecture = "timm:resnt18"', "did you mean 'resnet18'"),
])
def test_suite_model_errors(tmp_path, models, match):
    from bench.errors import GradBenchError
    from bench.suite import load_suite

    p = tmp_path / "s.toml"
    p.write_text(f'name = "t"\ndatasets = ["digits"]\nmetrics = ["ef"]\n[[models]]\n{models}\n'
                 '[[methods]]\nname = "grad"\n')
    with pytest.raises(GradBenchError, match=re.escape(match)):
        load_suite(str(p))


def test_timm_architectures_pass_through_a_suite(tmp_path):
    from bench.suite import load_suite

    p = tmp_path / "s.toml"
    p.write_text('name = "t"\ndatasets = ["digits"]\nmetrics = ["ef"]\n[[models]]\narchitecture = "timm:resnet10t"\n'
                 'params = { replace = "all" }\n[[methods]]\nname = "grad"\n')
    (job,) = load_suite(str(p)).jobs
    assert job.recipe.architecture == "timm:resnet10t" and job.recipe.model_params == {"replace": "all"}
