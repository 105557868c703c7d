"""Reading whole numbers: every digit in an image, segmented, recognized, put in lines and read left to right.

The image goes through the photo pipeline's first stages (`preprocess.ink_stages`: best channel, lighting,
threshold, ruled lines removed). Its connected components are then
1. sorted into lines of writing, followed left to right (frames and margin lines touching the border left out);
2. small isolated marks are taken out as separators (dot, comma, dash), reported but never read as digits;
3. the line is cut into digits along its columns by a dynamic programme: candidate cuts are the gaps between inks
   (free) and, inside runs of ink wider than a narrow digit, a grid of columns and those where the ink is thinnest
   (a small cost each), each also as the slanted line through it that crosses least ink, when that is less than
   the vertical one crosses (two slanted strokes run into each other, as in a quick "11", share columns: no
   vertical cut parts them); each stretch between two cuts is scored by the piece model (`digitrec.pieces`: how likely
   it is one whole digit, seeing the piece and its neighbours) or, without one, by the classifier's confidence. So
   touching digits are split where both pieces look whole, and a digit broken in pieces (a 5's hat, a pen lifted)
   is kept whole when it scores better whole than in pieces (skipping a gap costs a little).
Each digit is then read twice by the model, from its binarized ink through the same normalization as single digits
(`preprocess.mask_to_mnist`) and from the photo's gray levels in and around that ink (`preprocess.gray_to_mnist`:
the soft edges and faint parts of strokes that the threshold cut away), and the two probabilities averaged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from digitrec.preprocess import (
    FAINT_RIM_PX,
    WHITE,
    Component,
    connected_components,
    digit_candidates,
    gray_to_mnist,
    image_to_array,
    ink_stages,
    mask_to_mnist,
    stroke_width_px,
    tight_crop,
)

# Sizes are fractions of the line's digit height H (the median height of its tall components).
TALL_FRACTION = 0.5  # a component at least this tall (vs the tallest in the image) is a digit or most of one
SEPARATOR_HEIGHT_FRACTION = 0.35  # a mark shorter than this (vs H), clear of any taller ink above or below it, ...
SEPARATOR_AREA_FRACTION = 0.25  # ... with less ink than this (vs the median digit), is a separator, not a digit
SPECK_AREA_FRACTION = 0.02  # less ink than this (vs the median tall component): noise, dropped
MIN_DIGIT_HEIGHT_PX = 8  # in the working image: smaller marks are specks (as for single digits)
LINE_OVERLAP_FRACTION = 0.5  # a component belongs to a line when this much of its height lies in the line's band
STACKED_GAP_FRACTION = 0.25  # a "line" this close under another (vs the shorter) and under its columns is its rest
BAND_HEIGHT_FRACTION = 0.75  # a line's H is at least this share of its band (digits jitter about the baseline)
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
GAP_SPAN_PENALTY = 3.0  # log-score cost of keeping a gap inside one digit, per H of gap width
PIECE_MIN_HEIGHT_FRACTION = 0.4  # a piece must keep ink at least this tall (vs H) to be a digit
FRAGMENT_AREA_FRACTION = 0.2  # bits a cut shaves off a neighbour, below this share of the piece's main part: dropped
WORD_GAP_FRACTION = 1.2  # a gap wider than this (vs H) between digits' inks starts a new number: a space ...
WORD_GAP_TIMES_MEDIAN = 2.5  # ... when it is also this many times the line's median gap (a "1" leaves wide gaps)
DASH_ASPECT = 1.8  # a small mark this many times wider than tall is a dash
COMMA_ASPECT = 1.5  # ... this many times taller than wide, low on the line, a comma; otherwise low: a dot
THIN_LINE_MIN_LENGTH_FRACTION = 0.5  # straight runs of ink this long (vs the image's side) ...
THIN_LINE_MAX_THICKNESS_PX = 4  # ... and thinner than this are left-overs of ruled, grid or margin lines
SMALLEST_PROBABILITY = 1e-12  # floor before the log of a piece's confidence

NO_DIGITS = "no digits found (the image looks blank, or its ink is too faint)"

Box = tuple[int, int, int, int]  # x, y, width, height in the input image's pixels


@dataclass(frozen=True)
class DigitReading:
    digit: int
    confidence: float
    box: Box
    unsure: bool

    def to_json(self) -> dict:
        return {"digit": self.digit, "confidence": self.confidence, "box": list(self.box), "unsure": self.unsure}


@dataclass(frozen=True)
class Separator:
    kind: str  # "dot", "comma", "dash" or "mark"
    box: Box

    def to_json(self) -> dict:
        return {"kind": self.kind, "box": list(self.box)}


@dataclass(frozen=True)
class LineReading:
    text: str  # the line's digits, a space between numbers written apart
    digits: list[DigitReading]

    def to_json(self) -> dict:
        return {"text": self.text, "digits": [digit.to_json() for digit in self.digits]}


@dataclass(frozen=True)
class NumberReading:
    lines: list[LineReading] = field(default_factory=list)
    separators: list[Separator] = field(default_factory=list)
    problem: str | None = None  # why nothing was read (e.g. a blank image)

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    @property
    def digits(self) -> list[DigitReading]:
        return [digit for line in self.lines for digit in line.digits]

    @property
    def unsure(self) -> bool:
        """Some digit is below the model's confidence threshold, or nothing was read."""
        return not self.digits or any(digit.unsure for digit in self.digits)

    def to_json(self) -> dict:
        return {
            "text": self.text,
            "lines": [line.text for line in self.lines],
            "digits": [digit.to_json() for digit in self.digits],
            "separators": [separator.to_json() for separator in self.separators],
            "unsure": self.unsure,
            "problem": self.problem,
        }


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


