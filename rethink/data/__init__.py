"""Datasets and their randomized variants as HDF5 files: rules/data.smk (download_archive,
write_dataset) and rules/corrupt.smk (write_variant). Imports nothing from training."""
