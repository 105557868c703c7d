"""Adapting to one writer (`digitrec adapt`): examples from a TSV or from stored corrections, bad rows as one-line
errors with nothing written, the adapted folder used by every --model, a foreign folder refused."""

from __future__ import annotations

import contextlib
import io
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from digitrec import Recognizer
from digitrec.cli import main
from digitrec.corrections import add_correction, read_corrections
from digitrec.errors import DigitrecError

WRITER_SLANT_DEG = 60  # this writer's digits lean 60°: the shipped model reads about half of them (measured 50/100)


def writers_digit(image: np.ndarray) -> np.ndarray:
    """An MNIST digit as this writer writes it: dark ink on white paper, 112 px tall, turned by WRITER_SLANT_DEG."""
    big = cv2.resize(255 - image, (112, 112), interpolation=cv2.INTER_CUBIC)
    big = cv2.copyMakeBorder(big, 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=255)
    turn = cv2.getRotationMatrix2D((96, 96), WRITER_SLANT_DEG, 1.0)
    return cv2.warpAffine(big, turn, (192, 192), borderValue=255)


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def readable_digits(mnist, start: int, count: int) -> list[int]:
    """Indices of digits other than 1 (a 1 turned 60° is still a 1 to anyone; the others are what changes)."""
    return [i for i in range(start, start + 3 * count) if mnist.labels[i] != 1][:count]


def right_answers(recognizer: Recognizer, mnist, indices: list[int]) -> int:
    right = 0
    for i in indices:
        with contextlib.suppress(DigitrecError):  # a digit refused counts as not read
            right += recognizer.predict(Image.fromarray(writers_digit(mnist.images[i]))).digit == mnist.labels[i]
    return right


@pytest.fixture
def torch_threads_kept():
    """`--threads 1` below sets torch's threads for the whole process: put them back, so that the tests after
    this one (most of the suite: this file runs first) are not left on one thread."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_corrections_of_a_writer_teach_the_adapted_model_to_read_that_writer(
    tmp_path, mnist_train, mnist_test, mnist_dir, capsys, torch_threads_kept
):
    database = tmp_path / "corrections.db"
    for i in readable_digits(mnist_train, 0, 60):
        add_correction(database, png(writers_digit(mnist_train.images[i])), str(mnist_train.labels[i]), "image")
    assert len(read_corrections(database)) == 60
    out = tmp_path / "writer-model"
    # 2 epochs: 34 of the unseen 40 read after, 22 before (3 epochs: 36, for 14 s more on 2 busy cores)
    argv = ["adapt", "--from", str(database), "--out", str(out), "--epochs", "2", "--threads", "1", "--json"]
    assert main([*argv, "--data-dir", str(mnist_dir)]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["training_examples"] + card["held_out_examples"] == 60
    assert card["mnist_tuning_accuracy_after"] >= 0.98  # what it knew is kept (measured 0.99x)
    assert json.loads((out / "card.json").read_text())["adapted_on"] == str(database)
    unseen = readable_digits(mnist_test, 0, 40)
    adapted = Recognizer.load(out)
    before, after = right_answers(Recognizer.load(), mnist_test, unseen), right_answers(adapted, mnist_test, unseen)
    assert after >= before + 8, (before, after)  # an unseen 40 of this writer's digits
    path = tmp_path / "digit.png"
    Image.fromarray(writers_digit(mnist_test.images[unseen[0]])).save(path)
    assert main(["predict", str(path), "--model", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["digit"] == adapted.predict(path).digit
    from fastapi.testclient import TestClient

    from digitrec.serve.app import create_app

    with TestClient(create_app(out)) as client:  # what `digitrec serve --model DIR` runs
        upload = {"file": ("digit.png", path.read_bytes(), "image/png")}
        assert client.post("/v1/predict", files=upload).json()["digit"] == adapted.predict(path).digit


def write_tsv(folder, rows: list[tuple[str, str]]) -> str:
    path = folder / "labels.tsv"
    path.write_text("file\tlabel\n" + "".join(f"{name}\t{label}\n" for name, label in rows))
    return str(path)


@pytest.mark.parametrize(
    "rows, message",
    [
        ([("seven.png", "7"), ("missing.png", "3")], "missing.png: no such file"),
        ([("seven.png", "7a")], "row 2: label '7a' is not a string of digits"),
        ([("seven.png", "12345678")], "row 2 (seven.png): the reader cannot cut it into 8 digit(s)"),
        ([], "no examples"),
    ],
    ids=["missing file", "label not digits", "label too long to align", "empty"],
)
def test_bad_examples_are_one_line_errors_and_nothing_is_written(tmp_path, mnist_test, capsys, rows, message):
    Image.fromarray(writers_digit(mnist_test.images[0])).save(tmp_path / "seven.png")
    out = tmp_path / "model"
    assert main(["adapt", write_tsv(tmp_path, rows), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists() and not any(p.name.startswith(".model") for p in tmp_path.iterdir())


def test_a_corrupt_or_foreign_model_folder_is_a_one_line_error(tmp_path, capsys):
    image = tmp_path / "x.png"
    Image.new("L", (64, 64), 255).save(image)
    empty = tmp_path / "empty"
    empty.mkdir()
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "classifier.onnx").write_bytes(b"\x08\x01garbage")
    for folder, message in ((empty, "not a model folder"), (damaged, "not a readable ONNX model")):
        assert main(["read", str(image), "--model", str(folder)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
