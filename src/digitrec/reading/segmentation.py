"""Choosing a line's cutting: each candidate piece scored, the best cutting by dynamic programming."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from digitrec.images.framing import mask_to_mnist, tight_crop
from digitrec.reading.cuts import Candidates, candidate_pieces
from digitrec.reading.lines import LineInk

GAP_SPAN_PENALTY = 3.0  # log-score cost of keeping a gap inside one digit, per H of gap width
SKIP_PENALTY = 1.0  # log-score cost of leaving out a mark too short to be a digit, between two gaps
PIECE_SCORE_FLOOR = 1e-12  # floor before the log of a piece's confidence: a piece nothing believes in costs -27.6
# The classifier: MNIST-like images (N, 28, 28) uint8 -> calibrated probabilities (N, 10).
Classifier = Callable[[np.ndarray], np.ndarray]


@dataclass
class Segment:
    """Ink believed to be one digit: a mask over the working image's bounding box of it."""

    x: int
    y: int
    mask: np.ndarray  # uint8 0/255, (height, width)

    @property
    def width(self) -> int:
        return self.mask.shape[1]

    @property
    def height(self) -> int:
        return self.mask.shape[0]


# Rates the candidate pieces of a line: the log-score of each piece being one whole digit, in `pieces` order.
PieceScorer = Callable[[LineInk, Candidates], np.ndarray]


def confidence_scorer(score: Classifier) -> PieceScorer:
    """Pieces rated by a digit classifier's confidence in them (the log of its top probability)."""

    def rate(line: LineInk, candidates: Candidates) -> np.ndarray:
        confidence = score(np.stack([mask_to_mnist(piece) for piece in candidates.pieces.values()])).max(axis=1)
        return np.log(np.maximum(confidence, PIECE_SCORE_FLOOR))

    return rate


def cutting_steps(candidates: Candidates, piece_scores: np.ndarray, height: float) -> dict[tuple[int, int], float]:
    """The score of each possible step of a cutting, from cut i to cut j: the piece's score, minus the cost of
    cut j, minus GAP_SPAN_PENALTY x the width of the gaps kept inside the piece (in H)."""
    cuts = candidates.cuts
    gap_before = np.cumsum([0] + [cut.gap_width for cut in cuts])  # gap width of cuts[0..k-1]
    return {
        (i, j): float(score) - cuts[j].cost - GAP_SPAN_PENALTY * (gap_before[j] - gap_before[i + 1]) / height
        for (i, j), score in zip(candidates.pieces, piece_scores, strict=True)
    }


def best_cutting(candidates: Candidates, piece_scores: np.ndarray, height: float) -> list[tuple[int, int]]:
    """The (i, j) cut pairs of the best cutting of a line into digits, left to right, by dynamic programming:
    the cutting whose steps (`cutting_steps`) score most in sum."""
    cuts = candidates.cuts
    steps = cutting_steps(candidates, piece_scores, height)
    best = np.full(len(cuts), -np.inf)
    previous = np.full(len(cuts), -1)
    best[0] = 0.0
    for j in range(1, len(cuts)):
        for i in range(j):
            if (i, j) not in steps or best[i] == -np.inf:
                continue
            value = best[i] + steps[i, j]
            if value > best[j]:
                best[j], previous[j] = value, i
        i = candidates.stray_marks.get(j)
        if i is not None and best[i] - SKIP_PENALTY > best[j]:
            best[j], previous[j] = best[i] - SKIP_PENALTY, -i - 2  # the mark between cuts i and j left out
    if best[-1] == -np.inf:
        return []
    chosen, j = [], len(cuts) - 1
    while j > 0:
        i = int(previous[j])
        if i >= 0:
            chosen.append((i, j))
            j = i
        else:
            j = -i - 2
    return list(reversed(chosen))


def segment_of(line: LineInk, candidates: Candidates, i: int, j: int) -> Segment:
    """The piece between cuts i and j of a line, cropped to its ink, placed in the working image."""
    piece, left = candidates.pieces[i, j], candidates.cuts[i].left_edge(line.mask.shape[0])
    rows, columns = np.flatnonzero(piece.any(axis=1)), np.flatnonzero(piece.any(axis=0))
    return Segment(line.x + left + int(columns[0]), line.y + int(rows[0]), tight_crop(piece))


def line_segments(line: LineInk, score_pieces: PieceScorer) -> list[Segment]:
    """The digits of one line, left to right."""
    candidates = candidate_pieces(line)
    if not candidates.pieces:
        return []
    return [
        segment_of(line, candidates, i, j)
        for i, j in best_cutting(candidates, score_pieces(line, candidates), line.height)
    ]
