"""Choosing a line's cutting: each candidate piece scored, the best cutting by dynamic programming."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from digitrec.images.framing import mask_to_mnist, tight_crop
from digitrec.reading.cuts import Candidates, candidate_pieces
from digitrec.reading.lines import LineInk

GAP_SPAN_PENALTY = 3.0  # log-score cost of keeping a gap inside one digit, per H of gap width
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


def best_cutting(candidates: Candidates, piece_scores: np.ndarray, height: float) -> list[tuple[int, int]]:
    """The (i, j) cut pairs of the best cutting of a line into digits, left to right, by dynamic programming.

    Score of a cutting = sum over its pieces of their scores - the costs of its ink cuts - GAP_SPAN_PENALTY x the
    width of the gaps kept inside pieces (in H)."""
    cuts = candidates.cuts
    piece_score = dict(zip(candidates.pieces, piece_scores, strict=True))
    gap_before = np.cumsum([0] + [cut.gap_width for cut in cuts])  # gap width of cuts[0..k-1]
    best = np.full(len(cuts), -np.inf)
    previous = np.full(len(cuts), -1)
    best[0] = 0.0
    for j in range(1, len(cuts)):
        for i in range(j):
            if (i, j) not in piece_score or best[i] == -np.inf:
                continue
            kept_gaps = gap_before[j] - gap_before[i + 1]  # gaps strictly between cut i and cut j
            value = best[i] + piece_score[i, j] - cuts[j].cost - GAP_SPAN_PENALTY * kept_gaps / height
            if value > best[j]:
                best[j], previous[j] = value, i
    if previous[-1] < 0:
        return []
    chosen, j = [], len(cuts) - 1
    while j > 0:
        chosen.append((int(previous[j]), j))
        j = int(previous[j])
    return list(reversed(chosen))


def line_segments(line: LineInk, score_pieces: PieceScorer) -> list[Segment]:
    """The digits of one line, left to right."""
    candidates = candidate_pieces(line)
    if not candidates.pieces:
        return []
    segments = []
    for i, j in best_cutting(candidates, score_pieces(line, candidates), line.height):
        piece, left = candidates.pieces[i, j], candidates.cuts[i].left_edge(line.mask.shape[0])
        rows, columns = np.flatnonzero(piece.any(axis=1)), np.flatnonzero(piece.any(axis=0))
        segments.append(Segment(line.x + left + int(columns[0]), line.y + int(rows[0]), tight_crop(piece)))
    return segments
