"""Adapting the classifier to one writer or one kind of form from a few labelled examples (`digitrec adapt`).

Each example is an image (or a PDF page) and its label: one digit, or the digits of a number, which the reader
cuts into exactly that many pieces (`reading.alignment`). The shipped classifier (or the base model given) is
fine-tuned on those digits, each seen as the reader sees it (its binarized ink and its gray levels), with the
base model's own augmentation, and with as many MNIST training digits mixed into every epoch, so that what it
already knew is not forgotten. A share of the examples is held out to report whole-label accuracy before and after.

The result is a model folder (`ADAPTED_FILES`): the classifier as ONNX (what `--model DIR` runs) and as a
safetensors checkpoint (to adapt further, or read on torch), the base's piece model, and `card.json` saying what it
was adapted on. The folder is written under a temporary name and renamed when complete: a run that fails or is
interrupted leaves nothing at `--out`.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from digitrec.data.datasets import LabelledImages, load_split
from digitrec.errors import DigitrecError
from digitrec.evaluation.report import accuracy_and_loss
from digitrec.fileio import write_json_atomic
from digitrec.images.files import decode_picture, read_images
from digitrec.images.photo import photo_stages
from digitrec.inference.recognizer import Recognizer
from digitrec.mnist import TUNING_START
from digitrec.model_files import (
    ADAPTED_CARD,
    ADAPTED_CHECKPOINT,
    ADAPTED_CLASSIFIER,
    ADAPTED_PIECES,
    resolve_model_path,
)
from digitrec.reading.alignment import aligned_digits
from digitrec.training import checkpoint
from digitrec.training.config import AdaptConfig, TrainConfig
from digitrec.training.export import export_onnx
from digitrec.training.loop import PreparedData, to_tensors, train_epoch

LABEL_COLUMNS = ("file", "label")
FORGETTING_CHECK_IMAGES = 2000  # MNIST tuning digits (never trained on) read before and after, to see forgetting


@dataclass(frozen=True)
class Example:
    """One labelled image: where it came from (for messages) and its label's digits."""

    source: str  # "labels.tsv row 3 (img/a.png)"
    image: object  # a decoded PIL image
    label: str


@dataclass
class AdaptResult:
    out_dir: Path
    card: dict = field(default_factory=dict)


def read_labels_tsv(path: str | os.PathLike) -> list[Example]:
    """`file` and `label` columns (files relative to the TSV's folder); every problem is one line naming its row."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DigitrecError(f"{path}: cannot read ({exc.strerror or exc})") from None
    rows = list(csv.DictReader(text.splitlines(), delimiter="\t"))
    if not rows:
        raise DigitrecError(f"{path}: no examples (expected a header 'file<TAB>label' and one row per image)")
    missing = [c for c in LABEL_COLUMNS if c not in (rows[0].keys() or [])]
    if missing:
        raise DigitrecError(f"{path}: missing column(s) {', '.join(missing)} (expected 'file<TAB>label')")
    return [example_of_row(path, number, row) for number, row in enumerate(rows, start=2)]


def example_of_row(tsv: Path, row_number: int, row: dict) -> Example:
    name, label = (row.get("file") or "").strip(), (row.get("label") or "").strip()
    where = f"{tsv} row {row_number}"
    if not label.isdigit() or not label.isascii():
        raise DigitrecError(f"{where}: label {label!r} is not a string of digits")
    images = read_images(tsv.parent / name)  # a missing or damaged file is a DigitrecError naming it
    if len(images) != 1:
        raise DigitrecError(f"{where}: {name} holds {len(images)} pages; give one image per row")
    return Example(f"{where} ({name})", images[0].image, label)


def examples_from_corrections(path: str | os.PathLike) -> list[Example]:
    """The corrections stored by `digitrec serve --corrections DB`, as examples."""
    from digitrec.corrections import read_corrections

    corrections = read_corrections(path)
    if not corrections:
        raise DigitrecError(f"{path}: no corrections stored yet")
    return [
        Example(f"{path} correction {c.id}", decode_picture(c.image_png, f"{path} correction {c.id}")[0], c.label)
        for c in corrections
    ]


def example_digits(recognizer: Recognizer, example: Example) -> tuple[np.ndarray, np.ndarray]:
    """The example's digit images `(n, 28, 28)` and their labels: each digit as the reader sees it (binarized and
    gray view); a one-digit example also as `predict` sees it (the photo pipeline), where that finds it."""
    labels = np.array([int(d) for d in example.label], np.int64)
    images = []
    aligned = aligned_digits(example.image, len(example.label), recognizer.piece_scorer_or_default())
    if aligned is not None:
        images += [aligned.binary, aligned.gray]
    if len(example.label) == 1:
        stages = photo_stages(example.image, recognizer.image_size)
        if stages.digit is not None:
            images.append(stages.digit[None])
    if not images:
        raise DigitrecError(f"{example.source}: the reader cannot cut it into {len(example.label)} digit(s)")
    return np.concatenate(images), np.concatenate([labels] * len(images))


def split_examples(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(training, held out): a seeded share of the examples held out, at least one each when there are 2 or more."""
    order = np.random.default_rng(seed).permutation(len(examples))
    held = min(len(examples) - 1, round(fraction * len(examples))) if fraction > 0 and len(examples) > 1 else 0
    held = max(held, 1) if fraction > 0 and len(examples) > 1 else held
    return [examples[i] for i in order[held:]], [examples[i] for i in order[:held]]


