"""An image's ink sorted into lines of writing, with separators (dots, commas, dashes) taken out."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from digitrec.images.arrays import image_to_array
from digitrec.images.components import Component, connected_components, digit_candidates, touches_border
from digitrec.images.photo import ink_stages

# Sizes are fractions of the line's digit height H (the median height of its tall components).
TALL_FRACTION = 0.5  # a component at least this tall (vs the tallest in the image) is a digit or most of one
SEPARATOR_HEIGHT_FRACTION = 0.35  # a mark shorter than this (vs H), clear of any taller ink above or below it, ...
SEPARATOR_AREA_FRACTION = 0.25  # ... with less ink than this (vs the median digit), is a separator, not a digit
SPECK_AREA_FRACTION = 0.02  # less ink than this (vs the median tall component): noise, dropped
MIN_DIGIT_HEIGHT_PX = 8  # in the working image: smaller marks are specks (as for single digits)
LINE_OVERLAP_FRACTION = 0.5  # a component belongs to a line when this much of its height lies in the line's band
STACKED_GAP_FRACTION = 0.25  # a "line" this close under another (vs the shorter) and under its columns is its rest
BAND_HEIGHT_FRACTION = 0.75  # a line's H is at least this share of its band (digits jitter about the baseline)
DASH_ASPECT = 1.8  # a small mark this many times wider than tall is a dash
COMMA_ASPECT = 1.5  # ... this many times taller than wide, low on the line, a comma; otherwise low: a dot
THIN_LINE_MIN_LENGTH_FRACTION = 0.5  # straight runs of ink this long (vs the image's side) ...
THIN_LINE_MAX_THICKNESS_PX = 4  # ... and thinner than this are left-overs of ruled, grid or margin lines
# Numbers: ink found against a patterned paper (cheque security backgrounds, ORAND-CAR-A dev crops). Their fine
# guilloche lines and grain count as noise, and the ink fills a fifth of a tight crop: the robust sigma is 13-33
# gray levels there, the ink 65-150 darker, so the photo floors (SNR 6, ink 4 sigmas darker) refused 54 of the 128
# dev crops. The contrast floor (MIN_INK_CONTRAST) still refuses blank and noisy paper; the line rules below
# refuse marks that are no digits.
NUMBER_MIN_INK_SNR = 3.0  # lowest SNR of the 128 dev crops: 3.6
NUMBER_INK_NOISE_SIGMAS = 2.0  # ink: darker than Otsu's threshold and than the paper by 2 sigmas (4 cut strokes)
THIN_LINE_MAX_GAP_PX = 6  # a printed baseline thresholded into dashes, gaps up to this wide, is still one line
BORDER_DIGIT_HEIGHT_RATIO = 1.5  # touching the border but no taller than this x the inner digits: a cut digit
# ... and up to this many times taller when its box holds none of them: a tall digit ("4" reaching past the crop
# beside small zeros) or touching digits run together ("7000" in one stroke), not a frame around the number; a
# page or table edge runs the length of the image, far past any digit
BORDER_FRAME_HEIGHT_RATIO = 3.0
LONG_DASH_ASPECT = 3.0  # a short mark this many times wider than tall is a dash ("-", ".-") whatever its ink
COMMA_HEIGHT_FRACTION = 0.7  # a mark below the line's middle, taller than wide and shorter than this (vs H): comma


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


def is_separator(mark: Component, others: list[Component], height: float, digit_area: float, middle: float) -> bool:
    """Short, little ink (or a dash: wide and flat, however long; or a comma: little ink hanging from the lower
    half of the line, below the line's `middle` row), and no other ink above or below it (a 5's hat has its body
    below it)."""
    dash = mark.width >= LONG_DASH_ASPECT * mark.height
    comma = mark.y >= middle and mark.width <= mark.height < COMMA_HEIGHT_FRACTION * height
    if (mark.height >= SEPARATOR_HEIGHT_FRACTION * height and not comma) or (
        mark.area >= SEPARATOR_AREA_FRACTION * digit_area and not dash
    ):
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


def thin_straight_lines(ink: np.ndarray, vertical: bool) -> np.ndarray:
    """Pixels of long, thin, straight vertical (or horizontal) runs of ink: what the photo pipeline's ruled-line
    removal left of grid and margin lines. Where such a line crosses a stroke, the (thick) stroke is kept."""
    side = ink.shape[0] if vertical else ink.shape[1]
    length = max(3 * MIN_DIGIT_HEIGHT_PX, round(THIN_LINE_MIN_LENGTH_FRACTION * side))
    along = np.ones((length, 1) if vertical else (1, length), np.uint8)
    across = np.ones((1, THIN_LINE_MAX_THICKNESS_PX) if vertical else (THIN_LINE_MAX_THICKNESS_PX, 1), np.uint8)
    bridge = np.ones((THIN_LINE_MAX_GAP_PX + 1, 1) if vertical else (1, THIN_LINE_MAX_GAP_PX + 1), np.uint8)
    runs = cv2.morphologyEx(cv2.morphologyEx(ink, cv2.MORPH_CLOSE, bridge), cv2.MORPH_OPEN, along) & ink
    thick = cv2.morphologyEx(ink, cv2.MORPH_OPEN, across)
    return (runs > 0) & (thick == 0)


def without_line_remnants(ink: np.ndarray) -> np.ndarray:
    lines = thin_straight_lines(ink, vertical=True) | thin_straight_lines(ink, vertical=False)
    return np.where(lines, 0, ink).astype(np.uint8)


@dataclass
class LineInk:
    """One line of writing: its digit ink (separators left out) over its box in the working image."""

    mask: np.ndarray  # uint8 0/255, (box height, box width)
    x: int
    y: int
    height: float  # H, the line's digit height
    bottom: float  # the line's baseline: the median bottom of its tall components, in the working image


def split_line(tall: list[Component], small: list[Component], labels: np.ndarray) -> tuple[LineInk, list[Component]]:
    """One line's digit ink (its tall components and the small marks that are not separators) and its separators."""
    height = line_height(tall)
    digit_area = float(np.median([c.area for c in tall]))
    marks = tall + small
    middle = float(np.median([c.y + c.height / 2 for c in tall]))
    separators = [m for m in small if is_separator(m, marks, height, digit_area, middle)]
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