# ------------------------------------------------------------------------------------------- components, lines


def median_digit_height(components: list[Component]) -> float:
    tallest = max(c.height for c in components)
    return float(np.median([c.height for c in components if c.height >= TALL_FRACTION * tallest]))


def shared_rows(a: Component, b: Component) -> float:
    """Share of the shorter component's height that lies in the other's rows."""
    overlap = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    return max(overlap, 0) / min(a.height, b.height)


def group_lines(tall: list[Component]) -> list[list[Component]]:
    """Tall components -> lines of writing, top to bottom. Taken left to right, a component continues the line whose
    last component shares most rows with it (at least LINE_OVERLAP_FRACTION of the shorter), so that a line written
    askew stays one line however far its ends are apart in height."""
    lines: list[list[Component]] = []
    for component in sorted(tall, key=lambda c: c.x):
        shares = [shared_rows(component, line[-1]) for line in lines]
        if shares and max(shares) >= LINE_OVERLAP_FRACTION:
            lines[int(np.argmax(shares))].append(component)
        else:
            lines.append([component])
    return sorted(lines, key=lambda line: min(c.y for c in line))


def stacked(upper: list[Component], lower: list[Component]) -> bool:
    """Is `lower` the rest of `upper`'s digits (a digit broken across its middle) rather than a line of its own:
    close below it and under the same columns?"""
    upper_box, lower_box = bounding(upper), bounding(lower)
    gap = lower_box.y - (upper_box.y + upper_box.height)
    shorter = min(upper_box.height, lower_box.height)
    return gap < STACKED_GAP_FRACTION * shorter and columns_overlap(upper_box, lower_box) > 0


def merge_stacked_lines(lines: list[list[Component]]) -> list[list[Component]]:
    merged = [lines[0]] if lines else []
    for line in lines[1:]:
        if stacked(merged[-1], line):
            merged[-1] = merged[-1] + line
        else:
            merged.append(line)
    return merged


