"""Rule measure_runs on a tiny study: each run measured from its kept weights and its variant,
ranked and drawn; a study with the measures off plans no measure job."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from rethink.data.h5io import read_dataset
from rethink.measures import MEASURES
from rethink.models.weights import load_run_model
from rethink.results.aggregate import read_table
from tests.conftest import copy_workflow, run_snakemake
from tests.test_workflow import dry_run, job_stats

pytestmark = pytest.mark.slow

VARIANTS = ["true", "corrupt0.5", "random"]
STUDY = {
    "datasets": ["mnist5k"],
    "variants": {"names": VARIANTS},
    "runs": [{"models": ["mlp1x512"], "seeds": [0, 1]}],
    "training": {"max_epochs": 60, "train_subset": 200, "test_subset": 200,
                 "record_examples": False},
    "measures": {"enabled": True, "search_images": 100, "bisection_steps": 3},
}  # fmt: skip


def training_inputs(study, variant: str):
    """The first 200 training images of the variant as the runs saw them (28x28: no crop; TF's
    per-image whitening), computed here."""
    images = read_dataset(study / f"results/variants/mnist5k/{variant}.h5").train.images[:200]
    x = torch.from_numpy(images).permute(0, 3, 1, 2).double() / 255
    flat = x.flatten(1)
    std = flat.std(dim=1, correction=0).clamp_min(1 / math.sqrt(flat.shape[1]))
    return ((flat - flat.mean(dim=1, keepdim=True)) / std[:, None]).view_as(x).float()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = copy_workflow(tmp_path_factory.mktemp("measured"), STUDY)
    result = run_snakemake(root, "--cores", "2", repo=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def test_every_run_is_measured_ranked_and_drawn(study):
    table = read_table(study / "results/tables/mnist5k/measures.csv")
    assert len(table) == 6 * len(MEASURES)  # 3 variants x 2 seeds, every measure
    assert set(table.measure) == set(MEASURES)
    runs = read_table(study / "results/tables/runs.csv")
    merged = table.merge(runs, on=["variant", "seed"], suffixes=("", "_run"))
    np.testing.assert_allclose(merged.gap, merged.train_acc_run - merged.test_acc_run)
    ranking = pd.read_csv(study / "results/tables/mnist5k/measure-ranking.csv")
    assert set(ranking.measure) == set(MEASURES)
    md = (study / "results/tables/mnist5k/measure-ranking.md").read_text()
    assert "Kendall's tau" in md and "`path_norm`" in md
    for figure in ("measures-vs-gap", "margin-distributions"):
        for ext in ("png", "pdf", "csv"):
            assert (study / f"results/figures/mnist5k/{figure}.{ext}").stat().st_size > 0
    margins = pd.read_csv(study / "results/figures/mnist5k/margin-distributions.csv")
    assert set(margins.variant) == set(VARIANTS) and set(margins.seed) == {0}


def of_run(table: pd.DataFrame, seed: int) -> pd.DataFrame:
    return table[(table.model == "mlp1x512") & (table.regularizer == "none") & (table.seed == seed)]


def test_a_runs_measures_come_from_its_kept_weights_and_training_examples(study):
    folder = study / "results/measures/mnist5k/true"
    measures = of_run(read_table(folder / "measures.csv"), 0).set_index("measure").value
    search = of_run(read_table(folder / "searches.csv"), 0).iloc[0]
    margins = of_run(read_table(folder / "margins.csv"), 0)
    model = load_run_model(study / "results/runs/mnist5k/true/mlp1x512/none/seed0")
    logits = model(training_inputs(study, "true")).detach().double().numpy()
    labels = margins.label.to_numpy()
    own = logits[np.arange(len(labels)), labels]
    logits[np.arange(len(labels)), labels] = -np.inf
    np.testing.assert_allclose(margins.margin, own - logits.max(axis=1), rtol=1e-5, atol=1e-5)
    assert measures["params"] == sum(p.numel() for p in model.parameters())
    # the 10th-percentile margin the over-margin measures divide by
    gamma = search.margin_10th_percentile
    assert gamma == pytest.approx(np.quantile(margins.margin, 0.1), rel=1e-6)
    if gamma > 0:
        assert measures["inverse_margin"] == pytest.approx(1 / gamma**2)
    assert search.search_images == 100 and search.train_images == 200


def test_the_measures_of_a_finished_study_rerun_nothing(study):
    result = run_snakemake(study, "--dry-run", repo=study)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_a_study_with_the_measures_off_plans_no_measure_job(tmp_path):
    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    on = job_stats(dry_run(tmp_path / "on", STUDY).stdout)
    assert on["measure_runs"] == "3" and on["measure_tables"] == "1"  # one job per variant
    off = dry_run(tmp_path / "off", {**STUDY, "measures": {"enabled": False}})
    assert off.returncode == 0, off.stderr
    assert not {"measure_runs", "measure_tables", "plot_measure_figure"} & set(
        job_stats(off.stdout)
    )


def test_a_run_whose_weights_diverged_gets_no_measure_and_stops_nothing(tmp_path):
    from rethink.measures.run import measure_run
    from rethink.models import build_model
    from rethink.models.weights import save_weights

    run_dir = tmp_path / "mnist5k/true/mlp1x512/none/seed0"
    run_dir.mkdir(parents=True)
    initial = build_model("mlp1x512", (1, 4, 4), 3, 0.0)
    final = build_model("mlp1x512", (1, 4, 4), 3, 0.0)
    with torch.no_grad():
        next(final.parameters())[0, 0] = float("nan")
    spec = {"model": "mlp1x512", "input_shape": [1, 4, 4], "n_classes": 3, "dropout": 0.0}
    save_weights(run_dir / "weights.safetensors", initial, final, spec)
    inputs, labels = torch.randn(20, 1, 4, 4), torch.randint(0, 3, (20,))
    measures, search, margins = measure_run(run_dir, inputs, labels, None)
    assert set(measures) == set(MEASURES) and all(np.isnan(v) for v in measures.values())
    assert len(margins) == 20 and margins.margin.isna().all()
