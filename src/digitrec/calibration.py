"""Calibrated confidence for a checkpoint: temperature scaling and an "unsure" threshold, fit on validation data.

The test set is only used to report how well the calibration holds (ECE, risk-coverage), never to fit it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from digitrec import checkpoint
from digitrec.data import dataset_spec, load_split, training_and_validation
from digitrec.evaluate import (
    error_at_coverage,
    expected_calibration_error,
    fit_temperature,
    predict_logits,
    reliability_figure,
    risk_coverage_figure,
)
from digitrec.fileio import save_figure_atomic, write_json_atomic
from digitrec.preprocess import to_model_inputs

TARGET_COVERAGE = 0.99  # the unsure threshold answers this share of validation images


def logits_and_labels(model, images: np.ndarray, labels: np.ndarray, normalization: str):
    return predict_logits(model, to_model_inputs(images, normalization)), torch.from_numpy(labels.astype(np.int64))


def calibrate_checkpoint(path, data_dir=None, report_dir: Path | None = None) -> dict:
    """Fit temperature and threshold on the checkpoint's own validation split, store them in the checkpoint."""
    path = checkpoint.resolve_model_path(path)
    tensors, metadata = checkpoint.read_checkpoint(path)
    model, _ = checkpoint.load_model(path)
    config = metadata["config"]
    spec = dataset_spec(config["dataset"])
    _, validation = training_and_validation(
        spec, data_dir, config["seed"], config["validation_size"], config.get("train_subset", 0)
    )
    val_logits, val_labels = logits_and_labels(model, validation.images, validation.labels, config["normalization"])
    temperature = fit_temperature(val_logits, val_labels)
    val_confidence = torch.softmax(val_logits / temperature, 1).max(1).values.numpy()
    threshold = float(np.quantile(val_confidence, 1 - TARGET_COVERAGE))

    test = load_split("test", data_dir, spec)
    test_logits, test_labels = logits_and_labels(model, test.images, test.labels, config["normalization"])
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
    optimizer_state = checkpoint.optimizer_state(tensors, metadata)
    metadata.pop("optimizer_state", None)
    checkpoint.save_checkpoint(path, model, metadata, optimizer_state)  # a resumable checkpoint stays resumable
    if report_dir is not None:
        report_dir = Path(report_dir)
        write_json_atomic(report_dir / "calibration.json", calibration)
        save_figure_atomic(reliability_figure(before, after, labels), report_dir / "reliability.png")
        save_figure_atomic(risk_coverage_figure(confidence, correct), report_dir / "risk-coverage.png")
    return calibration
