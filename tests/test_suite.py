import re
from pathlib import Path

import pytest

from bench.errors import SuiteError, UnknownNameError
from bench.suite import load_suite


def write(tmp_path, text):
    p = tmp_path / "s.toml"
    p.write_text(text)
    return str(p)


BASE = """
name = "t"
datasets = ["digits"]
metrics = ["ef"]
[[models]]
architecture = "cnn-small"
activations = ["relu", "softplus:2"]
seeds = [0, 1]
"""


def test_grid_expansion_and_stable_ids(tmp_path):
    path = write(tmp_path, BASE + '[[methods]]\nname = "smoothgrad"\nparams = { alpha = [0.1, 0.2], n = 5 }\n'
                 '[[methods]]\nname = "grad"\n')
    jobs = load_suite(path).jobs
    assert len(jobs) == 2 * 2 * (2 + 1)  # activations × seeds × (2 smoothgrad points + grad)
    assert len({j.id for j in jobs}) == len(jobs)
    assert [j.id for j in jobs] == [j.id for j in load_suite(path).jobs]
    labels = {j.method_label for j in jobs}
    assert labels == {"grad", "smoothgrad(alpha=0.1, n=5)", "smoothgrad(alpha=0.2, n=5)"}


def test_job_id_ignores_suite_name_but_not_params(tmp_path):
    a = load_suite(write(tmp_path, BASE + '[[methods]]\nname = "grad"\n')).jobs[0]
    b = load_suite(write(tmp_path, BASE.replace('"t"', '"u"') + '[[methods]]\nname = "grad"\n')).jobs[0]
    c = load_suite(write(tmp_path, BASE + '[[methods]]\nname = "grad_x_input"\n')).jobs[0]
    assert a.id == b.id and a.id != c.id


@pytest.mark.parametrize("text, match", [
    ('[[methods]]\nname = "smoothgard"\n', "did you mean 'smoothgrad'"),
    ('[[methods]]\nname = "smoothgrad"\nparams = { sigmaa = 1 }\n', "takes no parameter sigmaa"),
    ('[[methods]]\nname = "grad"\n[[models]]\narchitecture = "nope"\n', "unknown model 'nope'"),
    ('[[methods]]\nname = "grad"\n[[models]]\narchitecture = "mlp"\nactivations = ["softplus"]\n',
     "softplus needs a β"),
    ('[[methods]]\nname = "grad"\n[[models]]\narchitecture = "mlp"\nlrr = 1\n', "unknown key"),
    ('[[methods]\nname = "grad"\n', "not valid TOML"),
])
def test_malformed_suites_fail_with_one_clear_line(tmp_path, text, match):
    with pytest.raises((SuiteError, UnknownNameError)) as e:
        load_suite(write(tmp_path, BASE + text))
    assert match in str(e.value) and "\n" not in str(e.value)


def test_num_gpus_is_the_suites_ray_resource_request(tmp_path):
    assert load_suite(write(tmp_path, BASE + '[[methods]]\nname = "grad"\n')).num_gpus is None
    assert load_suite(write(tmp_path, "num_gpus = 0.5\n" + BASE + '[[methods]]\nname = "grad"\n')).num_gpus == 0.5
    with pytest.raises(SuiteError, match="num_gpus must be a number ≥ 0"):
        load_suite(write(tmp_path, 'num_gpus = "one"\n' + BASE + '[[methods]]\nname = "grad"\n'))


def test_unknown_top_level_key(tmp_path):
    with pytest.raises(SuiteError, match="unknown top-level key.*bogus"):
        load_suite(write(tmp_path, "bogus = 1\n" + BASE + '[[methods]]\nname = "grad"\n'))


def test_missing_required_key(tmp_path):
    with pytest.raises(SuiteError, match="missing required key 'methods'"):
        load_suite(write(tmp_path, BASE))


def test_unknown_suite_name():
    with pytest.raises(UnknownNameError, match="known: .*default"):
        load_suite("defualt")


TWO_DATASETS = """
name = "t"
datasets = ["digits", { name = "shapes", params = { n_train = 600 } }]
metrics = ["ef"]
[[methods]]
name = "grad"
[[models]]
architecture = "cnn-small"
"""
REPO = Path(__file__).resolve().parent.parent


def test_a_models_datasets_key_restricts_that_model_only(tmp_path):
    plain = load_suite(write(tmp_path, TWO_DATASETS)).jobs
    jobs = load_suite(write(tmp_path, TWO_DATASETS + '[[models]]\narchitecture = "mlp"\ndatasets = ["shapes"]\n')).jobs
    assert [j.id for j in jobs[:len(plain)]] == [j.id for j in plain]  # the other model's jobs are untouched
    (mlp,) = jobs[len(plain):]
    assert mlp.recipe.architecture == "mlp" and mlp.dataset == "shapes"
    assert mlp.recipe.dataset_params == {"n_train": 600}  # the suite's params for that dataset


