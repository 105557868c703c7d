"""Training the reader's piece model (`digitrec.reading.pieces`): its data, labels and training loop.

The pieces are the reader's own candidate pieces (`reading.candidate_pieces`) of photo-like strips of MNIST training
digits (`digitrec.synthetic.strips`), each labelled from the strip's record of which digit's ink is where.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from digitrec.errors import DigitrecError
from digitrec.fileio import atomic_path
from digitrec.mnist import TUNING_START
from digitrec.models.registry import MNIST_IMAGE_SIZE, build_model, parameter_count
from digitrec.reading import cuts
from digitrec.reading.cuts import Candidates, candidate_pieces
from digitrec.reading.lines import LineInk, lines_of_ink
from digitrec.reading.pieces import NOT_A_DIGIT, PIECE_CLASSES, piece_inputs, piece_inputs_as_floats
from digitrec.synthetic.strips import READING_CONDITIONS, Strip, render_strip
from digitrec.synthetic.styles import with_flagged_ones
from digitrec.training.checkpoint import model_state, read_checkpoint, save_checkpoint
from digitrec.training.config import PieceTrainConfig

log = logging.getLogger(__name__)


IGNORED = -1  # a piece too close to the line between the two (kept out of training)
# Labels: a piece is digit d when it holds at least WHOLE_DIGIT_SHARE of one digit's ink (as binarized by the reader),
# at most OTHER_DIGIT_SHARE of any other digit's ink and at most FOREIGN_INK_SHARE of its own ink is other digits';
# it is NOT_A_DIGIT when it holds less than PART_DIGIT_SHARE of its main digit, or a real part of a second digit
# (SECOND_DIGIT_SHARE of that digit's ink: a thin "1" run into a "0" is little of the piece's ink but all of the "1"),
# or over FOREIGN_SHARE_NOT_DIGIT of foreign ink; in between, IGNORED.
WHOLE_DIGIT_SHARE = 0.9
PART_DIGIT_SHARE = 0.75
OTHER_DIGIT_SHARE = 0.1
SECOND_DIGIT_SHARE = 0.25
FOREIGN_INK_SHARE = 0.15
FOREIGN_SHARE_NOT_DIGIT = 0.3
OWNER_COVERAGE = 0.3  # a working-image pixel belongs to the digit with the most coverage there, if at least this
# The strips the pieces come from (the photo conditions but "combined", whose perspective moves ink after the digit
# records are made): numbers of 2-6 digits, with no, some or all neighbours touching.
TRAINING_CONDITIONS = [c for c in READING_CONDITIONS if c != "combined"]
STRIP_LENGTHS = (2, 3, 4, 5, 6)
TOUCHING_FRACTIONS = (0.0, 0.3, 0.6, 1.0)
# A line gives ~100 candidate pieces per digit, most of them not a digit; per line, at most this many of those are
# kept per whole-digit piece (drawn at random), so that the model sees enough of both.
NOT_A_DIGIT_PER_DIGIT = 3
# Everything above that shapes the pieces and their classes, and the reader's rules for cutting lines into candidate
# pieces: part of the cache key, so that changing a rule makes new pieces instead of reusing the old ones.
DATA_RULES = (
    (WHOLE_DIGIT_SHARE, PART_DIGIT_SHARE, OTHER_DIGIT_SHARE, SECOND_DIGIT_SHARE, FOREIGN_INK_SHARE),
    (FOREIGN_SHARE_NOT_DIGIT, OWNER_COVERAGE, STRIP_LENGTHS, TOUCHING_FRACTIONS, NOT_A_DIGIT_PER_DIGIT),
    (cuts.SPLIT_WIDTH_FRACTION, cuts.CUT_STEP_FRACTION, cuts.MINIMUM_CUT_STROKES, cuts.CUT_SLOPES),
    (cuts.MIN_PIECE_WIDTH_FRACTION, cuts.MAX_DIGIT_WIDTH_FRACTION, cuts.PIECE_MIN_HEIGHT_FRACTION),
    (cuts.FRAGMENT_AREA_FRACTION,),
)


CACHE_BLOCK_STRIPS = 1000  # pieces are cached in blocks of this many strips: an interrupted run loses one block at most


def to_tensor(inputs: np.ndarray) -> torch.Tensor:
    """(N, 2, 28, 28) uint8 piece views -> the piece model's float inputs, as the reader feeds them."""
    return torch.from_numpy(piece_inputs_as_floats(inputs))


