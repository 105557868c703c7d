"""MNIST-like datasets: IDX files, dataset specs, splits, download."""
