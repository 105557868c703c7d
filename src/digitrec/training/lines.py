"""Training the reader's line model (`digitrec.reading.line_model`): synthetic lines, CTC loss, one checkpoint per
epoch (a rerun with the same folder resumes after the last finished epoch), ONNX for the reader.

Lines are drawn from MNIST training digits 0-54,999 (`synthetic.line_masks`); the validation lines from the tuning
digits 55,000-59,999, so a line's exact-match rate on them is measured on digits the model never saw.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from digitrec.errors import DigitrecError
from digitrec.fileio import atomic_path, write_bytes_atomic
from digitrec.mnist import TUNING_START, WHITE
from digitrec.model_files import ONNX_INPUT, ONNX_OUTPUT
from digitrec.models.registry import build_model, parameter_count
from digitrec.reading.line_model import BLANK, LINE_CLASSES, LINE_INPUT_HEIGHT, LINE_WIDTH_STEP, line_input
from digitrec.reading.lines import lines_of_ink
from digitrec.synthetic.cheque_fields import cheque_field
from digitrec.synthetic.line_masks import LineMask, synthetic_line
from digitrec.training.checkpoint import model_state, optimizer_state, read_checkpoint, save_checkpoint
from digitrec.training.config import LineTrainConfig
from digitrec.training.export import embedded_metadata, traced_onnx

log = logging.getLogger(__name__)

CACHE_BLOCK_LINES = 10_000  # lines are cached in blocks of this many: an interrupted run loses one block at most
# A line scanned as a cheque field (`synthetic.cheque_fields`) is learnt as the reader's ink stage sees it, unless
# that stage lost what the label says: the line's ink must come out as one line spanning this share of its columns
# (not a first or last digit dropped), and not as a blot (a pattern as dark as the ink, filled in)
READER_SPAN_SHARE = 0.85
READER_BLOT_FILL = 0.6  # of the line's box inked
# A cache block of a run's lines is drawn with the generator seeded `seed * BLOCK_SEED_STRIDE + offset + start`
# (`block_calls`): the training lines from offset 0, the plain lines from PLAIN_SEED_OFFSET, so that neither collides
# with the other while each has fewer than 500,000 lines, nor with another seed's (the stride a prime above both)
BLOCK_SEED_STRIDE = 1_000_003
PLAIN_SEED_OFFSET = 500_000
CHECKPOINT_FILE = "line-model.safetensors"
ONNX_FILE = "line-model.onnx"


class LineSet:
    """Line inputs of many widths, stored as one (LINE_INPUT_HEIGHT, total width) uint8 array with offsets."""

    def __init__(self, columns: np.ndarray, widths: np.ndarray, texts: list[str]) -> None:
        self.columns, self.widths, self.texts = columns, widths, texts
        self.starts = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.widths)

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs (N, 1, 40, widest) float, targets (sum of lengths), input steps (N), target lengths (N))."""
        widest = int(self.widths[indices].max())
        inputs = np.zeros((len(indices), 1, LINE_INPUT_HEIGHT, widest), np.float32)
        for row, index in enumerate(indices):
            start, width = self.starts[index], self.widths[index]
            inputs[row, 0, :, :width] = self.columns[:, start : start + width] / WHITE
        texts = [self.texts[i] for i in indices]
        targets = torch.tensor([int(ch) for text in texts for ch in text], dtype=torch.long)
        steps = torch.from_numpy(self.widths[indices] // LINE_WIDTH_STEP)
        return torch.from_numpy(inputs), targets, steps, torch.tensor([len(t) for t in texts])

    def save(self, path: Path) -> None:
        with atomic_path(path) as temporary, open(temporary, "wb") as handle:
            np.savez(handle, columns=self.columns, widths=self.widths, texts=np.array(self.texts))

    @classmethod
    def load(cls, path: Path) -> LineSet:
        with np.load(path) as data:
            return cls(data["columns"], data["widths"], [str(t) for t in data["texts"]])

    @classmethod
    def concatenate(cls, sets: list[LineSet]) -> LineSet:
        return cls(
            np.concatenate([s.columns for s in sets], axis=1),
            np.concatenate([s.widths for s in sets]),
            [t for s in sets for t in s.texts],
        )


def as_the_reader_sees_it(line: LineMask, rng: np.random.Generator) -> tuple[np.ndarray, float] | None:
    """`line` scanned as a cheque field and found again by the reader's ink stage: (its ink mask, the digit height
    the reader measured), in the scan's pixels; None where that stage lost part of it (see READER_SPAN_SHARE)."""
    scan, (first, end) = cheque_field(line.mask, line.height, rng)
    found = lines_of_ink(scan)
    if found is None or len(found.lines) != 1:
        return None
    ink = found.lines[0][0]
    left, right = ink.x * found.scale, (ink.x + ink.mask.shape[1]) * found.scale
    covered = min(right, end) - max(left, first)
    if covered < READER_SPAN_SHARE * (end - first) or (ink.mask > 0).mean() > READER_BLOT_FILL:
        return None
    return ink.mask, ink.height


def make_lines(
    images: np.ndarray,
    labels: np.ndarray,
    count: int,
    seed: int,
    progress: bool = False,
    styles: str = LineTrainConfig.styles,
    scanned_share: float = 0.0,
) -> LineSet:
    """`count` seeded synthetic lines (lines that drew no digit are drawn again) as model inputs, written in
    `styles`; `scanned_share` of them scanned as cheque fields and binarized by the reader (`as_the_reader_sees_it`;
    a line that stage loses part of is drawn again)."""
    rng = np.random.default_rng(seed)
    inputs, texts = [], []
    with tqdm(total=count, desc="drawing lines", disable=not progress, leave=False) as bar:
        while len(texts) < count:
            line = synthetic_line(images, labels, rng, styles)
            if not line.text:
                continue
            mask, height = line.mask, line.height
            if scanned_share and rng.random() < scanned_share:
                seen = as_the_reader_sees_it(line, rng)
                if seen is None:
                    continue
                mask, height = seen
            inputs.append(np.round(line_input(mask, height) * WHITE).astype(np.uint8))
            texts.append(line.text)
            bar.update()
    return LineSet(np.concatenate(inputs, axis=1), np.array([x.shape[1] for x in inputs], np.int64), texts)


def width_batches(lines: LineSet, batch_size: int, generator: np.random.Generator) -> list[np.ndarray]:
    """Batches of lines of similar width (little padding), in a random order; lines shuffled within a width."""
    order = np.lexsort((generator.random(len(lines)), lines.widths))
    batches = [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
    return [batches[k] for k in generator.permutation(len(batches))]


def greedy_texts(log_probs: torch.Tensor, steps: torch.Tensor) -> list[str]:
    best = log_probs.argmax(dim=2).numpy()
    texts = []
    for row, count in zip(best, steps.tolist(), strict=True):
        path = row[:count]
        keep = (path != BLANK) & np.concatenate([[True], path[1:] != path[:-1]])
        texts.append("".join(str(d) for d in path[keep]))
    return texts


def evaluate_lines(model: torch.nn.Module, lines: LineSet, batch_size: int = 256) -> dict:
    """Exact-match rate of the best path, and the CTC loss, over `lines`."""
    model.eval()
    right, total_loss = 0, 0.0
    with torch.inference_mode():
        for batch in width_batches(lines, batch_size, np.random.default_rng(0)):
            inputs, targets, steps, lengths = lines.batch(batch)
            log_probs = model(inputs)
            total_loss += float(ctc_loss(log_probs, targets, steps, lengths)) * len(batch)
            right += sum(t == lines.texts[i] for t, i in zip(greedy_texts(log_probs, steps), batch, strict=True))
    return {"lines": len(lines), "exact": right / len(lines), "loss": total_loss / len(lines)}


def ctc_loss(log_probs: torch.Tensor, targets, steps, lengths) -> torch.Tensor:
    return F.ctc_loss(log_probs.transpose(0, 1), targets, steps, lengths, blank=BLANK, zero_infinity=True)


def train_line_model(
    config: LineTrainConfig, training: LineSet, validation: LineSet, out_dir: Path, progress: bool = False
) -> dict:
    """AdamW, one-cycle, CTC; a checkpoint (with the optimizer) after every epoch; resumes from one found, else
    starts from `config.init`'s weights where given."""
    torch.manual_seed(config.seed)
    model = build_model(config.model, num_classes=LINE_CLASSES)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(training) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, total_steps=config.epochs * steps_per_epoch
    )
    checkpoint_path, history = out_dir / CHECKPOINT_FILE, []
    if checkpoint_path.exists():
        tensors, metadata = read_checkpoint(checkpoint_path)
        if metadata.get("line_config") != asdict(config):
            raise DigitrecError(f"{checkpoint_path}: made with another config; choose another --out")
        model.load_state_dict(model_state(tensors))
        optimizer.load_state_dict(optimizer_state(tensors, metadata))
        history = metadata["history"]
        for _ in range(len(history) * steps_per_epoch):
            schedule.step()
    elif config.init:
        model.load_state_dict(model_state(initial_weights(Path(config.init))))
    for epoch in range(len(history), config.epochs):
        model.train()
        started, total_loss = time.perf_counter(), 0.0
        batches = width_batches(training, config.batch_size, np.random.default_rng((config.seed, epoch)))
        for batch in tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False):
            inputs, targets, steps, lengths = training.batch(batch)
            loss = ctc_loss(model(inputs), targets, steps, lengths)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item()
        record = {"epoch": epoch + 1, "train_loss": total_loss / len(batches),
                  "seconds": time.perf_counter() - started, **evaluate_lines(model, validation)}  # fmt: skip
        log.info("line model %s", record)
        history.append(record)
        metadata = {
            "config": {"model": config.model},
            "line_config": asdict(config),
            "num_classes": LINE_CLASSES,
            "image_size": LINE_INPUT_HEIGHT,
            "parameters": parameter_count(model),
            "history": history,
        }
        save_checkpoint(checkpoint_path, model, metadata, optimizer.state_dict())
    card = {"config": {"model": config.model}, "num_classes": LINE_CLASSES, "image_size": LINE_INPUT_HEIGHT,
            "history": history, "line_config": asdict(config)}  # fmt: skip
    export_line_onnx(model, out_dir / ONNX_FILE, card)
    return {"history": history, "onnx": str(out_dir / ONNX_FILE)}


