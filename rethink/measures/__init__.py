"""Generalization measures of trained networks (../shared/PAPER.md section 9; docs/measures.md):
which of them ranks a study's runs by their generalization gap, where capacity, as Zhang et al.
2017 show with random labels, cannot. Computed for each run from its kept weights
(rethink.models.weights) and its variant by rule measure_runs, one job per variant
(rethink.measures.run); ranked by rethink.results.measure_ranking.

This module is the catalog, importing no torch: each measure's family, formula and source.
W_i: layer i's weight matrix, batch norm folded in (rethink.measures.layers); W_i^0 at
initialization; d layers; gamma the 10th-percentile training margin; m training examples.
"""

from dataclasses import dataclass

# Rule measure_runs' outputs per variant, each with the runs' keys: measures (one row per run
# and measure), searches (per run: the scales found, the margin, seconds per family), margins
# (per run and training example: its margin, normalized too).
MEASURE_TABLES = ("measures", "searches", "margins")
MEASURE_DIR = "results/measures/{dataset}/{variant}"

JIANG = "Jiang et al. 2020"
BARTLETT = "Bartlett et al. 2017"


@dataclass(frozen=True)
class Measure:
    family: str
    formula: str
    source: str


MEASURES: dict[str, Measure] = {
    "params": Measure("capacity", "number of parameters", JIANG),
    "frob_sum": Measure("norm", "sum_i ||W_i||_F^2", JIANG),
    "frob_log_prod": Measure("norm", "log prod_i ||W_i||_F^2", JIANG),
    "frob_sum_over_margin": Measure("norm", "sum_i ||W_i||_F^2 / gamma^2", JIANG),
    "frob_log_prod_over_margin": Measure("norm", "log(prod_i ||W_i||_F^2 / gamma^2)", JIANG),
    "spec_sum": Measure("norm", "sum_i ||W_i||_2^2", JIANG),
    "spec_log_prod": Measure("norm", "log prod_i ||W_i||_2^2", JIANG),
    "spec_sum_over_margin": Measure("norm", "sum_i ||W_i||_2^2 / gamma^2", JIANG),
    "spec_log_prod_over_margin": Measure("norm", "log(prod_i ||W_i||_2^2 / gamma^2)", JIANG),
    "frob_distance": Measure("norm", "sum_i ||W_i - W_i^0||_F^2", JIANG),
    "spec_distance": Measure("norm", "sum_i ||W_i - W_i^0||_2^2", JIANG),
    "frob_over_spec": Measure("norm", "sum_i ||W_i||_F^2 / ||W_i||_2^2", JIANG),
    "path_norm": Measure(
        "norm", "sqrt(sum of outputs, squared weights, no biases, input of ones)", JIANG
    ),
    "path_norm_over_margin": Measure("norm", "path_norm / gamma^2", JIANG),
    "inverse_margin": Measure("margin", "1 / gamma^2", JIANG),
    "log_spectral_complexity": Measure(
        "margin",
        "log R, R = prod_i ||W_i||_2"
        " (sum_i ||W_i^T - W_i^0T||_{2,1}^{2/3} / ||W_i||_2^{2/3})^{3/2}",
        BARTLETT,
    ),
    "log_spectral_over_margin": Measure(
        "margin",
        "log(R ||X||_F / (m gamma)): 1 / the 10th percentile of the normalized margin",
        BARTLETT,
    ),
    "pacbayes_flatness": Measure("flatness", "1 / sigma^2", JIANG),
    "pacbayes_bound": Measure(
        "flatness", "||w - w^0||^2 / (4 sigma^2) + log(m / sigma) + 10", JIANG
    ),
    "pacbayes_mag_flatness": Measure(
        "flatness", "1 / sigma'^2, noise N(0, sigma'^2 w^2 + eps^2)", JIANG
    ),
    "sharpness": Measure("flatness", "1 / alpha^2", JIANG),
    "sharpness_mag": Measure("flatness", "1 / alpha'^2, box alpha'|w| + eps", JIANG),
    "steps_to_ce_0.1": Measure("optimization", "SGD steps until cross-entropy <= 0.1", JIANG),
    "steps_ce_0.1_to_0.01": Measure(
        "optimization", "SGD steps from cross-entropy 0.1 to 0.01", JIANG
    ),
}
