"""GradBench's metrics against outputs of the authors' own released functions.

``tests/data/authors/reference_vectors.npz`` (see its README: repository, commit, file:function).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.metrics import MetricContext, create_metric
from bench.metrics.complexity import gini

AUTHORS = Path(__file__).parent / "data" / "authors" / "reference_vectors.npz"


@pytest.fixture(scope="module")
def ref():
    return np.load(AUTHORS, allow_pickle=False)


def context(maps: torch.Tensor, **kw) -> MetricContext:
    b = len(maps)
    x = torch.zeros(b, *maps.shape[1:])
    return MetricContext(torch.nn.Identity(), x, torch.zeros(b, dtype=torch.long), torch.zeros(b, dtype=torch.long),
                         maps, None, (torch.zeros(maps.shape[1]), torch.ones(maps.shape[1])), **kw)


# -- AdaptGrad's Sparseness (AG-repo metrics/sparseness.py:gini on the saved channel sum) ---------------

def test_sparseness_2d_equals_release(ref):
    maps = {n: ref[f"adaptgrad_{n}_maps"] for n in ref["sparseness2d_method_names"]}
    expected = ref["sparseness2d_values"]
    metric = create_metric("sparseness_2d")
    for k, name in enumerate(ref["sparseness2d_method_names"]):
        got = metric(context(torch.from_numpy(maps[name]))).numpy()
        np.testing.assert_allclose(got, expected[k], rtol=1e-5, err_msg=str(name))


def test_gini_scales_as_released(ref):
    m = torch.from_numpy(ref["sparseness2d_maps"][0, 0]).double().reshape(1, -1)
    for c, raw, norm in zip(ref["gini_scale_factors"], ref["gini_scale_values_raw"],
                            ref["gini_scale_values_maxnorm"], strict=True):
        assert gini(c * m, normalise=False).item() == pytest.approx(raw, rel=1e-5)
        assert gini(c * m).item() == pytest.approx(norm, rel=1e-5)


def test_gini_special_values(ref):
    one_hot = torch.zeros(1, 224 * 224)
    one_hot[0, 17] = 1
    maps = {"onehot_224sq": one_hot, "constant_ones_1024": torch.ones(1, 1024),
            "ramp_0_to_1023": torch.arange(1024, dtype=torch.float64)[None]}
    for name, value in zip(ref["gini_special_names"], ref["gini_special_values"], strict=True):
        assert gini(maps[str(name)], normalise=False).item() == pytest.approx(value, rel=1e-5, abs=1e-12)