def reads_label(recognizer: Recognizer, example: Example) -> bool:
    """Whether the recognizer reads the example's label exactly (digits only; one digit: the photo pipeline)."""
    if len(example.label) == 1:
        try:
            return str(recognizer.predict(example.image).digit) == example.label
        except DigitrecError:
            pass  # a digit the single-digit pipeline refuses: read it as a number of one digit
    return "".join(ch for ch in recognizer.read(example.image).text if ch.isdigit()) == example.label


def label_accuracy(recognizer: Recognizer, examples: list[Example]) -> float | None:
    return sum(reads_label(recognizer, e) for e in examples) / len(examples) if examples else None


def training_mix(digits: np.ndarray, labels: np.ndarray, config: AdaptConfig, data_dir) -> LabelledImages:
    """The user's digits repeated `user_repeats` times and MNIST training digits (0..TUNING_START) beside them."""
    rng = np.random.default_rng(config.seed)
    user = LabelledImages(np.tile(digits, (config.user_repeats, 1, 1)), np.tile(labels, config.user_repeats))
    count = round(config.mnist_per_user_digit * len(user.labels))
    if count == 0:
        return user
    mnist = load_split("train", data_dir)
    chosen = rng.choice(TUNING_START, size=min(count, TUNING_START), replace=False)
    return LabelledImages(
        np.concatenate([user.images, mnist.images[chosen]]), np.concatenate([user.labels, mnist.labels[chosen]])
    )


def fine_tune(base_path: Path, mix: LabelledImages, config: AdaptConfig, progress: bool):
    """The base checkpoint's model trained further on `mix` with its own recipe's augmentation."""
    model, metadata = checkpoint.load_model(base_path)
    base_config = TrainConfig.from_dict(metadata["config"])
    train_config = dataclasses.replace(
        base_config, epochs=config.epochs, learning_rate=config.learning_rate, batch_size=config.batch_size,
        schedule="cosine", seed=config.seed, weight_decay=0.0,
    )  # fmt: skip
    inputs, labels = to_tensors(mix, base_config.normalization)
    data = PreparedData(inputs, labels, inputs[:0], labels[:0], metadata["num_classes"], metadata["image_size"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.0)
    for epoch in range(config.epochs):
        train_epoch(model, optimizer, train_config, data, epoch, progress=progress)
    return model.eval(), metadata


def mnist_tuning_accuracy(model, metadata: dict, data_dir) -> float:
    """Accuracy on MNIST tuning digits the model was not trained on (read once): how much was forgotten."""
    tuning = load_split("train", data_dir).subset(np.arange(TUNING_START, TUNING_START + FORGETTING_CHECK_IMAGES))
    return accuracy_and_loss(model, *to_tensors(tuning, metadata["config"]["normalization"]))[0]


def adapt(
    examples: list[Example], out_dir: str | os.PathLike, config: AdaptConfig | None = None, data_dir=None,
    source: str = "", progress: bool = True,
) -> AdaptResult:  # fmt: skip
    """Adapt `config.base` to `examples`; write the adapted model folder at `out_dir` (only once complete)."""
    config = config or AdaptConfig()
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise DigitrecError(f"{out_dir} already exists: choose another --out (an adapted model is never overwritten)")
    started = time.perf_counter()
    base = Recognizer.load(config.base)
    training, held_out = split_examples(examples, config.holdout_fraction, config.seed)
    pieces = [example_digits(base, e) for e in tqdm(training, desc="cutting examples", disable=not progress)]
    digits, labels = np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces])
    base_path = resolve_model_path(config.base)
    model, metadata = fine_tune(base_path, training_mix(digits, labels, config, data_dir), config, progress)
    base_model, _ = checkpoint.load_model(base_path)
    card = {
        "adapted_from": str(config.base), "adapted_on": source, "examples": len(examples),
        "training_examples": len(training), "held_out_examples": len(held_out),
        "training_digits": sum(len(e.label) for e in training), "labels": sorted({e.label for e in training}),
        "config": dataclasses.asdict(config),
        "mnist_tuning_accuracy_before": mnist_tuning_accuracy(base_model, metadata, data_dir),
        "mnist_tuning_accuracy_after": mnist_tuning_accuracy(model, metadata, data_dir),
    }  # fmt: skip
    partial = out_dir.with_name(f".{out_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        write_model_folder(partial, model, metadata, base_path, card)
        adapted = Recognizer.load(partial)
        card["held_out_accuracy_before"] = label_accuracy(base, held_out)
        card["held_out_accuracy_after"] = label_accuracy(adapted, held_out)
        card["seconds"] = round(time.perf_counter() - started, 1)
        write_json_atomic(partial / ADAPTED_CARD, card)
        os.replace(partial, out_dir)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return AdaptResult(out_dir, card)


def write_model_folder(folder: Path, model, metadata: dict, base_path: Path, card: dict) -> None:
    """The classifier as checkpoint and ONNX, the base's piece model beside it, and the card."""
    metadata = {k: v for k, v in metadata.items() if k != "optimizer_state"} | {"adapted": card}
    checkpoint.save_checkpoint(folder / ADAPTED_CHECKPOINT, model, metadata)
    export_onnx(folder / ADAPTED_CHECKPOINT, folder / ADAPTED_CLASSIFIER)
    base_pieces = base_path.parent / ADAPTED_PIECES if base_path.parent.joinpath(ADAPTED_PIECES).is_file() else None
    shutil.copyfile(base_pieces or resolve_model_path("piece-scorer", ".onnx"), folder / ADAPTED_PIECES)
    (folder / ADAPTED_CARD).write_text(json.dumps(card, indent=2))