def ink_owners(strip: Strip, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) int at the working image's size: which digit of the strip each pixel's ink belongs to (-1: none)."""
    height, width = shape
    coverage = np.stack(
        [cv2.resize(ink.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA) for ink in strip.digit_ink]
    )
    owners = coverage.argmax(axis=0)
    return np.where(coverage.max(axis=0) >= OWNER_COVERAGE, owners, -1)


def piece_label(owned: np.ndarray, digit_totals: np.ndarray, digits: str) -> int:
    """The class of a piece from the owners of its ink pixels and each digit's ink in the line."""
    counts = np.bincount(owned[owned >= 0], minlength=len(digit_totals))
    if counts.sum() == 0:
        return NOT_A_DIGIT  # ink of no digit: noise, paper texture
    main = int(counts.argmax())
    shares = counts / np.maximum(digit_totals, 1)  # of each digit's ink, how much the piece holds
    share_of_digit, second_digit = shares[main], np.delete(shares, main).max(initial=0.0)
    foreign = 1 - counts[main] / counts.sum()
    if share_of_digit >= WHOLE_DIGIT_SHARE and second_digit <= OTHER_DIGIT_SHARE and foreign <= FOREIGN_INK_SHARE:
        return int(digits[main])
    if share_of_digit < PART_DIGIT_SHARE or second_digit >= SECOND_DIGIT_SHARE or foreign > FOREIGN_SHARE_NOT_DIGIT:
        return NOT_A_DIGIT
    return IGNORED


def line_labels(line: LineInk, candidates: Candidates, owners: np.ndarray, digits: str) -> np.ndarray:
    """The class of each candidate piece of a line, from `owners` (the working image's ink owners)."""
    line_owners = owners[line.y : line.y + line.mask.shape[0], line.x : line.x + line.mask.shape[1]]
    line_owners = np.where(line.mask > 0, line_owners, -1)
    totals = np.bincount(line_owners[line_owners >= 0], minlength=len(digits))
    labels = []
    for (i, _), piece in candidates.pieces.items():
        left = candidates.cuts[i].left_edge(line.mask.shape[0])
        owned = line_owners[:, left : left + piece.shape[1]][piece > 0]
        labels.append(piece_label(owned, totals, digits))
    return np.array(labels, np.int64)


