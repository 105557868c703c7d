"""The piece model: is a candidate piece of a line one whole digit, and which?

The reader cuts each line at many candidate places (`reading.candidate_pieces`) and keeps the cutting whose pieces
score best. A digit classifier alone scores them badly where it matters: two touching digits ("44") or half a digit
(the left of a 0 looks like a 1) often get a confident answer. The piece model is an 11-class CNN (the ten digits
and "not one whole digit") that sees two views of each piece:
  0. the piece as the classifier sees it (`preprocess.mask_to_mnist`), and
  1. the piece in its line: the line's ink around it at a fixed scale (the line's digit height H = CONTEXT_DIGIT_PX),
     the piece's ink bright, its neighbours' dim, so that width, height and what the cut left behind show.
It learns from the very pieces the reader makes of photo-like strips of MNIST *training* digits
(`digitrec.synthetic.strips`),
each labelled by the strip's own record of which digit's ink is where. Its score of a piece is the log of
1 - P(not one whole digit); the final digits are still read by the main model.

This module is what reading needs (the model's inputs and its scorer); `digitrec.training.pieces` makes its data
and trains it.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from digitrec.images.framing import mask_to_mnist
from digitrec.mnist import CLASSES as MNIST_CLASSES
from digitrec.mnist import IMAGE_SIZE as MNIST_IMAGE_SIZE
from digitrec.mnist import PIXEL_MAX, WHITE
from digitrec.numeric import softmax
from digitrec.reading.cuts import Candidates
from digitrec.reading.lines import LineInk
from digitrec.reading.segmentation import PIECE_SCORE_FLOOR, PieceScorer

NOT_A_DIGIT = MNIST_CLASSES  # class 10: the piece is not one whole digit (part of one, two, or a digit and a bit)
PIECE_CLASSES = MNIST_CLASSES + 1
CONTEXT_DIGIT_PX = 14  # the line's digit height H in the context view: the 28 px view shows 2 H around the piece
CONTEXT_OTHER_INK = 96  # gray level of the line's other ink in the context view (the piece's ink is 255)


def context_view(line: LineInk, piece: np.ndarray, left_column: int) -> np.ndarray:
    """(28, 28) uint8: the line's ink around the piece at CONTEXT_DIGIT_PX per H, the piece bright, the rest dim."""
    ink_left, ink_top, ink_width, ink_height = cv2.boundingRect(piece)
    centre_y, centre_x = ink_top + ink_height / 2, left_column + ink_left + ink_width / 2
    half = MNIST_IMAGE_SIZE / 2 * line.height / CONTEXT_DIGIT_PX  # half the window, in working-image pixels
    top, left = round(centre_y - half), round(centre_x - half)
    side = max(1, round(2 * half))
    window = np.zeros((side, side), np.uint8)
    # the window's overlap with the line's box
    y0, y1 = max(top, 0), min(top + side, line.mask.shape[0])
    x0, x1 = max(left, 0), min(left + side, line.mask.shape[1])
    if y1 > y0 and x1 > x0:
        window[y0 - top : y1 - top, x0 - left : x1 - left] = (line.mask[y0:y1, x0:x1] > 0) * np.uint8(CONTEXT_OTHER_INK)
        px0, px1 = max(x0, left_column), min(x1, left_column + piece.shape[1])
        if px1 > px0:
            own = piece[y0:y1, px0 - left_column : px1 - left_column] > 0
            np.copyto(window[y0 - top : y1 - top, px0 - left : px1 - left], WHITE, where=own)
    return cv2.resize(window, (MNIST_IMAGE_SIZE, MNIST_IMAGE_SIZE), interpolation=cv2.INTER_AREA)


def piece_views(line: LineInk, piece: np.ndarray, left_column: int) -> np.ndarray:
    """(2, 28, 28) uint8: the piece as the classifier sees it, and in its line."""
    return np.stack([mask_to_mnist(piece), context_view(line, piece, left_column)])


def piece_inputs(line: LineInk, candidates: Candidates, keys: list[tuple[int, int]] | None = None) -> np.ndarray:
    """(N, 2, 28, 28) uint8: the views of each candidate piece (or of those of `keys`)."""
    keys = list(candidates.pieces) if keys is None else keys
    rows = line.mask.shape[0]
    return np.stack([piece_views(line, candidates.piece(i, j), candidates.cuts[i].left_edge(rows)) for i, j in keys])


def piece_inputs_as_floats(inputs: np.ndarray) -> np.ndarray:
    """(N, 2, 28, 28) uint8 views -> the piece model's float32 inputs in [0, 1]."""
    return inputs.astype(np.float32) / PIXEL_MAX


def piece_model_scorer(piece_logits: Callable[[np.ndarray], np.ndarray]) -> PieceScorer:
    """Pieces rated by the piece model (`piece_logits`: its float inputs -> its logits): log(1 - P(not one whole
    digit))."""

    def rate(line: LineInk, candidates: Candidates, keys: list[tuple[int, int]]) -> np.ndarray:
        probabilities = softmax(piece_logits(piece_inputs_as_floats(piece_inputs(line, candidates, keys))))
        whole = 1 - probabilities[:, NOT_A_DIGIT]
        return np.log(np.maximum(whole, PIECE_SCORE_FLOOR))

    return rate