@pytest.mark.parametrize("models, match", [
    ('datasets = ["mnist"]', "models[1].datasets names 'mnist', which the suite does not list"),
    ('datasets = "shapes"', "models[1].datasets = 'shapes': must be a non-empty list"),
    ('datasets = []', "must be a non-empty list of the suite's dataset names"),
])
def test_a_models_datasets_key_names_only_the_suites_datasets(tmp_path, models, match):
    with pytest.raises(SuiteError) as e:
        load_suite(write(tmp_path, TWO_DATASETS + f'[[models]]\narchitecture = "mlp"\n{models}\n'))
    assert match in str(e.value) and "\n" not in str(e.value)


def test_a_dataset_no_model_runs_on_is_an_error(tmp_path):
    text = TWO_DATASETS.replace('architecture = "cnn-small"', 'architecture = "cnn-small"\ndatasets = ["shapes"]')
    with pytest.raises(SuiteError, match=re.escape("dataset(s) 'digits' of the suite have no [[models]] running")):
        load_suite(write(tmp_path, text))


@pytest.mark.parametrize("suite", sorted(p.name for p in (REPO / "results").iterdir()
                                         if (REPO / "registry" / "suites" / f"{p.name}.toml").exists()))
def test_committed_results_are_jobs_of_their_suite(suite):
    # A change to how suites expand must not move the job ids of results already published.
    committed = {p.stem for p in (REPO / "results" / suite).glob("*.parquet")}
    assert committed and committed <= {j.id for j in load_suite(suite).jobs}


def test_default_suite_is_valid():
    s = load_suite("default")
    # datasets × activations × (5 methods + 2 controls), and again on the perturbed models (one seed)
    assert len(s.jobs) == 2 * 3 * 7 * 2 and all(j.samples >= 64 for j in s.jobs)
    assert sum(bool(j.model_perturbation) for j in s.jobs) == 2 * 3 * 7


def test_samples_per_dataset(tmp_path):
    from bench.suite import load_suite

    p = tmp_path / "s.toml"
    p.write_text('name = "s"\nsamples = { shapes = 16, digits = 8 }\ndatasets = ["shapes", "digits"]\n'
                 'metrics = ["ef"]\n[[models]]\narchitecture = "cnn-small"\n[[methods]]\nname = "grad"\n')
    assert {j.recipe.dataset: j.samples for j in load_suite(str(p)).jobs} == {"shapes": 16, "digits": 8}
    p.write_text(p.read_text().replace("digits = 8", "digits = 1"))
    with pytest.raises(SuiteError, match="samples = 1: must be an integer ≥ 2"):
        load_suite(str(p))
    p.write_text(p.read_text().replace(", digits = 1", ""))
    with pytest.raises(SuiteError, match="samples is a table but has no entry for dataset 'digits'"):
        load_suite(str(p))


def test_cap_check_steps_per_dataset(tmp_path):
    from bench.suite import load_suite

    p = tmp_path / "s.toml"
    p.write_text('name = "s"\ndatasets = ["shapes", "digits"]\nmetrics = ["ef"]\n'
                 '[[models]]\narchitecture = "cnn-small"\naccuracy_cap = 0.9\n'
                 'cap_check_steps = { shapes = 20, digits = 50 }\n[[methods]]\nname = "grad"\n')
    assert {j.recipe.dataset: j.recipe.cap_check_steps for j in load_suite(str(p)).jobs} == {"shapes": 20, "digits": 50}


def test_every_grid_point_and_metric_value_is_checked_by_its_factory(tmp_path):
    """The suite creates each method of each grid point and each metric: the factory's own value check."""
    ok = load_suite(write(tmp_path, BASE.replace('metrics = ["ef"]', 'metrics = ["ef", { name = "information_level", '
                                                 'params = { thresholds = [0.2, 0.5], n_masks = 2 } }]')
                          + '[[methods]]\nname = "smoothgrad"\nparams = { n = [2, 3] }\n'))
    assert len(ok.jobs) == 2 * 2 * 2  # a list for a tuple parameter (TOML has no tuples) is allowed
    for text, match in [
        ('[[methods]]\nname = "smoothgrad"\nparams = { n = [2, "ten"] }\n', "methods[0]: method 'smoothgrad': n='ten'"),
        ('[[methods]]\nname = "grad"\n[[methods]]\nname = "adaptgrad"\nparams = { c = [0.9, 1.5] }\n',
         "methods[1]: method 'adaptgrad': c=1.5 is not allowed; c must be a finite number in (0, 1)"),
        ('[[methods]]\nname = "noisegrad"\nparams = { n = 2, base = "smoothgrad", base_params = { n = true } }\n',
         "base_params of its base 'smoothgrad'"),
    ]:
        with pytest.raises(SuiteError, match=re.escape(match)):
            load_suite(write(tmp_path, BASE + text))
    bad_metric = BASE.replace('metrics = ["ef"]',
                              'metrics = ["ef", { name = "top_k_intersection", params = { k = 0 } }]')
    with pytest.raises(SuiteError, match=re.escape("metrics[1]: metric 'top_k_intersection': k=0 is not allowed")):
        load_suite(write(tmp_path, bad_metric + '[[methods]]\nname = "grad"\n'))