def initial_weights(path: Path) -> dict:
    """The tensors of a line model's checkpoint to start from (`LineTrainConfig.init`)."""
    if not path.is_file():
        raise DigitrecError(f"{path}: no such line model checkpoint to start from (a {CHECKPOINT_FILE})")
    tensors, metadata = read_checkpoint(path)
    if metadata.get("num_classes") != LINE_CLASSES or "line_config" not in metadata:
        raise DigitrecError(f"{path}: not a line model's checkpoint")
    return tensors


def export_line_onnx(model: torch.nn.Module, path: Path, metadata: dict) -> Path:
    """The line model as ONNX, with dynamic batch and width axes and its history in the metadata."""
    example = torch.zeros(1, 1, LINE_INPUT_HEIGHT, 64)
    axes = {ONNX_INPUT: {0: "batch", 3: "width"}, ONNX_OUTPUT: {0: "batch", 1: "steps"}}
    write_bytes_atomic(path, embedded_metadata(traced_onnx(model, example, axes), metadata))
    return path


def drawing_key(config: LineTrainConfig) -> str:
    """A hash of how lines are drawn and fed (the source of `synthetic.line_masks`, `synthetic.styles` and
    `reading.line_model`, and the config's styles and scanned share; scanned lines also hash
    `synthetic.cheque_fields` and the reader's ink stage, `reading.lines`, `images.ink`, `images.photo`,
    `images.ruled_lines`): part of the cache's file names, so that changing a rule draws new lines instead of
    reusing the old ones."""
    import hashlib
    import inspect

    from digitrec.images import ink, photo, ruled_lines
    from digitrec.reading import line_model, lines
    from digitrec.synthetic import cheque_fields, line_masks, styles

    modules = [line_masks, styles, line_model]
    if config.scanned_share:
        modules += [cheque_fields, lines, ink, photo, ruled_lines]
    source = "".join(inspect.getsource(module) for module in modules)
    if (config.styles, config.scanned_share) != (LineTrainConfig.styles, 0.0):  # the key of lines drawn before these
        source += f"styles={config.styles} scanned={config.scanned_share}"
    return hashlib.sha256(source.encode()).hexdigest()[:12]


