"""Reading whole numbers: every digit in an image, segmented, recognized, put in lines and read left to right.

The image goes through the photo pipeline's first stages (`preprocess.ink_stages`: best channel, lighting,
threshold, ruled lines removed). Its connected components are then
1. sorted into lines of writing by their vertical position;
2. merged where a digit is broken (a 5's hat, a 4's open top: pieces stacked over one another);
3. split where digits touch: every group wider than a narrow digit is cut at the columns where the classifier, scoring
   each piece, likes the pieces best (a dynamic programme over candidate cuts; not cutting is one of the choices);
4. small marks left over are separators (dot, comma, dash) or specks, reported but never read as digits.
Each digit then goes through the same normalization as single digits (`preprocess.mask_to_mnist`) and the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from digitrec.preprocess import Component, connected_components, image_to_array, ink_stages, mask_to_mnist, tight_crop

# Sizes are fractions of the line's digit height H (the median height of its tall components).
TALL_FRACTION = 0.5  # a component at least this tall (vs the tallest) is a digit or most of one
SMALL_FRACTION = 0.45  # shorter than this (vs H): a piece, a separator or a speck
SPECK_AREA_FRACTION = 0.02  # less ink than this (vs the median tall component): noise, dropped
MIN_DIGIT_HEIGHT_PX = 8  # in the working image: smaller marks are specks (as for single digits)
LINE_OVERLAP_FRACTION = 0.5  # a component belongs to a line when this much of its height lies in the line's band
PIECE_REACH_FRACTION = 0.35  # a small piece within this gap (vs H) of a digit, above or below it, is part of it
PIECE_X_OVERLAP = 0.5  # ... and overlapping it in x by this fraction of the piece's width
STACKED_X_OVERLAP = 0.6  # two tall pieces overlapping this much in x (vs the narrower) are one broken digit ...
MAX_DIGIT_WIDTH_FRACTION = 1.15  # ... when together they are no wider than this (vs H); also the widest piece cut
MIN_PIECE_WIDTH_FRACTION = 0.12  # the narrowest piece a cut may leave (a "1" written straight)
SPLIT_WIDTH_FRACTION = 0.8  # groups wider than this (vs H) are offered to the splitter
CUT_STEP_FRACTION = 1 / 12  # candidate cuts every this much of H, plus the minima of the ink's column profile
CUT_INK_PENALTY = 1.0  # log-score cost of cutting through a full stroke-width of ink (the column's ink vs stroke)
PIECE_MIN_HEIGHT_FRACTION = 0.4  # a piece must keep ink at least this tall (vs H) to be a digit
FRAGMENT_AREA_FRACTION = 0.2  # in a cut piece, bits of a neighbour below this share of the main part are dropped
WORD_GAP_FRACTION = 1.2  # a gap wider than this (vs H) between digits' inks starts a new number: a space ...
WORD_GAP_TIMES_MEDIAN = 2.5  # ... when it is also this many times the line's median gap (a "1" leaves wide gaps)
DASH_ASPECT = 1.8  # a small mark this many times wider than tall is a dash
COMMA_ASPECT = 1.5  # ... this many times taller than wide, low on the line, a comma; otherwise low: a dot
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


def vertical_overlap(component: Component, top: float, bottom: float) -> float:
    """Share of the component's height inside the band [top, bottom)."""
    overlap = min(component.y + component.height, bottom) - max(component.y, top)
    return max(overlap, 0) / component.height


def group_lines(tall: list[Component]) -> list[list[Component]]:
    """Tall components -> lines of writing, top to bottom; a component joins the first line whose band (the median
    extent of its members) holds most of it."""
    lines: list[list[Component]] = []
    for component in sorted(tall, key=lambda c: c.y + c.height / 2):
        for line in lines:
            top = float(np.median([c.y for c in line]))
            bottom = float(np.median([c.y + c.height for c in line]))
            if vertical_overlap(component, top, bottom) >= LINE_OVERLAP_FRACTION:
                line.append(component)
                break
        else:
            lines.append([component])
    return sorted(lines, key=lambda line: min(c.y for c in line))


def nearest_line(component: Component, lines: list[list[Component]]) -> int:
    centre = component.y + component.height / 2
    middles = [np.median([c.y + c.height / 2 for c in line]) for line in lines]
    return int(np.argmin([abs(centre - middle) for middle in middles]))


def is_piece_of(small: Component, digit: Component, height: float) -> bool:
    """A short component over or under a digit, overlapping it in x: a broken-off stroke of it."""
    overlap = min(small.x + small.width, digit.x + digit.width) - max(small.x, digit.x)
    return overlap >= PIECE_X_OVERLAP * small.width and digit.gap_to(small) <= PIECE_REACH_FRACTION * height


