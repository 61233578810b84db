"""Training one run, in memory or streamed, on one process or many: rules/train.smk
(train_run). Reads the data files; never imports the workflow subpackage."""