def draw_block(path: Path, images: np.ndarray, labels: np.ndarray, count: int, seed: int, draw: dict) -> Path:
    """One cache block of lines, drawn and written to `path` (atomically)."""
    make_lines(images, labels, count, seed, **draw).save(path)
    return path


def draw_blocks(calls: list[tuple], workers: int, progress: bool) -> None:
    """`draw_block` for each of `calls` (its arguments: the blocks not cached yet), in `workers` processes."""
    with ProcessPoolExecutor(max_workers=workers) if workers > 1 and len(calls) > 1 else nullcontext() as pool:
        drawn = pool.map(draw_block, *zip(*calls, strict=True)) if pool else (draw_block(*call) for call in calls)
        for _ in tqdm(drawn, total=len(calls), desc="drawing blocks of lines", disable=not progress, leave=False):
            pass


def make_line_model(
    config: LineTrainConfig, out_dir: Path, cache_dir: Path, data_dir=None, progress=False, drawing_workers: int = 1
) -> dict:
    """Synthetic lines (cached in blocks in `cache_dir`, drawn by `drawing_workers` processes): `config`'s training
    lines and its plain ones, then the model in `out_dir`."""
    from digitrec.data.datasets import load_split

    train = load_split("train", data_dir)
    training_digits = train.images[:TUNING_START], train.labels[:TUNING_START]
    tuning_digits = train.images[TUNING_START:], train.labels[TUNING_START:]
    key, draw = drawing_key(config), {"styles": config.styles, "scanned_share": config.scanned_share}
    calls = block_calls(cache_dir, "lines", key, config.training_lines, config.seed, training_digits, draw)
    if config.plain_lines:
        plain_key = drawing_key(replace(config, styles=config.plain_styles, scanned_share=0.0))
        calls += block_calls(cache_dir, "plain-lines", plain_key, config.plain_lines, config.seed, training_digits,
                             {"styles": config.plain_styles}, PLAIN_SEED_OFFSET)  # fmt: skip
    validation = cache_dir / f"validation-{config.validation_lines}-seed{config.seed}-{key}.npz"
    calls.append((validation, *tuning_digits, config.validation_lines, config.seed + 7, draw))
    cache_dir.mkdir(parents=True, exist_ok=True)
    draw_blocks([call for call in calls if not call[0].exists()], drawing_workers, progress)
    training = LineSet.concatenate([LineSet.load(call[0]) for call in calls[:-1]])
    out_dir.mkdir(parents=True, exist_ok=True)
    return train_line_model(config, training, LineSet.load(validation), out_dir, progress)


def block_calls(
    cache_dir: Path, name: str, key: str, count: int, seed: int, digits: tuple, draw: dict, offset: int = 0
) -> list[tuple]:
    """`draw_block`'s arguments for `count` lines in cache blocks (`name`-START-STOP-seedSEED-KEY.npz); block
    START's lines are drawn with the generator seeded `SEED * BLOCK_SEED_STRIDE + offset + START`."""
    calls = []
    for start in range(0, count, CACHE_BLOCK_LINES):
        stop = min(start + CACHE_BLOCK_LINES, count)
        path = cache_dir / f"{name}-{start}-{stop}-seed{seed}-{key}.npz"
        calls.append((path, *digits, stop - start, seed * BLOCK_SEED_STRIDE + offset + start, draw))
    return calls
