"""Choosing a line's cutting: each candidate piece scored, the best cutting by dynamic programming."""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field

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
# best_cutting's search rates the pieces on the top of its frontier this many at a time (the piece model's batch):
# on the 88 lines of the dev cheques, 1 at a time rated 19,382 pieces, 4: 19,629, 16: 20,357, 64: 20,876 (the
# earlier search, by floors lowered in steps, 28,679); a call's own cost makes one at a time the slowest.
RATED_TOGETHER = 8
SETTLE_CUT, RATE_STEP = 1, 0  # kinds of frontier entries: of equal bounds, steps are rated before a cut is settled


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
    cuts, ends, skips = candidates.cuts, candidates.steps_from, candidates.skip_after
    rest = np.full(len(cuts), -np.inf)
    rest[-1] = 0.0
    for i in range(len(cuts) - 2, -1, -1):
        options = [step_score(0.0, costs[i, j]) + rest[j] for j in ends.get(i, [])]
        if i in skips:
            options.append(rest[skips[i]] - SKIP_PENALTY)
        rest[i] = max(options, default=-np.inf)
    return rest


@dataclass
class CuttingSearch:
    """The state of `best_cutting`'s search over one line: the best score found up to each cut, where its last step
    starts (-i - 2: a stray mark between cuts i and this one left out), which cuts are settled, and the frontier."""

    rest: np.ndarray  # `reachable_bounds`
    best: np.ndarray
    previous: np.ndarray
    settled: np.ndarray
    frontier: list[tuple[float, int, int, int]] = field(default_factory=list)  # heap of (-bound, kind, i, j)

    @classmethod
    def start(cls, rest: np.ndarray) -> CuttingSearch:
        count = len(rest)
        search = cls(rest, np.full(count, -np.inf), np.full(count, -1), np.zeros(count, bool))
        search.reach(0, 0.0, -1)
        return search

    def reach(self, j: int, value: float, step_start: int) -> None:
        """A cutting up to cut j scoring `value` whose last step starts at `step_start`: kept if it is the best yet
        (of equal ones, the one whose last step is a piece starting leftmost, as a dynamic program left to right
        keeps), and cut j put on the frontier."""
        leftmost = step_start >= 0 and (self.previous[j] < 0 or step_start < self.previous[j])
        if value > self.best[j] or (value == self.best[j] and leftmost):
            self.best[j], self.previous[j] = value, step_start
            heapq.heappush(self.frontier, (-(value + self.rest[j]), SETTLE_CUT, j, j))

    def offer_step(self, i: int, j: int, costs: tuple[float, float]) -> None:
        """The step from settled cut i to cut j, at its bound (its piece scored 0), put on the frontier."""
        if self.rest[j] > -np.inf:
            heapq.heappush(self.frontier, (-(self.best[i] + step_score(0.0, costs) + self.rest[j]), RATE_STEP, i, j))

    def steps_on_top(self, most: int) -> list[tuple[int, int]]:
        """Up to `most` steps taken off the top of the frontier, while it holds steps."""
        steps = []
        while self.frontier and self.frontier[0][1] == RATE_STEP and len(steps) < most:
            _, _, i, j = heapq.heappop(self.frontier)
            steps.append((i, j))
        return steps

    def cutting(self) -> list[tuple[int, int]]:
        """The (i, j) steps of the best cutting to the line's last cut, left to right ([] if it was not reached)."""
        chosen, j = [], len(self.best) - 1
        if not self.settled[j]:
            return []
        while j > 0:
            i = int(self.previous[j])
            if i >= 0:
                chosen.append((i, j))
                j = i
            else:
                j = -i - 2
        return list(reversed(chosen))


def best_cutting(
    line: LineInk, candidates: Candidates, score_pieces: PieceScorer, height: float, deadline: float | None = None
) -> list[tuple[int, int]]:
    """The (i, j) cut pairs of the best cutting of a line into digits, left to right: the cutting whose steps
    (piece score minus `step_costs`) score most in sum, the one a dynamic program over every piece finds.

    Most pieces need not be made nor rated. A piece's score is at most 0, so a cutting through cut i and the
    piece (i, j) scores at most: the best up to i + the step with a score of 0 + the most the rest can score
    (`reachable_bounds`). The search is A* over the cuts with that bound: the frontier holds cuts reached and steps
    not yet rated, each at its bound, and the one with the highest bound is taken next (a step: its piece is rated,
    RATED_TOGETHER of them at a time; a cut: it is settled, its best cutting known, and the steps from it are put on
    the frontier at their bounds). When the line's last cut is settled, no piece left unrated could be on a better
    cutting: only the pieces whose bound reaches the best cutting's score are rated."""
    costs = step_costs(candidates, height)
    rest = reachable_bounds(candidates, costs)
    if rest[0] == -np.inf:
        return []
    last, ends, skips = len(candidates.cuts) - 1, candidates.steps_from, candidates.skip_after
    search = CuttingSearch.start(rest)
    while search.frontier and not search.settled[last]:
        check_deadline(deadline)  # every step of the search: a long line stops within one batch of pieces past it
        if search.frontier[0][1] == SETTLE_CUT:
            _, _, i, _ = heapq.heappop(search.frontier)
            if search.settled[i]:
                continue
            search.settled[i] = True
            for j in ends.get(i, []):
                search.offer_step(i, j, costs[i, j])
            if i in skips:  # the stray mark after cut i left out
                search.reach(skips[i], search.best[i] - SKIP_PENALTY, -i - 2)
            continue
        steps = [(i, j) for i, j in search.steps_on_top(RATED_TOGETHER) if candidates.piece(i, j) is not None]
        if steps:
            for (i, j), score in zip(steps, score_pieces(line, candidates, steps), strict=True):
                search.reach(j, search.best[i] + step_score(float(score), costs[i, j]), i)
    return search.cutting()


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