def column_groups(line: list[Component]) -> list[Component]:
    """The line's components, those sharing columns merged (the pieces of a digit broken across its middle)."""
    groups: list[Component] = []
    for component in sorted(line, key=lambda c: c.x):
        if groups and columns_overlap(groups[-1], component) > 0:
            groups[-1] = bounding([groups[-1], component])
        else:
            groups.append(component)
    return groups


def line_slope(groups: list[Component]) -> float:
    """Rows per column of the line's direction, fit through the centres of its column groups (0 for one group)."""
    xs = np.array([g.x + g.width / 2 for g in groups])
    ys = np.array([g.y + g.height / 2 for g in groups])
    if len(groups) < 2:
        return 0.0
    return float(np.polyfit(xs, ys, 1)[0])


def line_height(line: list[Component]) -> float:
    """H: the median height of the line's tall components, or most of its band (measured across the line's
    direction, so that a line written askew is not taller) when its digits are broken across their middles (then
    each piece is short)."""
    groups = column_groups(line)
    slope = line_slope(groups)
    tops = [g.y - slope * (g.x + g.width / 2) for g in groups]
    bottoms = [g.y + g.height - slope * (g.x + g.width / 2) for g in groups]
    band = max(bottoms) - min(tops)
    return max(median_digit_height(line), BAND_HEIGHT_FRACTION * band)


def nearest_line(component: Component, lines: list[list[Component]]) -> int:
    centre = component.y + component.height / 2
    middles = [np.median([c.y + c.height / 2 for c in line]) for line in lines]
    return int(np.argmin([abs(centre - middle) for middle in middles]))


def columns_overlap(a: Component, b: Component) -> int:
    return max(0, min(a.x + a.width, b.x + b.width) - max(a.x, b.x))


def is_separator(mark: Component, others: list[Component], height: float, digit_area: float) -> bool:
    """Short, little ink, and no other ink above or below it (a 5's hat has its body below it)."""
    if mark.height >= SEPARATOR_HEIGHT_FRACTION * height or mark.area >= SEPARATOR_AREA_FRACTION * digit_area:
        return False
    return not any(o is not mark and columns_overlap(mark, o) > 0.5 * mark.width for o in others)


def separator_kind(mark: Component, line_bottom: float, height: float) -> str:
    if mark.width >= DASH_ASPECT * mark.height:
        return "dash"
    low = mark.y + mark.height / 2 >= line_bottom - 0.35 * height
    if low and mark.height >= COMMA_ASPECT * mark.width:
        return "comma"
    return "dot" if low else "mark"


def bounding(components: list[Component]) -> Component:
    x0, y0 = min(c.x for c in components), min(c.y for c in components)
    x1 = max(c.x + c.width for c in components)
    y1 = max(c.y + c.height for c in components)
    return Component(-1, x0, y0, x1 - x0, y1 - y0, sum(c.area for c in components))


# ------------------------------------------------------------------------------------------- cutting a line


@dataclass(frozen=True)
class Cut:
    """A straight cut across a line: vertical, or slanted to pass between two slanted strokes that share columns."""

    column: int  # where it crosses the middle row of the line's mask
    cost: float  # log-score cost of cutting here (0 in a gap)
    gap_width: int = 0  # > 0: the cut is in a gap between inks this wide
    slope: float = 0.0  # columns it moves right per row down the line

    def boundary(self, rows: int) -> np.ndarray:
        """The cut's column in each of the line's rows (fractional)."""
        return self.column + self.slope * (np.arange(rows) - (rows - 1) / 2)

    def left_edge(self, rows: int) -> int:
        """The leftmost column the cut reaches in the line: where the mask of the piece right of it starts."""
        return max(0, int(np.floor(self.boundary(rows).min())))