def labelled_pieces(strip: Strip, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The reader's candidate pieces of a strip, as model inputs (N, 2, 28, 28), with their classes (N): every
    piece with a class, or with `rng`, a balanced draw of them (`balanced`, per line). Inputs are made only for the
    pieces kept (making them is most of the work)."""
    found = lines_of_ink(strip.image)
    inputs = [np.zeros((0, 2, MNIST_IMAGE_SIZE, MNIST_IMAGE_SIZE), np.uint8)]
    classes = [np.zeros(0, np.int64)]
    if found is None:
        return inputs[0], classes[0]
    owners = ink_owners(strip, found.shape)
    for line, _ in found.lines:
        candidates = candidate_pieces(line)
        if not candidates.pieces:
            continue
        labels = line_labels(line, candidates, owners, strip.text)
        keep = np.flatnonzero(labels != IGNORED)
        if rng is not None:
            keep = keep[balanced(labels[keep], rng)]
        if len(keep):
            keys = list(candidates.pieces)
            inputs.append(piece_inputs(line, candidates, [keys[k] for k in keep]))
            classes.append(labels[keep])
    return np.concatenate(inputs), np.concatenate(classes)


def piece_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    strips: int | range,
    conditions: list[str],
    seed: int,
    progress: bool = False,
    flagged_ones: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Labelled pieces of seeded strips of the given digits: `strips` strips, or the strips of a range of indices
    (each strip has its own generator, so strips 0-999 are the same whether made in one go or in blocks).
    `flagged_ones`: the share of 1s written with a long flag (`synthetic.styles.flagged_one`)."""
    inputs, classes = [], []
    indices = range(strips) if isinstance(strips, int) else strips
    for index in tqdm(indices, desc="pieces", unit="strip", disable=not progress):
        rng = np.random.default_rng([seed, index])
        length = int(rng.choice(STRIP_LENGTHS))
        touching = float(rng.choice(TOUCHING_FRACTIONS))
        picks = rng.integers(len(labels), size=length)
        condition = conditions[index % len(conditions)]
        digits = with_flagged_ones(images[picks], labels[picks], flagged_ones, rng)
        strip = render_strip(digits, labels[picks], condition, touching, rng)
        strip_inputs, strip_classes = labelled_pieces(strip, rng)
        inputs.append(strip_inputs)
        classes.append(strip_classes)
    return np.concatenate(inputs), np.concatenate(classes)


def balanced(classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of all whole-digit pieces and of at most NOT_A_DIGIT_PER_DIGIT times as many others, in order."""
    digits, others = np.flatnonzero(classes != NOT_A_DIGIT), np.flatnonzero(classes == NOT_A_DIGIT)
    wanted = max(NOT_A_DIGIT_PER_DIGIT * len(digits), NOT_A_DIGIT_PER_DIGIT)
    if len(others) > wanted:
        others = rng.choice(others, wanted, replace=False)
    return np.sort(np.concatenate([digits, others]))


def cached_dataset(cache: Path, make) -> tuple[np.ndarray, np.ndarray]:
    """The dataset from `cache` (.npz) if it is there, else made and written there (atomically)."""
    if cache.exists():
        with np.load(cache) as saved:
            return saved["inputs"], saved["classes"]
    inputs, classes = make()
    with atomic_path(cache) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, inputs=inputs, classes=classes)
    return inputs, classes


@dataclass
class PieceTrainResult:
    checkpoint_path: Path
    history: list[dict]
    validation: dict


def class_counts(classes: np.ndarray) -> dict[str, int]:
    counts = np.bincount(classes, minlength=PIECE_CLASSES)
    return {("not-a-digit" if k == NOT_A_DIGIT else str(k)): int(v) for k, v in enumerate(counts)}


def evaluate_pieces(model: torch.nn.Module, inputs: np.ndarray, classes: np.ndarray) -> dict:
    """Accuracy over the 11 classes, and how well "one whole digit or not" is told apart."""
    model.eval()
    with torch.inference_mode():
        logits = torch.cat([model(to_tensor(inputs[k : k + 1024])) for k in range(0, len(inputs), 1024)])
    predicted = logits.argmax(1).numpy()
    is_digit, said_digit = classes != NOT_A_DIGIT, predicted != NOT_A_DIGIT
    return {
        "pieces": len(classes),
        "accuracy": float((predicted == classes).mean()),
        "whole_digits_kept": float(said_digit[is_digit].mean()) if is_digit.any() else None,
        "not_digits_rejected": float((~said_digit)[~is_digit].mean()) if (~is_digit).any() else None,
    }


def train_piece_model(
    config: PieceTrainConfig,
    train_data: tuple[np.ndarray, np.ndarray],
    validation_data: tuple[np.ndarray, np.ndarray],
    out_path: Path,
    progress: bool = False,
) -> PieceTrainResult:
    """AdamW with a one-cycle schedule over the pieces; the weights written to `out_path` (safetensors + JSON)."""
    torch.manual_seed(config.seed)
    model = build_model(config.model, num_classes=PIECE_CLASSES)
    if config.start_from is not None:
        tensors, metadata = read_checkpoint(config.start_from)
        if metadata.get("num_classes") != PIECE_CLASSES:
            classes = metadata.get("num_classes")
            raise DigitrecError(f"{config.start_from}: not a piece model (it has {classes} classes)")
        model.load_state_dict(model_state(tensors))
    inputs, classes = to_tensor(train_data[0]), torch.from_numpy(train_data[1])
    steps_per_epoch = max(1, len(classes) // config.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, total_steps=config.epochs * steps_per_epoch
    )
    generator = torch.Generator().manual_seed(config.seed)
    history = []
    for epoch in range(config.epochs):
        model.train()
        started, total_loss = time.perf_counter(), 0.0
        order = torch.randperm(len(classes), generator=generator)
        for step in tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}", disable=not progress, leave=False):
            batch = order[step * config.batch_size : (step + 1) * config.batch_size]
            loss = F.cross_entropy(model(inputs[batch]), classes[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item()
        record = {
            "epoch": epoch + 1,
            "train_loss": total_loss / steps_per_epoch,
            "seconds": time.perf_counter() - started,
            **evaluate_pieces(model, *validation_data),
        }
        log.info("piece model %s", record)
        history.append(record)
    scores = ("pieces", "accuracy", "whole_digits_kept", "not_digits_rejected")
    validation = {k: history[-1][k] for k in scores}  # epochs >= 1 (PieceTrainConfig)
    metadata = {
        "config": {"model": config.model},
        "piece_config": asdict(config),
        "num_classes": PIECE_CLASSES,
        "image_size": MNIST_IMAGE_SIZE,
        "parameters": parameter_count(model),
        "training_pieces": class_counts(train_data[1]),
        "validation_pieces": class_counts(validation_data[1]),
        "history": history,
        "validation": validation,
    }
    save_checkpoint(out_path, model, metadata)
    return PieceTrainResult(out_path, history, validation)


def make_piece_model(
    config: PieceTrainConfig, out_path: Path, cache_dir: Path, data_dir=None, progress: bool = False
) -> PieceTrainResult:
    """Pieces of strips of MNIST training digits 0-54,999 (training) and of the tuning digits 55,000-59,999
    (validation), cached as .npz in `cache_dir` (blocks of CACHE_BLOCK_STRIPS strips) so that a rerun or a larger
    run makes only what is missing; then the model."""
    from digitrec.data.datasets import load_split

    train = load_split("train", data_dir)
    flags = f"-flagged{config.flagged_ones}" if config.flagged_ones else ""  # earlier caches keep their names
    key = hash_text(f"seed{config.seed}-{'-'.join(config.conditions)}-rules{DATA_RULES}{flags}")
    blocks = []
    for start in range(0, config.training_strips, CACHE_BLOCK_STRIPS):
        block = range(start, min(start + CACHE_BLOCK_STRIPS, config.training_strips))
        blocks.append(
            cached_dataset(
                cache_dir / f"train-{block.start}-{block.stop}-{key}.npz",
                lambda block=block: piece_dataset(
                    train.images[:TUNING_START],
                    train.labels[:TUNING_START],
                    block,
                    config.conditions,
                    config.seed,
                    progress,
                    config.flagged_ones,
                ),
            )  # fmt: skip
        )
    training = (np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks]))
    validation = cached_dataset(
        cache_dir / f"validation-0-{config.validation_strips}-{key}.npz",
        lambda: piece_dataset(train.images[TUNING_START:], train.labels[TUNING_START:], config.validation_strips,
                              config.conditions, config.seed + 1, progress, config.flagged_ones),
    )  # fmt: skip
    log.info("pieces: %s training, %s validation", class_counts(training[1]), class_counts(validation[1]))
    return train_piece_model(config, training, validation, out_path, progress)


def hash_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]
