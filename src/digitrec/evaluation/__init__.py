"""Evaluation: metrics, reports and plots, calibration, experiment grids, benchmarks' scoring."""