def thin_straight_lines(ink: np.ndarray, vertical: bool) -> np.ndarray:
    """Pixels of long, thin, straight vertical (or horizontal) runs of ink: what the photo pipeline's ruled-line
    removal left of grid and margin lines. Where such a line crosses a stroke, the (thick) stroke is kept."""
    side = ink.shape[0] if vertical else ink.shape[1]
    length = max(3 * MIN_DIGIT_HEIGHT_PX, round(THIN_LINE_MIN_LENGTH_FRACTION * side))
    along = np.ones((length, 1) if vertical else (1, length), np.uint8)
    across = np.ones((1, THIN_LINE_MAX_THICKNESS_PX) if vertical else (THIN_LINE_MAX_THICKNESS_PX, 1), np.uint8)
    runs = cv2.morphologyEx(ink, cv2.MORPH_OPEN, along)
    thick = cv2.morphologyEx(ink, cv2.MORPH_OPEN, across)
    return (runs > 0) & (thick == 0)


def without_line_remnants(ink: np.ndarray) -> np.ndarray:
    lines = thin_straight_lines(ink, vertical=True) | thin_straight_lines(ink, vertical=False)
    return np.where(lines, 0, ink).astype(np.uint8)


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
    left_bound, right_bound = left.boundary(rows), right.boundary(rows)
    start = left.left_edge(rows)
    stop = min(mask.shape[1], int(np.ceil(right_bound.max())))
    if stop <= start:
        return None
    columns = np.arange(start, stop)[None, :]
    between = (columns >= left_bound[:, None]) & (columns < right_bound[:, None])
    piece = np.where(between, mask[:, start:stop], 0).astype(np.uint8)
    if not piece.any():
        return None
    count, labels, stats, _ = cv2.connectedComponentsWithStats(piece, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    at_left = touching_labels(labels, columns < left_bound[:, None] + 1, count) & (left.gap_width == 0)
    at_right = touching_labels(labels, columns >= right_bound[:, None] - 1, count) & (right.gap_width == 0)
    shaved = (at_left | at_right) & (areas < FRAGMENT_AREA_FRACTION * areas.max())
    keep = 1 + np.flatnonzero(~shaved)
    return np.where(np.isin(labels, keep), 255, 0).astype(np.uint8)


def touching_labels(labels: np.ndarray, edge: np.ndarray, count: int) -> np.ndarray:
    """(count - 1,) bool: which components of `labels` (1..count-1) have a pixel in `edge`."""
    touching = np.zeros(count, bool)
    touching[np.unique(labels[edge & (labels > 0)])] = True
    return touching[1:]


def plausible_piece(piece: np.ndarray | None, height: float) -> bool:
    if piece is None or not piece.any():
        return False
    columns = np.flatnonzero(piece.any(axis=0))
    width = columns[-1] - columns[0] + 1
    return ink_height(piece) >= PIECE_MIN_HEIGHT_FRACTION * height and width <= MAX_DIGIT_WIDTH_FRACTION * height


@dataclass
class LineInk:
    """One line of writing: its digit ink (separators left out) over its box in the working image."""

    mask: np.ndarray  # uint8 0/255, (box height, box width)
    x: int
    y: int
    height: float  # H, the line's digit height
    bottom: float  # the line's baseline: the median bottom of its tall components, in the working image


@dataclass
class Candidates:
    """The candidate cuts of a line and every plausible piece between two of them."""

    cuts: list[Cut]
    pieces: dict[tuple[int, int], np.ndarray]  # (i, j): the ink between cuts[i] and cuts[j], over the line's rows


# Rates the candidate pieces of a line: the log-score of each piece being one whole digit, in `pieces` order.
PieceScorer = Callable[[LineInk, Candidates], np.ndarray]


def candidate_pieces(line: LineInk) -> Candidates:
    """Every stretch between two candidate cuts that could hold one digit: not wider than a digit, tall enough."""
    cuts = candidate_cuts(line.mask, line.height)
    pieces: dict[tuple[int, int], np.ndarray] = {}
    for i, left in enumerate(cuts):
        for j in range(i + 1, len(cuts)):
            ink_span = cuts[j].column - left.column - (left.gap_width + cuts[j].gap_width) / 2
            if ink_span > MAX_DIGIT_WIDTH_FRACTION * line.height:
                break  # wider than a digit
            piece = piece_mask(line.mask, left, cuts[j])
            if plausible_piece(piece, line.height):
                pieces[i, j] = piece
    return Candidates(cuts, pieces)


def confidence_scorer(score: Classifier) -> PieceScorer:
    """Pieces rated by a digit classifier's confidence in them (the log of its top probability)."""

    def rate(line: LineInk, candidates: Candidates) -> np.ndarray:
        confidence = score(np.stack([mask_to_mnist(piece) for piece in candidates.pieces.values()])).max(axis=1)
        return np.log(np.maximum(confidence, SMALLEST_PROBABILITY))

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


# --------------------------------------------------------------------------------------------- finding lines


def split_line(tall: list[Component], small: list[Component], labels: np.ndarray) -> tuple[LineInk, list[Component]]:
    """One line's digit ink (its tall components and the small marks that are not separators) and its separators."""
    height = line_height(tall)
    digit_area = float(np.median([c.area for c in tall]))
    marks = tall + small
    separators = [m for m in small if is_separator(m, marks, height, digit_area)]
    members = tall + [m for m in small if m not in separators]
    box = bounding(members)
    window = labels[box.y : box.y + box.height, box.x : box.x + box.width]
    mask = np.where(np.isin(window, [c.label for c in members]), 255, 0).astype(np.uint8)
    bottom = float(np.median([c.y + c.height for c in tall]))
    return LineInk(mask, box.x, box.y, height, bottom), separators


@dataclass
class InkLines:
    """An image's ink sorted into lines of writing."""

    lines: list[tuple[LineInk, list[Component]]]  # each line's digit ink and its separators, top to bottom
    gray: np.ndarray  # the working image's gray (ink dark, lighting flattened), `preprocess.InkStages.gray`
    scale: float  # working image -> input image

    @property
    def shape(self) -> tuple[int, int]:
        """The working image's (height, width)."""
        return self.gray.shape


def lines_of_ink(image) -> InkLines | None:
    """The photo pipeline's ink of `image` (PIL image or array), sorted into lines; None where there is no ink."""
    array = image_to_array(image)
    ink = ink_stages(array)
    if not ink.has_ink:
        return None
    binary = without_line_remnants(ink.binary)
    labels, components = connected_components(binary)
    components = [c for c in components if max(c.height, c.width) >= MIN_DIGIT_HEIGHT_PX]
    components = digit_candidates(components, binary.shape) if components else []
    if not components:
        return None
    tallest = max(c.height for c in components)
    tall = [c for c in components if c.height >= TALL_FRACTION * tallest]
    typical_area = float(np.median([c.area for c in tall]))
    small = [c for c in components if c not in tall and c.area >= SPECK_AREA_FRACTION * typical_area]
    lines = merge_stacked_lines(group_lines(tall))
    small_by_line: list[list[Component]] = [[] for _ in lines]
    for mark in small:
        small_by_line[nearest_line(mark, lines)].append(mark)
    split = [split_line(line, marks, labels) for line, marks in zip(lines, small_by_line, strict=True)]
    scale = array.shape[1] / ink.original.shape[1]  # working image -> input image
    return InkLines(split, ink.gray, scale)


# ----------------------------------------------------------------------------------------------------- reading


def to_input_box(x: int, y: int, width: int, height: int, scale: float) -> Box:
    """A working-image box -> the input image's pixels."""
    return round(x * scale), round(y * scale), max(1, round(width * scale)), max(1, round(height * scale))


def line_text(segments: list[Segment], digits: list[int], height: float) -> str:
    """The digits of a line, with a space where the gap between two inks is much wider than the others."""
    gaps = [right.x - (left.x + left.width) for left, right in zip(segments, segments[1:], strict=False)]
    word_gap = max(WORD_GAP_FRACTION * height, WORD_GAP_TIMES_MEDIAN * float(np.median(gaps))) if gaps else 0
    text = str(digits[0]) if digits else ""
    for gap, digit in zip(gaps, digits[1:], strict=True):
        text += (" " if gap > word_gap else "") + str(digit)
    return text


def paper_level(gray: np.ndarray, line: LineInk) -> float:
    """The paper's gray around a line's digits: the median of its box where there is no ink."""
    box = gray[line.y : line.y + line.mask.shape[0], line.x : line.x + line.mask.shape[1]]
    paper = box[line.mask == 0]
    return float(np.median(paper)) if paper.size else float(WHITE)


def gray_views(gray: np.ndarray, line: LineInk, segments: list[Segment], size: int) -> np.ndarray:
    """The line's digits read from the gray image (`preprocess.gray_to_mnist`): each segment's ink and the faint rim
    around it, without the other digits' ink."""
    line_ink = np.zeros(gray.shape, bool)
    line_ink[line.y : line.y + line.mask.shape[0], line.x : line.x + line.mask.shape[1]] = line.mask > 0
    paper, margin = paper_level(gray, line), FAINT_RIM_PX + 1
    views = []
    for segment in segments:
        top, left = max(0, segment.y - margin), max(0, segment.x - margin)
        bottom = min(gray.shape[0], segment.y + segment.height + margin)
        right = min(gray.shape[1], segment.x + segment.width + margin)
        own = np.zeros((bottom - top, right - left), np.uint8)
        own[segment.y - top : segment.y - top + segment.height, segment.x - left : segment.x - left + segment.width] = (
            segment.mask
        )
        others = line_ink[top:bottom, left:right] & (own == 0)
        views.append(gray_to_mnist(gray[top:bottom, left:right], own, others, paper, size))
    return np.stack(views)


def digit_probabilities(
    classify: Classifier, gray: np.ndarray, line: LineInk, segments: list[Segment], size: int
) -> np.ndarray:
    """Each segment read twice, from its binarized ink (`mask_to_mnist`, as single digits are) and from the gray
    levels around it (`gray_views`), the two probabilities averaged."""
    binary = np.stack([mask_to_mnist(segment.mask, size) for segment in segments])
    both = classify(np.concatenate([binary, gray_views(gray, line, segments, size)]))
    return (both[: len(segments)] + both[len(segments) :]) / 2


def read_number(
    image, classify: Classifier, unsure_threshold: float, size: int = 28, score_pieces: PieceScorer | None = None
) -> NumberReading:
    """Every digit in `image` (PIL image or array), in lines, left to right. `classify` reads the final digits;
    `score_pieces` (default: `classify`'s confidence) rates the candidate pieces of a line, of which there are many.
    """
    score_pieces = score_pieces or confidence_scorer(classify)
    found = lines_of_ink(image)
    if found is None:
        return NumberReading(problem=NO_DIGITS)
    line_readings, separators = [], []
    for line, line_separators in found.lines:
        separators += [
            Separator(
                separator_kind(m, line.bottom, line.height), to_input_box(m.x, m.y, m.width, m.height, found.scale)
            )
            for m in line_separators
        ]
        segments = line_segments(line, score_pieces)
        if not segments:
            continue
        probabilities = digit_probabilities(classify, found.gray, line, segments, size)
        digits = [
            DigitReading(
                int(p.argmax()),
                float(p.max()),
                to_input_box(s.x, s.y, s.width, s.height, found.scale),
                bool(p.max() < unsure_threshold),
            )  # fmt: skip
            for s, p in zip(segments, probabilities, strict=True)
        ]
        line_readings.append(LineReading(line_text(segments, [d.digit for d in digits], line.height), digits))
    return NumberReading(line_readings, separators, problem=None if line_readings else NO_DIGITS)
