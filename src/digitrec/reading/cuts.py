"""Candidate cuts of a line of ink (gaps, thin columns, slanted lines) and the pieces between them."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np

from digitrec.images.framing import stroke_width_px
from digitrec.mnist import WHITE
from digitrec.reading.lines import LineInk

MAX_DIGIT_WIDTH_FRACTION = 1.3  # the widest ink one digit may have (MNIST: 99% of digits are at most 1.43 H wide,


#   95% at most 1.11 H; measured on the training digits' ink boxes)
MIN_PIECE_WIDTH_FRACTION = 0.1  # the narrowest piece an ink cut may leave (a "1" written straight)
SPLIT_WIDTH_FRACTION = 0.55  # runs of ink wider than this (vs H) get candidate cuts inside them
CUT_STEP_FRACTION = 1 / 8  # candidate cuts every this much of H, plus the minima of the ink's column profile ...
MINIMUM_CUT_STROKES = 2.5  # ... where it crosses at most this many stroke widths of ink
# log-score cost of a cut through ink (a digit seen as two needs clearly better pieces). Chosen on strips of the
# tuning digits with the piece model, which sees what a cut crosses: 0.05 per cut, nothing more per stroke crossed,
# read 86% / 74% / 98% of 4-digit 30%-touching / 6-digit 30%-touching / 4-digit apart numbers (50 each), against
# 82% / 72% / 98% with the earlier 0.15 + 0.1 per stroke width.
CUT_PENALTY = 0.05
CUT_SLOPES = (-0.45, -0.3, -0.15, 0.15, 0.3, 0.45)  # columns per row of the slanted cuts tried at each place (±9-24°)
PIECE_MIN_HEIGHT_FRACTION = 0.4  # a piece must keep ink at least this tall (vs H) to be a digit
FRAGMENT_AREA_FRACTION = 0.2  # bits a cut shaves off a neighbour, below this share of the piece's main part: dropped


@dataclass(frozen=True)
class Cut:
    """A straight cut across a line: vertical, or slanted to pass between two slanted strokes that share columns."""

    column: int  # where it crosses the middle row of the line's mask
    cost: float  # log-score cost of cutting here (0 in a gap)
    gap_width: int = 0  # > 0: the cut is in a gap between inks this wide
    slope: float = 0.0  # columns it moves right per row down the line
    # rows -> `boundary(rows)`, made once: a line's pieces ask for their cuts' boundaries many times
    boundaries: dict[int, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    def boundary(self, rows: int) -> np.ndarray:
        """The cut's column in each of the line's rows (fractional; read-only)."""
        if rows not in self.boundaries:
            columns = self.column + self.slope * (np.arange(rows) - (rows - 1) / 2)
            columns.flags.writeable = False
            self.boundaries[rows] = columns
        return self.boundaries[rows]

    def left_edge(self, rows: int) -> int:
        """The leftmost column the cut reaches in the line: where the mask of the piece right of it starts."""
        if self.slope == 0:
            return max(0, self.column)
        return max(0, int(np.floor(self.boundary(rows).min())))

    def right_edge(self, rows: int) -> int:
        """The column after the rightmost one the cut reaches in the line: where the mask of the piece left of it
        ends."""
        if self.slope == 0:
            return self.column
        return int(np.ceil(self.boundary(rows).max()))


def ink_runs(profile: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of columns holding ink."""
    inked = np.concatenate([[0], (profile > 0).astype(np.int8), [0]])
    changes = np.flatnonzero(np.diff(inked))
    return list(zip(changes[::2].tolist(), changes[1::2].tolist(), strict=True))


