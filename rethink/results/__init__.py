"""Tidy tables of the runs and what is drawn or written from them: rules/aggregate.smk
(aggregate_runs) and rules/figures.smk (plot_figure, write_table1, write_table2,
write_rademacher, docs)."""
