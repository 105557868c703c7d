"""Shared fixtures: the real MNIST files, small real inputs built from them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from digitrec.data.datasets import LabelledImages, load_split

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO_ROOT.parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST folder: $DIGITREC_DATA, else ../shared/data/mnist."""
    folder = Path(os.environ.get("DIGITREC_DATA") or SHARED_MNIST)
    if not (folder / "train-images-idx3-ubyte.gz").exists() and not (folder / "train-images-idx3-ubyte").exists():
        pytest.fail(f"the real MNIST files are needed in {folder} (set DIGITREC_DATA)")
    return folder


@pytest.fixture(scope="session")
def mnist_test(mnist_dir: Path) -> LabelledImages:
    return load_split("test", mnist_dir, download=False)


@pytest.fixture(scope="session")
def mnist_train(mnist_dir: Path) -> LabelledImages:
    return load_split("train", mnist_dir, download=False)


@pytest.fixture
def mnist_copy(mnist_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the MNIST folder (for corrupting one file)."""
    copy = tmp_path / "mnist"
    copy.mkdir()
    for name in os.listdir(mnist_dir):
        if name.endswith(".gz") or "ubyte" in name:
            shutil.copy(mnist_dir / name, copy / name)
    return copy


def digit_examples(split: LabelledImages, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `per_class` images of each class, in class order."""
    picks = np.concatenate([np.flatnonzero(split.labels == c)[:per_class] for c in range(10)])
    return split.images[picks], split.labels[picks]


@pytest.fixture(scope="session")
def tiny_checkpoint(mnist_dir: Path, tmp_path_factory) -> Path:
    """A real (small) trained checkpoint: digitnet-small, 2 epochs on 6,000 MNIST training images."""
    from digitrec.training.config import TrainConfig
    from digitrec.training.loop import fit

    config = TrainConfig.for_model(
        "digitnet-small", epochs=2, train_subset=6000, validation_size=1000, test_subset=1000
    )
    result = fit(config, tmp_path_factory.mktemp("tiny") / "run", data_dir=mnist_dir, progress=False)
    return result.checkpoint_path
