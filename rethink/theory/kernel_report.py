"""The kernel results of one dataset as a table and the figure `kernel-norm-vs-error`: the RKHS
norm of the minimum-norm interpolant and its test error against label corruption p."""

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from rethink.files import atomic_path
from rethink.results.catalog import KERNEL_FIGURE
from rethink.results.figures import save_figure


def kernel_norm_vs_error(results: pd.DataFrame):
    """Two panels over p: test error (%) and RKHS norm; every training error is 0."""
    data = results.sort_values("p").assign(test_error_pct=lambda t: 100 * t.test_error)
    fig, (error_ax, norm_ax) = plt.subplots(1, 2, figsize=(8, 3), sharex=True)
    sns.lineplot(data, x="p", y="test_error_pct", marker="o", ax=error_ax)
    error_ax.set(xlabel="label corruption p", ylabel="test error (%)", ylim=(0, 100))
    sns.lineplot(data, x="p", y="rkhs_norm", marker="o", ax=norm_ax)
    norm_ax.set(xlabel="label corruption p", ylabel="RKHS norm of the interpolant", ylim=(0, None))
    fig.tight_layout()
    columns = ["variant", "p", "train_error", "test_error", "test_error_pct", "rkhs_norm"]
    return fig, data[columns]


def write_kernel_report(
    results: list[str], dataset: str, table_path: str, figure_out: dict, dpi: int = 150
) -> pd.DataFrame:
    """Concatenate the per-variant results into `table_path` and draw the figure."""
    # dtype: a lone "true" would otherwise be read as a boolean
    table = pd.concat([pd.read_csv(p, dtype={"variant": str}) for p in results], ignore_index=True)
    table.insert(0, "dataset", dataset)
    table = table.sort_values("p", ignore_index=True)
    with atomic_path(table_path) as tmp:
        table.to_csv(tmp, index=False)
    sns.set_theme(style="whitegrid", context="paper")
    fig, data = kernel_norm_vs_error(table)
    save_figure(fig, data, f"{KERNEL_FIGURE} ({dataset})", figure_out, dpi)
    return table
