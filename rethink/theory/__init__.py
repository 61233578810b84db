"""Theorem 1's exact fit and the Gaussian-kernel interpolation: rules/theory.smk (theorem1)
and rules/kernels.smk (kernel_fit, kernel_report)."""