def is_broken_digit(first: Component, second: Component, height: float) -> bool:
    """Two tall components stacked over one another within one digit's width (a 4 with an open top)."""
    union_width = max(first.x + first.width, second.x + second.width) - min(first.x, second.x)
    return first.x_overlap(second) >= STACKED_X_OVERLAP and union_width <= MAX_DIGIT_WIDTH_FRACTION * height


def separator_kind(mark: Component, line_bottom: float, height: float) -> str:
    if mark.width >= DASH_ASPECT * mark.height:
        return "dash"
    low = mark.y + mark.height / 2 >= line_bottom - 0.35 * height
    if low and mark.height >= COMMA_ASPECT * mark.width:
        return "comma"
    return "dot" if low else "mark"


def merge_into_groups(
    tall: list[Component], small: list[Component], height: float
) -> tuple[list[list[Component]], list[Component]]:
    """(digit groups, left-over small marks) of one line: small pieces join the digit they hang over or under,
    stacked tall pieces join each other."""
    groups = [[c] for c in sorted(tall, key=lambda c: c.x)]
    merged = True
    while merged:
        merged = False
        for i in range(len(groups) - 1):
            if is_broken_digit(bounding(groups[i]), bounding(groups[i + 1]), height):
                groups[i] += groups.pop(i + 1)
                merged = True
                break
    leftovers = []
    for piece in small:
        owners = [g for g in groups if is_piece_of(piece, bounding(g), height)]
        if owners:
            min(owners, key=lambda g: bounding(g).gap_to(piece)).append(piece)
        else:
            leftovers.append(piece)
    return groups, leftovers


def bounding(components: list[Component]) -> Component:
    x0, y0 = min(c.x for c in components), min(c.y for c in components)
    x1 = max(c.x + c.width for c in components)
    y1 = max(c.y + c.height for c in components)
    return Component(-1, x0, y0, x1 - x0, y1 - y0, sum(c.area for c in components))


def group_segment(group: list[Component], labels: np.ndarray) -> Segment:
    box = bounding(group)
    window = labels[box.y : box.y + box.height, box.x : box.x + box.width]
    mask = np.where(np.isin(window, [c.label for c in group]), 255, 0).astype(np.uint8)
    return Segment(box.x, box.y, mask)


# --------------------------------------------------------------------------------------------------- splitting


def candidate_cuts(mask: np.ndarray, height: float) -> list[int]:
    """Columns where a cut may go: a regular grid, and the local minima of the ink's column profile."""
    width = mask.shape[1]
    margin = max(1, round(MIN_PIECE_WIDTH_FRACTION * height))
    step = max(1, round(CUT_STEP_FRACTION * height))
    cuts = set(range(margin, width - margin + 1, step))
    profile = np.count_nonzero(mask, axis=0)
    for column in range(margin, width - margin):
        if profile[column] <= profile[column - 1] and profile[column] <= profile[column + 1]:
            cuts.add(column)
    return sorted(cuts)


def stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of the ink (2 x area / outline), at least one pixel."""
    contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    outline = sum(cv2.arcLength(contour, closed=True) for contour in contours)
    return max(1.0, 2.0 * np.count_nonzero(mask) / outline) if outline else 1.0


def piece_mask(mask: np.ndarray, left: int, right: int) -> np.ndarray | None:
    """The columns [left, right) of a group's mask, without the slivers of a neighbouring digit the cut took along;
    None when what is left is too small to be a digit."""
    piece = np.ascontiguousarray(mask[:, left:right])
    if not piece.any():
        return None
    _, labels, stats, _ = cv2.connectedComponentsWithStats(piece, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = 1 + np.flatnonzero(areas >= FRAGMENT_AREA_FRACTION * areas.max())
    return np.where(np.isin(labels, keep), 255, 0).astype(np.uint8)


def best_split(segment: Segment, height: float, classify: Classifier) -> list[Segment]:
    """The segment cut into the pieces the classifier likes best (perhaps one: no cut).

    Score of a cutting = sum over pieces of log(confidence) - CUT_INK_PENALTY x (ink crossed / stroke width) per cut;
    found by dynamic programming over the candidate cuts (pieces between MIN_PIECE_WIDTH_FRACTION and
    MAX_DIGIT_WIDTH_FRACTION of H wide)."""
    mask = segment.mask
    nodes = [0, *candidate_cuts(mask, height), mask.shape[1]]
    min_width = MIN_PIECE_WIDTH_FRACTION * height
    max_width = max(MAX_DIGIT_WIDTH_FRACTION * height, min_width)
    spans = [
        (i, j)
        for i in range(len(nodes))
        for j in range(i + 1, len(nodes))
        if min_width <= nodes[j] - nodes[i] <= max_width or (i == 0 and j == len(nodes) - 1)
    ]
    pieces, images, scored = {}, [], []
    for i, j in spans:
        piece = piece_mask(mask, nodes[i], nodes[j])
        if piece is None or ink_height(piece) < PIECE_MIN_HEIGHT_FRACTION * height:
            continue
        pieces[i, j] = piece
        images.append(mask_to_mnist(piece))
        scored.append((i, j))
    if not scored:
        return [segment]
    log_confidence = np.log(np.maximum(classify(np.stack(images)).max(axis=1), 1e-12))
    piece_score = dict(zip(scored, log_confidence, strict=True))
    stroke = stroke_width(mask)
    profile = np.count_nonzero(mask, axis=0)
    cut_cost = [0.0] + [CUT_INK_PENALTY * profile[min(n, len(profile) - 1)] / stroke for n in nodes[1:-1]] + [0.0]
    best = np.full(len(nodes), -np.inf)
    previous = np.full(len(nodes), -1)
    best[0] = 0.0
    for j in range(1, len(nodes)):
        for i in range(j):
            if (i, j) in piece_score and best[i] > -np.inf:
                score = best[i] + piece_score[i, j] - cut_cost[j]
                if score > best[j]:
                    best[j], previous[j] = score, i
    if previous[-1] < 0:
        return [segment]
    cuts, j = [], len(nodes) - 1
    while j > 0:
        cuts.append((int(previous[j]), j))
        j = int(previous[j])
    return [piece_segment(segment, pieces[i, j], nodes[i]) for i, j in reversed(cuts)]


def ink_height(mask: np.ndarray) -> int:
    rows = np.flatnonzero(mask.any(axis=1))
    return int(rows[-1] - rows[0] + 1)


def piece_segment(segment: Segment, piece: np.ndarray, left: int) -> Segment:
    rows, columns = np.flatnonzero(piece.any(axis=1)), np.flatnonzero(piece.any(axis=0))
    return Segment(segment.x + left + int(columns[0]), segment.y + int(rows[0]), tight_crop(piece))


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


def read_line(
    tall: list[Component], small: list[Component], labels: np.ndarray, classify: Classifier
) -> tuple[list[Segment], list[Component], float]:
    """One line's digit segments, left to right, its left-over small marks and its digit height."""
    height = median_digit_height(tall)
    groups, leftovers = merge_into_groups(tall, small, height)
    segments = []
    for group in groups:
        segment = group_segment(group, labels)
        if segment.width > SPLIT_WIDTH_FRACTION * height:
            segments.extend(best_split(segment, height, classify))
        else:
            segments.append(segment)
    return sorted(segments, key=lambda s: s.x), leftovers, height


def read_number(image, classify: Classifier, unsure_threshold: float, size: int = 28) -> NumberReading:
    """Every digit in `image` (PIL image or array), in lines, left to right; `classify` scores MNIST-like digits."""
    array = image_to_array(image)
    ink = ink_stages(array)
    scale = array.shape[1] / ink.original.shape[1]  # working image -> input image
    if not ink.has_ink:
        return NumberReading(problem=NO_DIGITS)
    labels, components = connected_components(ink.binary)
    components = [c for c in components if c.height >= MIN_DIGIT_HEIGHT_PX or c.width >= MIN_DIGIT_HEIGHT_PX]
    if not components:
        return NumberReading(problem=NO_DIGITS)
    tallest = max(c.height for c in components)
    tall = [c for c in components if c.height >= TALL_FRACTION * tallest]
    typical_area = float(np.median([c.area for c in tall]))
    small = [c for c in components if c not in tall and c.area >= SPECK_AREA_FRACTION * typical_area]
    lines = group_lines(tall)
    small_by_line: list[list[Component]] = [[] for _ in lines]
    for mark in small:
        small_by_line[nearest_line(mark, lines)].append(mark)
    line_readings, separators = [], []
    for line, marks in zip(lines, small_by_line, strict=True):
        segments, leftovers, height = read_line(line, marks, labels, classify)
        probabilities = classify(np.stack([mask_to_mnist(s.mask, size) for s in segments]))
        digits = [
            DigitReading(
                int(p.argmax()),
                float(p.max()),
                to_input_box(s.x, s.y, s.width, s.height, scale),
                bool(p.max() < unsure_threshold),
            )  # fmt: skip
            for s, p in zip(segments, probabilities, strict=True)
        ]
        line_readings.append(LineReading(line_text(segments, [d.digit for d in digits], height), digits))
        bottom = float(np.median([c.y + c.height for c in line]))
        separators += [
            Separator(separator_kind(m, bottom, height), to_input_box(m.x, m.y, m.width, m.height, scale))
            for m in leftovers
        ]
    return NumberReading(line_readings, separators)
