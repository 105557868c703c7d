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
from digitrec.inference.backends import OnnxNetwork
from digitrec.training import checkpoint
from digitrec.training.export import export_onnx
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
    from digitrec.evaluation.report import predict_logits
    from digitrec.images.normalize import to_model_inputs

    model, metadata = checkpoint.load_model(tiny_checkpoint)
    inputs = to_model_inputs(mnist_test.images[:1000], metadata["config"]["normalization"])
    path = export_onnx(tiny_checkpoint, tmp_path / "model.onnx")
    network = OnnxNetwork.from_bytes(str(path))  # the metadata travels inside the ONNX file
    assert network.metadata["config"] == metadata["config"] and network.metadata["image_size"] == 28
    difference = np.abs(network.logits(inputs) - predict_logits(model, torch.from_numpy(inputs)).numpy()).max()
    assert difference <= 1e-4
    exported = Recognizer.load(path)  # an exported ONNX file is a model of its own, no torch needed
    by_torch = Recognizer.load(tiny_checkpoint, backend="torch")
    assert exported.predict_proba(mnist_test.images[:50]).argmax(1).tolist() == [
        p.digit for p in by_torch.predict(mnist_test.images[:50])
    ]


def test_onnx_backend_gives_the_same_answers(tiny_checkpoint, mnist_test):
    images = mnist_test.images[:50]
    by_torch = Recognizer.load(tiny_checkpoint, backend="torch").predict(images)
    by_onnx = Recognizer.load(tiny_checkpoint, backend="onnx").predict(images)
    assert [p.digit for p in by_torch] == [p.digit for p in by_onnx]
    assert np.allclose([p.confidence for p in by_torch], [p.confidence for p in by_onnx], atol=1e-4)


def test_an_onnx_file_is_refused_on_the_torch_backend_and_a_foreign_one_everywhere(tmp_path):
    foreign = tmp_path / "foreign.onnx"
    foreign.write_bytes(b"not an onnx model")
    with pytest.raises(DigitrecError, match="not a readable ONNX model"):
        Recognizer.load(foreign)
    with pytest.raises(DigitrecError, match="runs on the onnx backend"):
        Recognizer.load(foreign, backend="torch")


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


def test_shipped_onnx_model_answers_as_the_shipped_checkpoint_on_torch(mnist_test, tmp_path):
    """The shipped classifier runs on onnxruntime by default; torch reading the safetensors twin gives the same
    answers: on 1,000 MNIST test digits and on photo-like images through the whole photo pipeline."""
    from digitrec.synthetic.photos import example_photos

    by_onnx, by_torch = Recognizer.load(), Recognizer.load(backend="torch")
    assert by_onnx.backend == "onnx" and by_torch.backend == "torch"
    assert (by_onnx.temperature, by_onnx.unsure_threshold, by_onnx.views) == (
        by_torch.temperature, by_torch.unsure_threshold, by_torch.views,
    )  # fmt: skip
    onnx_probabilities = by_onnx.predict_proba(mnist_test.images[:1000])
    torch_probabilities = by_torch.predict_proba(mnist_test.images[:1000])
    assert (onnx_probabilities.argmax(1) == torch_probabilities.argmax(1)).all()
    assert np.abs(onnx_probabilities - torch_probabilities).max() <= 1e-4
    for name, photo in example_photos(mnist_test.images, mnist_test.labels, seed=3):
        path = tmp_path / f"{name}.png"
        Image.fromarray(photo).save(path)
        onnx_answer, torch_answer = by_onnx.predict(path), by_torch.predict(path)
        assert onnx_answer.digit == torch_answer.digit, name
        assert abs(onnx_answer.confidence - torch_answer.confidence) <= 1e-4, name


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
    from digitrec.images.normalize import to_model_inputs
    from digitrec.inference.views import affine_view
    from digitrec.numeric import softmax

    with_views, without = Recognizer.load(), Recognizer.load(tta=False)
    assert len(with_views.views) == 5 and without.views == []
    images = mnist_test.images[:64]
    inputs = to_model_inputs(images, with_views.normalization)
    by_hand = np.mean(
        [softmax(with_views.network.logits(affine_view(inputs, *view))) for view in with_views.views], axis=0
    )
    np.testing.assert_allclose(softmax(with_views.logits(images)), by_hand, atol=1e-5)
    np.testing.assert_array_equal(without.logits(images), without.network.logits(inputs))
    probabilities = with_views.predict_proba(images)
    assert np.allclose(probabilities.sum(1), 1, atol=1e-5)
    assert (probabilities.argmax(1) == mnist_test.labels[:64]).mean() > 0.98


def test_tta_search_counts_validation_images_per_view_set(tiny_checkpoint, mnist_dir, capsys):
    from digitrec.evaluation.calibration import compare_view_sets

    candidates = {"none": [(0.0, 1.0)], "rotate 6": [(0.0, 1.0), (6.0, 1.0), (-6.0, 1.0)]}
    comparison = compare_view_sets([tiny_checkpoint], mnist_dir, candidates)
    counts = comparison["correct"][str(tiny_checkpoint)]
    assert set(counts) == set(candidates) and all(800 < n <= 1000 for n in counts.values())  # 1,000 validation
    assert comparison["best"] == max(candidates, key=lambda name: (counts[name], -len(candidates[name])))


HEAVY_MODULES = ("torch", "sklearn", "matplotlib", "scipy")
RECOGNITION_PACKAGES = ("images", "reading", "inference", "serve", "cli")


def test_recognizing_imports_no_torch_scikit_learn_or_matplotlib(tmp_path):
    """`pip install digitrec` has none of them: loading the recognizer, predicting and reading must not need them,
    and neither may importing any module of the recognition flow."""
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    code = f"""
import importlib, pkgutil, sys
import digitrec
recognizer = digitrec.Recognizer.load()
recognizer.predict("{REPO_ROOT / "examples" / "photo-4-clean.png"}")
recognizer.read("{REPO_ROOT / "examples" / "photo-9-combined.jpg"}")
for package in {RECOGNITION_PACKAGES!r}:
    module = importlib.import_module("digitrec." + package)
    for info in pkgutil.walk_packages(module.__path__, module.__name__ + "."):
        importlib.import_module(info.name)
print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_command_whose_extra_is_missing_names_the_extra_in_one_line(tmp_path):
    """Without torch installed (blocked here by an import hook), `digitrec train` says which extra to install."""
    import subprocess
    import sys

    code = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoTorch())
from digitrec.cli import main
sys.exit(main(["train", "--model", "paper-case1", "--epochs", "1", "--out", sys.argv[1]]))
"""
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == "digitrec: error: digitrec train needs torch: pip install 'digitrec[train]'"
    assert not (tmp_path / "run").exists()
