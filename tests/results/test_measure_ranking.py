"""Kendall's tau, overall and granulated per factor, against scipy and groups written out."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau

from rethink.results.measure_ranking import granulated_tau, kendall_tau, ranking


@pytest.mark.parametrize("seed", range(5))
def test_kendall_tau_matches_scipy_with_ties_and_missing_values(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, 40).astype(float)  # many ties
    y = x + rng.normal(0, 2, 40).round()
    x[rng.choice(40, 5, replace=False)] = np.nan
    expected = kendalltau(x, y, nan_policy="omit").statistic  # tau-b
    assert kendall_tau(x, y) == pytest.approx(expected, abs=1e-12)


def test_infinities_rank_beyond_every_number():
    x = [1.0, np.inf, 3.0, np.inf, -np.inf]
    y = [1.0, 5.0, 2.0, 4.0, 0.0]
    assert kendall_tau(x, y) == pytest.approx(kendalltau([1, 4, 3, 4, 0], y).statistic)


def test_kendall_tau_of_a_constant_is_undefined():
    assert np.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    assert np.isnan(kendall_tau([1.0], [2.0]))


def runs_table() -> pd.DataFrame:
    """Two models x three variants x two seeds; the measure follows the gap across variants,
    the opposite of it across models, and is unrelated to it across seeds."""
    rows = []
    for model, offset in (("a", 0.0), ("b", 0.5)):
        for level, variant in enumerate(["true", "corrupt0.5", "random"]):
            for seed in (0, 1):
                gap = 0.2 * level + offset + 0.01 * seed
                value = level - 10 * offset + (0.3 if seed == 0 else 0.0)
                rows.append(dict(dataset="d", variant=variant, model=model, regularizer="none",
                                 seed=seed, gap=gap, m=value))  # fmt: skip
    return pd.DataFrame(rows)


def test_granulated_tau_is_the_mean_over_groups_where_only_that_factor_varies():
    runs = runs_table()
    assert granulated_tau(runs, "m", "variant") == (1.0, 4)  # 2 models x 2 seeds
    assert granulated_tau(runs, "m", "model") == (-1.0, 6)  # 3 variants x 2 seeds
    assert granulated_tau(runs, "m", "seed") == (-1.0, 6)  # seed 0 has the larger value
    tau, groups = granulated_tau(runs, "m", "regularizer")  # one regularizer: no group
    assert groups == 0 and np.isnan(tau)
    # the groups written out, by scipy: model a and b separately for the variant factor
    expected = np.mean([
        kendalltau(g.m, g.gap).statistic for _, g in runs.groupby(["model", "seed"])
    ])  # fmt: skip
    assert granulated_tau(runs, "m", "variant")[0] == pytest.approx(expected)


def test_ranking_uses_fitted_runs_and_orders_measures_by_tau():
    runs = runs_table()
    long = runs.melt(
        id_vars=["dataset", "variant", "model", "regularizer", "seed", "gap"],
        value_vars=["m"],
        var_name="measure",
    )
    long["measure"] = "frob_sum"  # fmt: skip
    long["fitted"] = True
    other = long.assign(measure="params", value=-long.gap)  # exactly reversed
    table = pd.concat([long, other])
    table.loc[table.seed == 1, "fitted"] = False  # not ranked
    ranked = ranking(table).set_index("measure")
    assert ranked.loc["params", "tau"] == -1.0
    assert ranked.loc["params", "runs"] == 6
    assert ranked.loc["params", "groups_seed"] == 0
    assert ranked.loc["params", "tau_granulated_mean"] == -1.0
    fitted = runs[runs.seed == 0]
    expected = kendalltau(fitted.m, fitted.gap).statistic
    assert ranked.loc["frob_sum", "tau"] == pytest.approx(expected)


def test_the_mean_granulated_tau_averages_the_hyperparameters_not_the_seed():
    long = runs_table().rename(columns={"m": "value"}).assign(measure="frob_sum", fitted=True)
    ranked = ranking(long).set_index("measure")
    # variant +1 (4 groups), model -1 (6 groups), no regularizer group; seed -1 left out
    assert ranked.loc["frob_sum", "tau_seed"] == -1.0
    assert ranked.loc["frob_sum", "tau_granulated_mean"] == 0.0