def candidate_cuts(mask: np.ndarray, height: float) -> list[Cut]:
    """The line's ends, the middle of every gap between inks, and cuts inside wide runs of ink: on a regular grid
    and at the minima of the column profile, each vertical and, where it crosses less ink, slanted (`slanted_cut`)."""
    profile = np.count_nonzero(mask, axis=0)
    runs = ink_runs(profile)
    stroke = max(1.0, stroke_width_px(mask))  # at least a pixel
    cuts = [Cut(runs[0][0], 0.0), Cut(runs[-1][1], 0.0)]
    for (_, end), (start, _) in zip(runs, runs[1:], strict=False):
        cuts.append(Cut((end + start) // 2, 0.0, gap_width=start - end))
    margin = max(1, round(MIN_PIECE_WIDTH_FRACTION * height))
    step = max(1, round(CUT_STEP_FRACTION * height))
    for start, end in runs:
        if end - start <= SPLIT_WIDTH_FRACTION * height:
            continue
        inside = set(range(start + margin, end - margin + 1, step))
        smooth = np.convolve(profile, np.ones(3) / 3, mode="same")
        inside |= {
            c
            for c in range(start + margin, end - margin)
            if smooth[c] <= min(smooth[c - 1], smooth[c + 1]) and profile[c] <= MINIMUM_CUT_STROKES * stroke
        }
        cuts += [Cut(c, CUT_PENALTY) for c in inside]
        cuts += [cut for c in sorted(inside) if (cut := slanted_cut(mask, c, profile[c])) is not None]
    return sorted(cuts, key=lambda cut: cut.column)


def ink_crossed(mask: np.ndarray, cut: Cut) -> int:
    """Ink pixels on the cut's line."""
    rows = mask.shape[0]
    columns = np.rint(cut.boundary(rows)).astype(np.int64)
    inside = (columns >= 0) & (columns < mask.shape[1])
    return int(np.count_nonzero(mask[np.arange(rows)[inside], columns[inside]]))


def slanted_cut(mask: np.ndarray, column: int, vertical_ink: int) -> Cut | None:
    """The slanted cut through `column` (at the middle row) that crosses least ink, if it crosses less than the
    vertical one: two slanted strokes run into each other ("11", "71") share columns, no vertical cut parts them."""
    slanted = [Cut(column, CUT_PENALTY, slope=slope) for slope in CUT_SLOPES]
    crossed = [ink_crossed(mask, cut) for cut in slanted]
    best = int(np.argmin(crossed))
    return slanted[best] if crossed[best] < vertical_ink else None


def ink_height(mask: np.ndarray) -> int:
    rows = np.flatnonzero(mask.any(axis=1))
    return int(rows[-1] - rows[0] + 1) if len(rows) else 0


def piece_mask(mask: np.ndarray, left: Cut, right: Cut) -> np.ndarray | None:
    """The ink between two cuts, from the left cut's `left_edge` on, without the slivers an ink cut shaves off a
    neighbouring digit; None if empty."""
    rows = mask.shape[0]
    start, stop = left.left_edge(rows), min(mask.shape[1], right.right_edge(rows))
    if stop <= start:
        return None
    if left.slope == 0 and right.slope == 0:  # both vertical: every column from start to stop is between them
        piece = mask[:, start:stop].astype(np.uint8)
    else:
        piece = np.where(between_cuts(left, right, rows, start, stop), mask[:, start:stop], 0).astype(np.uint8)
    if not cv2.countNonZero(piece):
        return None
    if left.gap_width and right.gap_width:  # cut in gaps on both sides: nothing was shaved off a neighbour
        return piece
    columns = np.arange(start, stop)[None, :]
    left_bound, right_bound = left.boundary(rows), right.boundary(rows)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(piece, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    small = areas < FRAGMENT_AREA_FRACTION * areas.max()
    if not small.any():
        return piece
    at_left = touching_labels(labels, columns < left_bound[:, None] + 1, count) & (left.gap_width == 0)
    at_right = touching_labels(labels, columns >= right_bound[:, None] - 1, count) & (right.gap_width == 0)
    shaved = (at_left | at_right) & small
    kept_value = np.zeros(count, np.uint8)  # label -> 255 where the component is kept, 0 for the background
    kept_value[1:][~shaved] = WHITE
    return kept_value[labels]


def between_cuts(left: Cut, right: Cut, rows: int, start: int, stop: int) -> np.ndarray:
    """(rows, stop - start) bool: which pixels of columns start..stop-1 lie right of `left` and left of `right`."""
    columns = np.arange(start, stop)[None, :]
    return (columns >= left.boundary(rows)[:, None]) & (columns < right.boundary(rows)[:, None])


def touching_labels(labels: np.ndarray, edge: np.ndarray, count: int) -> np.ndarray:
    """(count - 1,) bool: which components of `labels` (1..count-1) have a pixel in `edge`."""
    touching = np.zeros(count, bool)
    touching[labels[edge]] = True
    return touching[1:]


def plausible_piece(piece: np.ndarray | None, height: float) -> bool:
    if piece is None:
        return False
    _, _, width, ink_rows = cv2.boundingRect(piece)  # of its ink (0 x 0 when it has none)
    return width > 0 and ink_rows >= PIECE_MIN_HEIGHT_FRACTION * height and width <= MAX_DIGIT_WIDTH_FRACTION * height


@dataclass
class Candidates:
    """The candidate cuts of a line and the pieces between two of them that are not wider than a digit (`pairs`).
    A piece's ink is made when first asked for (`piece`): the reader needs only some of them."""

    cuts: list[Cut]
    mask: np.ndarray  # the line's ink, 0/255
    height: float  # the line's digit height H
    pairs: list[tuple[int, int]]  # (i, j), i < j: the stretches between cuts i and j no wider than a digit
    stray_marks: dict[int, int] = field(default_factory=dict)  # j: i, the ink between cuts i and j may be left out
    made: dict[tuple[int, int], np.ndarray | None] = field(default_factory=dict, repr=False)  # pieces made so far

    def piece(self, i: int, j: int) -> np.ndarray | None:
        """The ink between cuts i and j over the line's rows, if it could be one digit (`plausible_piece`)."""
        if (i, j) not in self.made:
            piece = piece_mask(self.mask, self.cuts[i], self.cuts[j])
            self.made[i, j] = piece if plausible_piece(piece, self.height) else None
        return self.made[i, j]

    @cached_property
    def steps_from(self) -> dict[int, list[int]]:
        """i -> the cuts j, left to right, that a piece from cut i may end at (`pairs`)."""
        ends: dict[int, list[int]] = {}
        for i, j in self.pairs:
            ends.setdefault(i, []).append(j)
        return ends

    @cached_property
    def skip_after(self) -> dict[int, int]:
        """i -> j for each stray mark between cuts i and j that a cutting may leave out (`stray_marks` turned)."""
        return {i: j for j, i in self.stray_marks.items()}

    @property
    def pieces(self) -> dict[tuple[int, int], np.ndarray]:
        """Every plausible piece, (i, j) -> its ink, left to right (all of them made)."""
        return {(i, j): piece for i, j in self.pairs if (piece := self.piece(i, j)) is not None}


def candidate_pieces(line: LineInk) -> Candidates:
    """The candidate cuts of a line and every stretch between two of them that is not wider than a digit; which of
    those could hold a digit (tall enough, ink not too wide) is decided as each piece is made."""
    cuts = candidate_cuts(line.mask, line.height)
    pairs = []
    for i, left in enumerate(cuts):
        for j in range(i + 1, len(cuts)):
            ink_span = cuts[j].column - left.column - (left.gap_width + cuts[j].gap_width) / 2
            if ink_span > MAX_DIGIT_WIDTH_FRACTION * line.height:
                break  # wider than a digit
            pairs.append((i, j))
    return Candidates(cuts, line.mask, line.height, pairs, stray_marks(line.mask, cuts, line.height))


def stray_marks(mask: np.ndarray, cuts: list[Cut], height: float) -> dict[int, int]:
    """{j: i} for each run of ink between two gaps (cuts i and j, or the line's ends) that is too short to be a
    digit (a dash, a tick, a speck that is not a separator): the cutting may leave it out rather than fail."""
    free = [k for k, cut in enumerate(cuts) if k in (0, len(cuts) - 1) or cut.gap_width > 0]
    marks = {}
    for i, j in zip(free, free[1:], strict=False):
        if ink_height(mask[:, max(0, cuts[i].column) : cuts[j].column]) < PIECE_MIN_HEIGHT_FRACTION * height:
            marks[j] = i
    return marks
