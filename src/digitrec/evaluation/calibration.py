"""Calibrated confidence for a checkpoint: temperature scaling and an "unsure" threshold, fit on validation data.

The test set is only used to report how well the calibration holds (ECE, risk-coverage), never to fit it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from digitrec import model_files
from digitrec.data.datasets import dataset_spec, load_split, training_and_validation
from digitrec.evaluation.report import (
    error_at_coverage,
    expected_calibration_error,
    fit_temperature,
    logits_over_views,
    predict_logits,
    reliability_figure,
    risk_coverage_figure,
    test_time_views,
)
from digitrec.fileio import save_figure_atomic, write_json_atomic
from digitrec.images.normalize import to_model_inputs
from digitrec.inference.views import affine_view
from digitrec.numeric import softmax
from digitrec.training import checkpoint

TARGET_COVERAGE = 0.99  # the unsure threshold answers this share of validation images
# Candidate test-time view sets, (rotation degrees, scale) each, compared on validation by `tta-search`.
VIEW_CANDIDATES: dict[str, list[tuple[float, float]]] = {
    "none": [(0.0, 1.0)],
    "rotate 3": [(0.0, 1.0), (3.0, 1.0), (-3.0, 1.0)],
    "rotate 6": [(0.0, 1.0), (6.0, 1.0), (-6.0, 1.0)],
    "rotate 9": [(0.0, 1.0), (9.0, 1.0), (-9.0, 1.0)],
    "scale 8%": [(0.0, 1.0), (0.0, 0.92), (0.0, 1.08)],
    "rotate 6 + scale 8%": [(0.0, 1.0), (6.0, 1.0), (-6.0, 1.0), (0.0, 0.92), (0.0, 1.08)],
}


def logits_and_labels(model, images: np.ndarray, labels: np.ndarray, normalization: str, views=()):
    inputs = torch.from_numpy(to_model_inputs(images, normalization))
    logits = logits_over_views(model, inputs, list(views))
    return logits, torch.from_numpy(labels.astype(np.int64))


def validation_split(metadata: dict, data_dir=None):
    """The checkpoint's own validation part of the training split (seeded with the run)."""
    config = metadata["config"]
    _, validation = training_and_validation(
        dataset_spec(config["dataset"]), data_dir, config["seed"], config["validation_size"],
        config.get("train_subset", 0),
    )  # fmt: skip
    return validation


def compare_view_sets(paths: list, data_dir=None, candidates: dict | None = None) -> dict:
    """Validation images right per checkpoint and candidate view set, and their sum: the test set is not used."""
    candidates = candidates or VIEW_CANDIDATES
    correct: dict[str, dict[str, int]] = {}
    for path in paths:
        model, metadata = checkpoint.load_model(path)
        validation = validation_split(metadata, data_dir)
        labels = validation.labels
        inputs = to_model_inputs(validation.images, metadata["config"]["normalization"])

        def model_logits(x, model=model):
            return predict_logits(model, torch.from_numpy(x)).numpy()

        views = {view for views in candidates.values() for view in views}
        per_view = {view: softmax(model_logits(affine_view(inputs, *view))) for view in views}
        correct[str(path)] = {
            name: int((np.mean([per_view[v] for v in views], axis=0).argmax(1) == labels).sum())
            for name, views in candidates.items()
        }
    total = {name: sum(row[name] for row in correct.values()) for name in candidates}
    best = max(candidates, key=lambda name: (total[name], -len(candidates[name])))  # ties: fewer views
    return {"correct": correct, "total": total, "best": best, "views": {k: list(v) for k, v in candidates.items()}}


def calibrate_checkpoint(path, data_dir=None, report_dir: Path | None = None, tta: bool = True) -> dict:
    """Fit temperature and threshold on the checkpoint's own validation split, store them in the checkpoint, with
    the test-time views they were fit through (the model recipe's, or none when `tta` is False)."""
    path = model_files.resolve_model_path(path)
    tensors, metadata = checkpoint.read_checkpoint(path)
    model, _ = checkpoint.load_model(path)
    config = metadata["config"]
    spec = dataset_spec(config["dataset"])
    views = test_time_views({"config": config}, tta)  # the recipe's views, not ones stored by an earlier run
    validation = validation_split(metadata, data_dir)
    val_logits, val_labels = logits_and_labels(
        model, validation.images, validation.labels, config["normalization"], views
    )
    temperature = fit_temperature(val_logits, val_labels)
    val_confidence = torch.softmax(val_logits / temperature, 1).max(1).values.numpy()
    threshold = float(np.quantile(val_confidence, 1 - TARGET_COVERAGE))

    test = load_split("test", data_dir, spec)
    test_logits, test_labels = logits_and_labels(model, test.images, test.labels, config["normalization"], views)
    before = torch.softmax(test_logits, 1).numpy()
    after = torch.softmax(test_logits / temperature, 1).numpy()
    labels = test_labels.numpy()
    correct = after.argmax(1) == labels
    confidence = after.max(1)
    calibration = {
        "temperature": temperature,
        "unsure_threshold": threshold,
        "fit_on": f"validation split ({len(validation)} images, seed {config['seed']})",
        "test_ece_before": expected_calibration_error(before, labels),
        "test_ece_after": expected_calibration_error(after, labels),
        "validation_ece_before": expected_calibration_error(torch.softmax(val_logits, 1).numpy(), val_labels.numpy()),
        "validation_ece_after": expected_calibration_error(
            torch.softmax(val_logits / temperature, 1).numpy(), val_labels.numpy()
        ),
        "test_accuracy": float(correct.mean()),
        "test_error_at_99_coverage": error_at_coverage(confidence, correct, TARGET_COVERAGE),
        "test_coverage_at_threshold": float((confidence >= threshold).mean()),
        "test_error_when_sure": float((~correct[confidence >= threshold]).mean()),
    }
    metadata["calibration"] = calibration
    metadata["inference"] = {"test_time_views": [list(view) for view in views]}
    optimizer_state = checkpoint.optimizer_state(tensors, metadata)
    metadata.pop("optimizer_state", None)
    checkpoint.save_checkpoint(path, model, metadata, optimizer_state)  # a resumable checkpoint stays resumable
    if report_dir is not None:
        report_dir = Path(report_dir)
        write_json_atomic(report_dir / "calibration.json", calibration)
        save_figure_atomic(reliability_figure(before, after, labels), report_dir / "reliability.png")
        save_figure_atomic(risk_coverage_figure(confidence, correct), report_dir / "risk-coverage.png")
    return calibration
