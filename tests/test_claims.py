"""Claims on hand-made results: trends, comparisons and relative drops, judged on seeds."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.board.config import BoardConfig
from bench.board.stats import bootstrap_means, cell_seed, percentile_ci
from bench.claims import axis_value, evaluate
from bench.errors import SuiteError


def make(values: dict[tuple[str, int], np.ndarray], metric="ef"):
    """values[(activation, seed)] = per-image values of one job."""
    rows, samples = [], []
    for (act, seed), v in values.items():
        jid = f"{act}-{seed}"
        rows.append({"job_id": jid, "metric": metric, "activation": act, "model_seed": seed, "method": "grad",
                     "method_params": json.dumps({"alpha": 0.1}), "model_recipe": json.dumps({"split_factor": 2})})
        samples.append(pd.DataFrame({"job_id": jid, "metric": metric, "sample": range(len(v)), "value": v}))
    return pd.DataFrame(rows), pd.concat(samples, ignore_index=True)


def trend_data(slope, seed_spread=0.0, noise=0.01):
    rng = np.random.default_rng(0)
    return {(act, s): 1 + slope * i + seed_spread * rng.normal() + noise * rng.normal(size=40)
            for i, act in enumerate(["softplus:1", "softplus:10", "relu"]) for s in range(3)}


CLAIM = {"id": "ef_beta", "metric": "ef", "kind": "trend", "along": "beta", "expect": "increasing",
         "where": {"method": "grad"}}


@pytest.mark.parametrize("slope, verdict", [(0.5, "HOLDS"), (-0.5, "DOES NOT HOLD"), (0.0, "INCONCLUSIVE")])
def test_trend_verdicts(slope, verdict):
    rows, samples = make(trend_data(slope))
    v = evaluate(CLAIM, rows, samples)
    assert v.verdict == verdict and v.seeds == 3 and not v.note


def test_seed_spread_makes_a_small_effect_inconclusive():
    # a 2% effect with tight images but seeds spread by 20%: the image-level CI would say HOLDS
    rows, samples = make(trend_data(0.02, seed_spread=0.2, noise=0.001))
    assert evaluate(CLAIM, rows, samples).verdict == "INCONCLUSIVE"


def test_compare_and_faster_drop():
    rows, samples = make(trend_data(0.5))
    claim = {"id": "c", "metric": "ef", "kind": "compare", "a": {"activation": "relu"},
             "b": {"activation": ["softplus:1", "softplus:10"]}, "expect": "a > b"}
    assert evaluate(claim, rows, samples).verdict == "HOLDS"
    r2, s2 = make({k: 2 - v for k, v in trend_data(0.2).items()}, metric="agree")
    r3, s3 = make({k: 1 - 0.05 * v for k, v in trend_data(0.2).items()}, metric="pred")
    rows, samples = pd.concat([r2, r3]), pd.concat([s2, s3])
    drop = {"id": "d", "metric": "agree", "versus": "pred", "kind": "faster_drop", "along": "beta"}
    assert evaluate(drop, rows, samples).verdict == "HOLDS"


def test_fill_gives_jobs_without_the_axis_a_value():
    rows, samples = make(trend_data(0.5))
    rows["method_params"] = [json.dumps({} if a == "softplus:1" else {"alpha": 0.1 if a == "softplus:10" else 0.2})
                             for a in rows["activation"]]
    claim = {"id": "f", "metric": "ef", "kind": "trend", "along": "param:alpha", "expect": "increasing"}
    assert [p[0] for p in evaluate(claim, rows, samples).points] == ["param:alpha=0.1", "param:alpha=0.2"]
    v = evaluate({**claim, "fill": 0}, rows, samples)
    assert len(v.points) == 3 and v.verdict == "HOLDS"


def test_one_seed_is_flagged():
    acts = ["softplus:1", "relu"]
    rows, samples = make({(a, 0): np.full(5, i, float) + np.arange(5) * 0.01 for i, a in enumerate(acts)})
    assert "fewer than 3" in evaluate(CLAIM, rows, samples).note


def test_axes():
    row = pd.Series({"activation": "softplus:0.5", "method_params": '{"alpha": 0.2}',
                     "model_recipe": '{"split_factor": 8}'})
    assert axis_value(row, "beta") == 0.5 and axis_value(row, "param:alpha") == 0.2
    assert axis_value(row, "recipe:split_factor") == 8
    with pytest.raises(SuiteError, match="claim axis"):
        axis_value(row, "sigma")


def test_one_seed_bootstrap_matches_scipy_percentile_interval():
    v = np.random.default_rng(1).exponential(size=60)
    ours = percentile_ci(bootstrap_means([v], resamples=4000, seed=2))
    ref = stats.bootstrap((v,), np.mean, n_resamples=4000, method="percentile", random_state=3).confidence_interval
    assert ours[0] == pytest.approx(ref.low, rel=0.03) and ours[1] == pytest.approx(ref.high, rel=0.03)


def test_claims_draw_the_board_bootstrap():
    # A claim's per-β interval is the board's nested bootstrap of that group (training seeds, then images),
    # with the board's resample count and confidence, seeded as a board cell is: base seed + the group's key.
    rows, samples = make(trend_data(0.5))
    config = BoardConfig(bootstrap_resamples=300, bootstrap_seed=4, confidence=0.9)
    v = evaluate(CLAIM, rows, samples, config)
    groups = [samples[samples["job_id"] == f"relu-{s}"]["value"].to_numpy() for s in range(3)]
    reps = bootstrap_means(groups, 300, cell_seed(4, ["ef_beta", "ef", "beta=inf"]))
    label, mean, lo, hi = v.points[-1]
    assert label == "beta=inf"
    assert (lo, hi) == percentile_ci(reps, 0.9) and mean == float(reps.mean())
    wider = evaluate(CLAIM, rows, samples, BoardConfig(bootstrap_resamples=300, bootstrap_seed=4, confidence=0.99))
    assert wider.ci[0] < v.ci[0] and wider.ci[1] > v.ci[1]  # the board's confidence level is used
