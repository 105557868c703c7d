"""Evaluation: metrics as pure functions of (y_true, y_pred), a checkpoint's test report, and its plots."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from torch import nn

from digitrec import model_files
from digitrec.data.datasets import LabelledImages, dataset_spec, load_split
from digitrec.errors import DigitrecError
from digitrec.fileio import save_figure_atomic, write_json_atomic
from digitrec.images.normalize import to_model_inputs
from digitrec.inference.views import View, average_over_views, model_views
from digitrec.models.registry import model_entry
from digitrec.training import checkpoint

DEFAULT_BATCH_SIZE = 1000
MISCLASSIFIED_GRID_MAX = 100  # digits shown in the misclassified grid (10 x 10)


@torch.inference_mode()
def predict_logits(model: nn.Module, inputs: torch.Tensor, batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """Logits `(N, classes)` of `inputs` `(N, C, H, W)`, in eval mode, batch by batch."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    batches = (model(inputs[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(inputs), batch_size))
    logits = torch.cat(list(batches))
    model.train(was_training)
    return logits


def test_time_views(metadata: dict, enabled: bool = True) -> list[View]:
    """The views a checkpoint is meant to be read with: its recorded ones, else its model's recipe's; [] if off."""
    if not enabled:
        return []
    return model_views(metadata, model_entry(metadata["config"]["model"]).test_time_views)


def logits_over_views(model: nn.Module, inputs: torch.Tensor, views: list[View]) -> torch.Tensor:
    """The model's logits of `inputs` averaged over test-time `views` (the recognizer's own views, in NumPy)."""

    def score(x):
        return predict_logits(model, torch.from_numpy(x)).numpy()

    return torch.from_numpy(average_over_views(score, inputs.numpy(), views))


def checkpoint_logits(model: nn.Module, metadata: dict, inputs: torch.Tensor, tta: bool = True) -> torch.Tensor:
    """Logits of a checkpoint's model, read through its test-time views (unless `tta` is False)."""
    return logits_over_views(model, inputs, test_time_views(metadata, tta))


def accuracy_and_loss(
    model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int = DEFAULT_BATCH_SIZE
) -> tuple[float, float]:
    """(correct / total, mean cross-entropy); accuracy is an exact ratio of integers."""
    logits = predict_logits(model, inputs, batch_size)
    labels = labels.cpu()
    correct = int((logits.argmax(1) == labels).sum())
    return correct / len(labels), F.cross_entropy(logits, labels).item()


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix, JSON-ready."""
    labels = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    correct = int((y_true == y_pred).sum())
    return {
        "accuracy": correct / len(y_true),
        "correct": correct,
        "total": int(len(y_true)),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def confusion_matrix_figure(matrix: np.ndarray, class_names: list[str], title: str) -> Figure:
    figure = Figure(figsize=(7, 6))
    axes = figure.add_subplot()
    # log scale so the off-diagonal errors (tens) are visible beside the diagonal (thousands)
    image = axes.imshow(np.log1p(matrix), cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        if count:
            color = "white" if matrix[row, col] > matrix.max() / 2 else "black"
            axes.text(col, row, str(count), ha="center", va="center", fontsize=7, color=color)
    axes.set_xticks(range(len(class_names)), class_names, rotation=45 if len(max(class_names, key=len)) > 2 else 0)
    axes.set_yticks(range(len(class_names)), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, label="log(1 + count)")
    return figure


def misclassified_figure(images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> Figure:
    """A grid of misclassified images, each titled 'true -> predicted'."""
    wrong = np.flatnonzero(y_true != y_pred)[:MISCLASSIFIED_GRID_MAX]
    columns = 10
    rows = max(1, math.ceil(len(wrong) / columns))
    figure = Figure(figsize=(columns * 1.1, rows * 1.3))
    for slot, index in enumerate(wrong):
        axes = figure.add_subplot(rows, columns, slot + 1)
        axes.imshow(images[index], cmap="gray_r")
        axes.set_title(f"{class_names[y_true[index]]}→{class_names[y_pred[index]]}", fontsize=8)
        axes.axis("off")
    total_wrong = int((y_true != y_pred).sum())
    figure.suptitle(f"misclassified: {total_wrong} (first {len(wrong)} shown, true→predicted)")
    return figure


@dataclass(frozen=True)
class EvaluationReport:
    metrics: dict
    checkpoint: str
    report_dir: Path | None

    def to_json(self) -> dict:
        report_dir = str(self.report_dir) if self.report_dir else None
        return {"checkpoint": self.checkpoint, "report_dir": report_dir} | self.metrics


def test_probabilities(
    model: nn.Module, metadata: dict, data_dir, tta: bool = True
) -> tuple[np.ndarray, LabelledImages]:
    """Softmax probabilities `(N, classes)` of a model on its dataset's test split (or its test subset)."""
    config = metadata["config"]
    test_split = load_split("test", data_dir, dataset_spec(config["dataset"]))
    if config.get("test_subset"):
        test_split = test_split.subset(np.arange(config["test_subset"]))
    logits = checkpoint_logits(
        model, metadata, torch.from_numpy(to_model_inputs(test_split.images, config["normalization"])), tta
    )
    return torch.softmax(logits, 1).numpy(), test_split


