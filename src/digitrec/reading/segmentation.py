"""Choosing a line's cutting: each candidate piece scored, the best cutting by dynamic programming."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from digitrec.errors import DigitrecError
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


# Rates candidate pieces of a line: the log-score (<= 0) of each piece being one whole digit, for the (i, j) keys
# given (plausible pieces of `Candidates`), in their order.
PieceScorer = Callable[[LineInk, Candidates, list[tuple[int, int]]], np.ndarray]
# How far below its bound the best cutting of a line is first looked for, then again further down (log-score):
# a clean number scores about -0.5 below its bound, a hard one -5 (dev cheques, MNIST tuning strips).
FLOOR_MARGINS = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, np.inf)


def confidence_scorer(score: Classifier) -> PieceScorer:
    """Pieces rated by a digit classifier's confidence in them (the log of its top probability)."""

    def rate(line: LineInk, candidates: Candidates, keys: list[tuple[int, int]]) -> np.ndarray:
        confidence = score(np.stack([mask_to_mnist(candidates.piece(i, j)) for i, j in keys])).max(axis=1)
        return np.log(np.maximum(confidence, PIECE_SCORE_FLOOR))

    return rate


def step_costs(candidates: Candidates, height: float) -> dict[tuple[int, int], tuple[float, float]]:
    """What a step of a cutting from cut i to cut j costs besides its piece's score: the cost of cut j, and
    GAP_SPAN_PENALTY x the width of the gaps kept inside the piece (in H)."""
    cuts = candidates.cuts
    gap_before = np.cumsum([0] + [cut.gap_width for cut in cuts])  # gap width of cuts[0..k-1]
    return {
        (i, j): (cuts[j].cost, GAP_SPAN_PENALTY * float(gap_before[j] - gap_before[i + 1]) / height)
        for i, j in candidates.pairs
    }


def step_score(piece_score: float, costs: tuple[float, float]) -> float:
    cut_cost, gap_cost = costs
    return piece_score - cut_cost - gap_cost


def cutting_steps(
    line: LineInk, candidates: Candidates, score_pieces: PieceScorer, height: float
) -> dict[tuple[int, int], float]:
    """The score of every possible step of a cutting, from cut i to cut j: the piece's score minus `step_costs`."""
    keys = list(candidates.pieces)
    costs = step_costs(candidates, height)
    scores = score_pieces(line, candidates, keys) if keys else []
    return {key: step_score(float(score), costs[key]) for key, score in zip(keys, scores, strict=True)}


def check_deadline(deadline: float | None) -> None:
    """Past `deadline` (a `time.monotonic()` value), a DigitrecError: the reader checks it between its steps."""
    if deadline is not None and time.monotonic() > deadline:
        raise DigitrecError("reading took longer than its time limit")


def reachable_bounds(candidates: Candidates, costs: dict[tuple[int, int], tuple[float, float]]) -> np.ndarray:
    """For each cut, the most the rest of a cutting from it to the line's end can score: every piece's score
    taken as 0, its best (its upper bound; -inf where the end cannot be reached)."""
    cuts = candidates.cuts
    ends: dict[int, list[int]] = {}
    for i, j in candidates.pairs:
        ends.setdefault(i, []).append(j)
    skips = {i: j for j, i in candidates.stray_marks.items()}
    rest = np.full(len(cuts), -np.inf)
    rest[-1] = 0.0
    for i in range(len(cuts) - 2, -1, -1):
        options = [step_score(0.0, costs[i, j]) + rest[j] for j in ends.get(i, [])]
        if i in skips:
            options.append(rest[skips[i]] - SKIP_PENALTY)
        rest[i] = max(options, default=-np.inf)
    return rest


def cutting_dp(
    line: LineInk,
    candidates: Candidates,
    score_pieces: PieceScorer,
    costs: dict[tuple[int, int], tuple[float, float]],
    rest: np.ndarray,
    floor: float,
    scores: dict[tuple[int, int], float],
    deadline: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The best score of a cutting up to each cut and where its last step starts (-i - 2: a stray mark between
    cuts i and j left out), over the pieces that could still be on a cutting scoring at least `floor` (their
    bound: best up to i + the step with a score of 0 + `rest` after j). Scores are rated as needed, one batch per
    cut, into `scores`."""
    cuts = candidates.cuts
    starts: dict[int, list[int]] = {}
    for i, j in candidates.pairs:
        starts.setdefault(j, []).append(i)
    best = np.full(len(cuts), -np.inf)
    previous = np.full(len(cuts), -1)
    best[0] = 0.0
    for j in range(1, len(cuts)):
        check_deadline(deadline)  # every cut: a long line stops within one batch of pieces past it
        hopeful = [i for i in starts.get(j, []) if best[i] + step_score(0.0, costs[i, j]) + rest[j] >= floor]
        unrated = [(i, j) for i in hopeful if (i, j) not in scores and candidates.piece(i, j) is not None]
        if unrated:
            scores.update(zip(unrated, map(float, score_pieces(line, candidates, unrated)), strict=True))
        for i in hopeful:  # left to right: of equal cuttings, the one whose last step starts leftmost
            if (score := scores.get((i, j))) is None:
                continue  # not a plausible piece
            value = best[i] + step_score(score, costs[i, j])
            if value > best[j]:
                best[j], previous[j] = value, i
        i = candidates.stray_marks.get(j)
        if i is not None and best[i] - SKIP_PENALTY > best[j]:
            best[j], previous[j] = best[i] - SKIP_PENALTY, -i - 2  # the mark between cuts i and j left out
    return best, previous


def best_cutting(
    line: LineInk, candidates: Candidates, score_pieces: PieceScorer, height: float, deadline: float | None = None
) -> list[tuple[int, int]]:
    """The (i, j) cut pairs of the best cutting of a line into digits, left to right: the cutting whose steps
    (piece score minus `step_costs`) score most in sum, by dynamic programming over the cuts.

    Most pieces need not be made nor rated. A piece's score is at most 0, so a cutting through cut i and the
    piece (i, j) scores at most: the best up to i + the step with a score of 0 + the most the rest can score
    (`reachable_bounds`). Guessing that the best cutting scores at least `floor`, only pieces whose bound reaches
    it are rated (`cutting_dp`); a cutting found at or above the floor is then the best of all, the one a
    dynamic program over every piece finds. Below it, the floor is lowered and the search repeated (pieces
    already rated are not rated again), down to no floor at all."""
    costs = step_costs(candidates, height)
    rest = reachable_bounds(candidates, costs)
    if rest[0] == -np.inf:
        return []
    scores: dict[tuple[int, int], float] = {}
    for margin in FLOOR_MARGINS:
        floor = rest[0] - margin
        best, previous = cutting_dp(line, candidates, score_pieces, costs, rest, floor, scores, deadline)
        if best[-1] >= floor:
            break
    if best[-1] == -np.inf:
        return []
    chosen, j = [], len(candidates.cuts) - 1
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
    piece, left = candidates.piece(i, j), candidates.cuts[i].left_edge(line.mask.shape[0])
    rows, columns = np.flatnonzero(piece.any(axis=1)), np.flatnonzero(piece.any(axis=0))
    return Segment(line.x + left + int(columns[0]), line.y + int(rows[0]), tight_crop(piece))


def line_segments(line: LineInk, score_pieces: PieceScorer, deadline: float | None = None) -> list[Segment]:
    """The digits of one line, left to right (past `deadline`, a DigitrecError)."""
    candidates = candidate_pieces(line)
    cutting = best_cutting(line, candidates, score_pieces, line.height, deadline)
    return [segment_of(line, candidates, i, j) for i, j in cutting]
