"""Reading a whole line of digits at once: the line's ink scaled to a fixed digit height, a convolutional network
over it giving, for each column step, the probability of each digit or of none ("blank"), and CTC's best path.

This reader cuts nothing: it reads touching digits, flagged 1s and small trailing zeros as the line shows them, as
the published leaders on cheque amounts do (CNN + CTC). The cut-and-score reader (`segmentation`) gives each digit
its box; `reader.read_number` uses this one to check it (see there).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from digitrec.mnist import MNIST_BOX_PX, WHITE

LINE_DIGIT_PX = MNIST_BOX_PX  # the line's digit height H is scaled to MNIST's digit box (20 px) ...
LINE_INPUT_HEIGHT = 40  # ... in a band this high, the ink's centre of mass in its middle: room for tall digits
LINE_PAD_PX = 8  # blank columns on each side of the ink (the network sees the line's ends)
LINE_WIDTH_STEP = 4  # the network's columns per output step (its width stride)
BLANK = 10  # output class 10: no digit at this step (CTC's blank); 0-9 are the digits
LINE_CLASSES = 11

# A line model: (N, 1, LINE_INPUT_HEIGHT, W) float32 inputs -> (N, W / LINE_WIDTH_STEP, LINE_CLASSES) log-probs.
LineModel = Callable[[np.ndarray], np.ndarray]


def line_input(mask: np.ndarray, height: float) -> np.ndarray:
    """A line's ink (uint8 0/255, its box) with digit height `height` -> the model's input: float32 0..1 of
    LINE_INPUT_HEIGHT rows, the ink scaled to LINE_DIGIT_PX per H, centred on its centre of mass, padded."""
    scale = LINE_DIGIT_PX / max(height, 1.0)
    width = max(1, round(mask.shape[1] * scale))
    rows = max(1, round(mask.shape[0] * scale))
    ink = cv2.resize(mask, (width, rows), interpolation=cv2.INTER_AREA).astype(np.float32) / WHITE
    total = ink.sum()
    centre = float((ink.sum(axis=1) * np.arange(rows)).sum() / total) if total > 0 else rows / 2
    top = round(LINE_INPUT_HEIGHT / 2 - centre)  # where the ink's first row lands in the band
    band = np.zeros((LINE_INPUT_HEIGHT, width), np.float32)
    source_top, target_top = max(0, -top), max(0, top)
    count = min(rows - source_top, LINE_INPUT_HEIGHT - target_top)
    if count > 0:
        band[target_top : target_top + count] = ink[source_top : source_top + count]
    padded_width = -(-(width + 2 * LINE_PAD_PX) // LINE_WIDTH_STEP) * LINE_WIDTH_STEP
    padded = np.zeros((LINE_INPUT_HEIGHT, padded_width), np.float32)
    padded[:, LINE_PAD_PX : LINE_PAD_PX + width] = band
    return padded


def batch_inputs(inputs: list[np.ndarray]) -> np.ndarray:
    """Line inputs of different widths -> one (N, 1, LINE_INPUT_HEIGHT, widest) batch, padded with blank columns."""
    widest = max(x.shape[1] for x in inputs)
    batch = np.zeros((len(inputs), 1, LINE_INPUT_HEIGHT, widest), np.float32)
    for index, x in enumerate(inputs):
        batch[index, 0, :, : x.shape[1]] = x
    return batch


def best_path(log_probs: np.ndarray) -> tuple[str, float]:
    """CTC's best path of one line's (T, LINE_CLASSES) log-probs: repeats merged, blanks dropped; with the path's
    probability (the product of its steps' top probabilities)."""
    return path_text(log_probs.argmax(axis=1)), float(np.exp(log_probs.max(axis=1).sum()))


def path_text(steps: np.ndarray) -> str:
    """The text of a CTC path (the class of each step): repeats merged, blanks dropped."""
    keep = (steps != BLANK) & np.concatenate([[True], steps[1:] != steps[:-1]])
    return "".join(str(d) for d in steps[keep])


def text_log_likelihood(log_probs: np.ndarray, text: str) -> float:
    """log P(text | line) under CTC (the sum over every alignment of `text` to the steps; -inf when the line is
    too short for it): how much the line model believes another reader's answer."""
    labels = [int(ch) for ch in text]
    extended = [BLANK]
    for label in labels:
        extended += [label, BLANK]
    steps, states = log_probs.shape[0], len(extended)
    alpha = np.full(states, -np.inf)
    alpha[0] = log_probs[0, BLANK]
    if states > 1:
        alpha[1] = log_probs[0, extended[1]]
    can_skip = np.array([s >= 2 and extended[s] != BLANK and extended[s] != extended[s - 2] for s in range(states)])
    emissions = log_probs[:, extended]
    for t in range(1, steps):
        step = np.concatenate([[-np.inf], alpha])[:states]  # from the state before
        skip = np.where(can_skip, np.concatenate([[-np.inf, -np.inf], alpha])[:states], -np.inf)  # over a blank
        alpha = np.logaddexp(np.logaddexp(alpha, step), skip) + emissions[t]
    ends = alpha[-1] if states == 1 else np.logaddexp(alpha[-1], alpha[-2])
    return float(ends)


def step_column(step: float, height: float) -> float:
    """The line-mask column (of a line with digit height `height`) at the middle of output step `step`."""
    return ((step + 0.5) * LINE_WIDTH_STEP - LINE_PAD_PX) * max(height, 1.0) / LINE_DIGIT_PX


def digit_spans(log_probs: np.ndarray, height: float, mask_width: int) -> list[tuple[int, float, int, int]]:
    """The best path's digits with where they lie: (digit, probability, first column, end column) in the line's
    mask. A digit's probability is its best step's; neighbours part half way between their runs of steps."""
    steps = log_probs.argmax(axis=1)
    runs: list[list[int]] = []  # [digit, first step, last step]
    for step, label in enumerate(steps):
        if label == BLANK:
            continue
        if runs and runs[-1][0] == label and runs[-1][2] == step - 1:
            runs[-1][2] = step
        else:
            runs.append([int(label), step, step])
    bounds = [0.0] + [step_column((a[2] + b[1]) / 2, height) for a, b in zip(runs, runs[1:], strict=False)]
    bounds.append(float(mask_width))
    spans = []
    for k, (digit, first, last) in enumerate(runs):
        probability = float(np.exp(log_probs[first : last + 1, digit].max()))
        left = int(np.clip(round(bounds[k]), 0, mask_width - 1))
        right = int(np.clip(round(bounds[k + 1]), left + 1, mask_width))
        spans.append((digit, probability, left, right))
    return spans