def evaluate_checkpoint(
    paths: str | Path | list,
    data_dir: str | Path | None = None,
    report_dir: str | Path | None = None,
    tta: bool = True,
) -> EvaluationReport:
    """Test-set metrics of a checkpoint, or of an ensemble (mean of softmax) of several; with `report_dir`, also
    the confusion matrix (PNG + JSON) and a grid of the misclassified digits. Each model is read through its
    test-time views unless `tta` is False."""
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    members = [checkpoint.load_model(path) for path in paths]
    outputs = [test_probabilities(model, metadata, data_dir, tta) for model, metadata in members]
    test_split = outputs[0][1]
    if any(len(split) != len(test_split) for _, split in outputs):
        raise DigitrecError("ensemble members were evaluated on test sets of different sizes")
    y_pred = np.mean([probabilities for probabilities, _ in outputs], axis=0).argmax(1)
    y_true = test_split.labels.astype(np.int64)
    config = members[0][1]["config"]
    class_names = list(dataset_spec(config["dataset"]).class_names)
    name = config["model"] if len(members) == 1 else f"ensemble of {len(members)} ({config['model']}, ...)"
    views = {len(test_time_views(metadata, tta)) for _, metadata in members}
    metrics = classification_metrics(y_true, y_pred, class_names) | {"model": name, "test_time_views": max(views)}
    if report_dir is not None:
        write_evaluation_report(Path(report_dir), metrics, test_split.images, y_true, y_pred, class_names)
    return EvaluationReport(metrics, ", ".join(str(model_files.resolve_model_path(p)) for p in paths), report_dir)


def write_evaluation_report(
    report_dir: Path, metrics: dict, images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, class_names: list
) -> None:
    write_json_atomic(report_dir / "metrics.json", metrics)
    matrix = np.array(metrics["confusion_matrix"])
    title = f"{metrics['model']}: test accuracy {metrics['accuracy']:.2%}"
    save_figure_atomic(confusion_matrix_figure(matrix, class_names, title), report_dir / "confusion_matrix.png")
    write_json_atomic(report_dir / "confusion_matrix.json", {"labels": class_names, "matrix": matrix.tolist()})
    figure = misclassified_figure(images, y_true, y_pred, class_names)
    save_figure_atomic(figure, report_dir / "misclassified.png")


ECE_BINS = 15  # the usual choice since Guo et al., "On Calibration of Modern Neural Networks" (2017)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Temperature T minimizing the NLL of softmax(logits / T) (temperature scaling); fit on validation data."""
    logits = logits.clone()  # may come from inference mode, which autograd cannot use
    log_temperature = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_temperature], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_temperature.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_temperature.detach().exp())


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            error += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(error)


def risk_coverage(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coverage, error rate among answered, threshold) when answering only the most confident first."""
    order = np.argsort(-confidence, kind="stable")
    answered = np.arange(1, len(order) + 1)
    errors = np.cumsum(~correct[order])
    return answered / len(order), errors / answered, confidence[order]


def error_at_coverage(confidence: np.ndarray, correct: np.ndarray, coverage: float) -> float:
    covered, risk, _ = risk_coverage(confidence, correct)
    return float(risk[np.searchsorted(covered, coverage)])


def reliability_figure(before: np.ndarray, after: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> Figure:
    figure = Figure(figsize=(5, 5))
    axes = figure.add_subplot()
    edges = np.linspace(0, 1, bins + 1)
    for probabilities, name in ((before, "before"), (after, "after")):
        confidence, correct = probabilities.max(1), probabilities.argmax(1) == labels
        centers, accuracies = [], []
        for low, high in zip(edges[:-1], edges[1:], strict=True):
            in_bin = (confidence > low) & (confidence <= high)
            if in_bin.any():
                centers.append(confidence[in_bin].mean())
                accuracies.append(correct[in_bin].mean())
        ece = expected_calibration_error(probabilities, labels, bins)
        axes.plot(centers, accuracies, "o-", label=f"{name} temperature scaling (ECE {ece:.2%})")
    axes.plot([0, 1], [0, 1], "k:", label="perfect calibration")
    axes.set_xlabel("confidence")
    axes.set_ylabel("accuracy")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    return figure


def risk_coverage_figure(confidence: np.ndarray, correct: np.ndarray) -> Figure:
    covered, risk, _ = risk_coverage(confidence, correct)
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    axes.plot(covered * 100, risk * 100)
    at_99 = error_at_coverage(confidence, correct, 0.99)
    axes.axvline(99, color="gray", ls=":")
    axes.annotate(f"{at_99:.3%} error at 99% coverage", (99, at_99 * 100), xytext=(60, risk.max() * 60))
    axes.set_xlabel("coverage % (answers given, most confident first)")
    axes.set_ylabel("error rate % among answers")
    axes.grid(alpha=0.3)
    return figure