def encloses(outer: Component, inner: Component) -> bool:
    """`inner`'s centre lies in `outer`'s box."""
    cx, cy = inner.x + inner.width / 2, inner.y + inner.height / 2
    return outer.x <= cx < outer.x + outer.width and outer.y <= cy < outer.y + outer.height


def is_cut_digit(component: Component, inner: list[Component]) -> bool:
    """A component touching the border that is ink of the number (a digit cut by a tight crop, a tall digit,
    digits run together), not a frame, table or page edge around it: no taller than BORDER_DIGIT_HEIGHT_RATIO x the
    tallest inner component, or up to BORDER_FRAME_HEIGHT_RATIO x when its box holds none of their centres."""
    tallest = max(c.height for c in inner)
    if component.height <= BORDER_DIGIT_HEIGHT_RATIO * tallest:
        return True
    return component.height <= BORDER_FRAME_HEIGHT_RATIO * tallest and not any(encloses(component, c) for c in inner)


def number_candidates(components: list[Component], shape: tuple[int, int]) -> list[Component]:
    """`images.components.digit_candidates`, but a component touching the border is kept where it is ink of the
    number (`is_cut_digit`): a number cropped tightly has digits cut by the crop's edge; frames and page edges around
    a number hold its digits or run far past them."""
    inner = [c for c in components if not touches_border(c, shape)]
    candidates = digit_candidates(components, shape)
    if not inner or len(candidates) == len(components):
        return candidates
    return [c for c in components if c in candidates or is_cut_digit(c, inner)]


def lines_of_ink(image) -> InkLines | None:
    """The photo pipeline's ink of `image` (PIL image or array), sorted into lines; None where there is no ink."""
    array = image_to_array(image)
    ink = ink_stages(array, NUMBER_MIN_INK_SNR, NUMBER_INK_NOISE_SIGMAS)
    if not ink.has_ink:
        return None
    binary = without_line_remnants(ink.binary)
    labels, components = connected_components(binary)
    components = [c for c in components if max(c.height, c.width) >= MIN_DIGIT_HEIGHT_PX]
    components = number_candidates(components, binary.shape) if components else []
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
