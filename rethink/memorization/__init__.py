"""Per-example observers of training (the record of every example, critical samples) and the
tables and figures made from them: rules/aggregate.smk (memorization_tables) and
rules/figures.smk (plot_memorization_figure)."""

EXAMPLES_FILE = "examples.h5"  # a run's per-example record, beside its summary.json
