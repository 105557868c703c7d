"""The public API on a real trained checkpoint: inputs of every accepted kind, validation, calibration, ONNX."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from digitrec import Recognizer
from digitrec.errors import DigitrecError
from digitrec.evaluation.calibration import calibrate_checkpoint
from digitrec.training import checkpoint
from digitrec.training.export import export_onnx, onnx_logits, onnx_session_for
from tests.conftest import digit_examples


def test_predict_single_batch_and_files_agree(tiny_checkpoint, mnist_test, tmp_path):
    recognizer = Recognizer.load(tiny_checkpoint)
    images, labels = digit_examples(mnist_test, per_class=3)
    batch = recognizer.predict(images)
    assert len(batch) == 30 and all(0 <= p.digit <= 9 for p in batch)
    assert sum(p.digit == label for p, label in zip(batch, labels, strict=True)) >= 25  # ~95% model
    single = recognizer.predict(images[0])
    assert single.digit == batch[0].digit and abs(sum(single.probabilities) - 1) < 1e-5
    assert single.confidence == max(single.probabilities)

    dark_on_light = tmp_path / "digit.png"  # how people write: dark ink on light paper
    cv2.imwrite(str(dark_on_light), 255 - images[0])
    assert recognizer.predict(dark_on_light).digit == single.digit
    assert recognizer.predict(Image.fromarray(images[0])).digit == single.digit
    as_fraction = recognizer.predict(images[0].astype(np.float32) / 255)
    assert as_fraction.probabilities == pytest.approx(single.probabilities, abs=1e-6)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((27, 28)), "expected a 28x28 image"),
        (np.zeros((2, 3, 28, 28)), "expected a 28x28 image"),
        (np.full((28, 28), np.nan), "non-finite"),
        (np.array([["a"] * 28] * 28), "numeric pixels"),
    ],
)
def test_bad_arrays_are_refused_at_the_edge(tiny_checkpoint, bad, message):
    with pytest.raises(DigitrecError, match=message):
        Recognizer.load(tiny_checkpoint).predict(bad)


def test_bad_files_are_one_line_errors(tiny_checkpoint, tmp_path):
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    recognizer = Recognizer.load(tiny_checkpoint)
    for path in (not_image, empty, tmp_path / "missing.png"):
        with pytest.raises(DigitrecError, match=str(path)):
            recognizer.predict(path)


def test_calibration_is_fit_on_validation_and_used_by_the_recognizer(tiny_checkpoint, mnist_dir, tmp_path):
    path = tmp_path / "model.safetensors"
    shutil.copy(tiny_checkpoint, path)
    calibration = calibrate_checkpoint(path, data_dir=mnist_dir, report_dir=tmp_path / "report")
    assert calibration["temperature"] > 0 and 0 < calibration["unsure_threshold"] < 1
    assert calibration["validation_ece_after"] <= calibration["validation_ece_before"] + 0.005
    assert calibration["test_coverage_at_threshold"] > 0.95
    assert (tmp_path / "report" / "risk-coverage.png").exists()
    _, metadata = checkpoint.read_checkpoint(path)
    assert metadata["calibration"]["temperature"] == calibration["temperature"]
    assert "optimizer_state" in metadata, "calibrating must keep the checkpoint resumable"
    recognizer = Recognizer.load(path)
    assert recognizer.temperature == calibration["temperature"]


def test_onnx_export_matches_torch_on_1000_test_images(tiny_checkpoint, mnist_test, tmp_path):
    import onnxruntime as ort

    from digitrec.evaluation.report import predict_logits
    from digitrec.images.normalize import to_model_inputs

    model, metadata = checkpoint.load_model(tiny_checkpoint)
    inputs = to_model_inputs(mnist_test.images[:1000], metadata["config"]["normalization"])
    path = export_onnx(tiny_checkpoint, tmp_path / "model.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    difference = np.abs(onnx_logits(session, inputs.numpy()) - predict_logits(model, inputs).numpy()).max()
    assert difference <= 1e-4
    in_memory = onnx_session_for(model, metadata)
    assert (
        np.abs(onnx_logits(in_memory, inputs[:10].numpy()) - predict_logits(model, inputs[:10]).numpy()).max() <= 1e-4
    )


def test_onnx_backend_gives_the_same_answers(tiny_checkpoint, mnist_test):
    images = mnist_test.images[:50]
    by_torch = Recognizer.load(tiny_checkpoint).predict(images)
    by_onnx = Recognizer.load(tiny_checkpoint, backend="onnx").predict(images)
    assert [p.digit for p in by_torch] == [p.digit for p in by_onnx]
    assert np.allclose([p.confidence for p in by_torch], [p.confidence for p in by_onnx], atol=1e-4)


def test_shipped_default_model_works_without_training(mnist_test, capsys, mnist_dir, tmp_path):
    """The model inside the package: loads by name, is calibrated, and keeps its measured test accuracy."""
    from digitrec.cli import main

    argv = ["evaluate", "--model", "default", "--json", "--data-dir", str(mnist_dir), "--report-dir", str(tmp_path)]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    # the target; measured 0.9976 (9976/10000) through the 5 test-time views, 0.9968 without them
    assert report["total"] == 10_000 and report["accuracy"] >= 0.997 and report["test_time_views"] == 5
    recognizer = Recognizer.load()
    assert recognizer.temperature != 1.0 and 0.5 < recognizer.unsure_threshold < 1
    images, labels = digit_examples(mnist_test, per_class=5)
    assert [p.digit for p in recognizer.predict(images)] == labels.tolist()


def test_default_model_onnx_matches_torch_on_1000_test_images(mnist_test):
    from digitrec.evaluation.report import predict_logits
    from digitrec.images.normalize import to_model_inputs

    model, metadata = checkpoint.load_model(checkpoint.resolve_model_path("default"))
    inputs = to_model_inputs(mnist_test.images[:1000], metadata["config"]["normalization"])
    session = onnx_session_for(model, metadata)
    assert np.abs(onnx_logits(session, inputs.numpy()) - predict_logits(model, inputs).numpy()).max() <= 1e-4


def test_default_model_reads_every_example_image(capsys):
    """The README's main command: every image in examples/ carries its true digit in its name."""
    from digitrec.cli import main
    from tests.conftest import REPO_ROOT

    assert main(["predict", str(REPO_ROOT / "examples"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) >= 10
    for row in rows:
        expected = int(Path(row["path"]).name.split("-")[1])
        assert row["error"] is None and row["digit"] == expected, row


def test_test_time_views_average_probabilities_and_can_be_switched_off(mnist_test):
    from digitrec.evaluation.report import average_over_views, predict_logits
    from digitrec.images.normalize import to_model_inputs
    from digitrec.training.augment import fixed_affine

    with_views, without = Recognizer.load(), Recognizer.load(tta=False)
    assert len(with_views.views) == 5 and without.views == []
    inputs = to_model_inputs(mnist_test.images[:64], with_views.normalization)
    averaged = torch.softmax(average_over_views(with_views.raw_logits, inputs, with_views.views), 1)
    by_hand = torch.stack(
        [torch.softmax(predict_logits(with_views.model, fixed_affine(inputs, *view)), 1) for view in with_views.views]
    ).mean(0)
    torch.testing.assert_close(averaged, by_hand, atol=1e-5, rtol=0)
    assert torch.equal(average_over_views(without.raw_logits, inputs, []), without.raw_logits(inputs))
    probabilities = with_views.predict_proba(mnist_test.images[:64])
    assert np.allclose(probabilities.sum(1), 1, atol=1e-5)
    assert (probabilities.argmax(1) == mnist_test.labels[:64]).mean() > 0.98


def test_tta_search_counts_validation_images_per_view_set(tiny_checkpoint, mnist_dir, capsys):
    from digitrec.evaluation.calibration import compare_view_sets

    candidates = {"none": [(0.0, 1.0)], "rotate 6": [(0.0, 1.0), (6.0, 1.0), (-6.0, 1.0)]}
    comparison = compare_view_sets([tiny_checkpoint], mnist_dir, candidates)
    counts = comparison["correct"][str(tiny_checkpoint)]
    assert set(counts) == set(candidates) and all(800 < n <= 1000 for n in counts.values())  # 1,000 validation
    assert comparison["best"] == max(candidates, key=lambda name: (counts[name], -len(candidates[name])))
