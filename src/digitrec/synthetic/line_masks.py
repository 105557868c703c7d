"""Seeded binary lines of handwritten digits, as the reader's ink stage leaves them, for training the line model.

Each line is MNIST training digits in a row, drawn straight as ink masks (no paper, no camera: the line model reads
the reader's binarized line, `reading.lines.LineInk`, so what matters is what survives binarization): each digit
with its own size, width, slant, baseline and pen, neighbours apart or running into each other; and what real
amounts add around the digits: 1s with a long flag, crossed 7s and 9s with a curled tail (`synthetic.styles`),
digits joined by ligatures at the foot or the top, trailing digits written smaller
("3.000"), round sums whose zeros are joined at the top ("amounts" style), thousands dots and commas, a trailing
"-" or ".-", an underline, specks. The shares and ranges below describe writing in general (cheques, forms), not
any image here.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from digitrec.images.components import connected_components
from digitrec.mnist import WHITE
from digitrec.reading.lines import TALL_FRACTION, line_height
from digitrec.synthetic.styles import (
    FLAG_ANGLE_RANGE_DEG,
    FLAG_BEND_RANGE,
    FLAG_LENGTH_RANGE,
    LONG_FLAG_ANGLE_RANGE_DEG,
    LONG_FLAG_LENGTH_RANGE,
    crossed_seven,
    flagged_one,
    hooked_nine,
)

INK_LEVEL = 128  # an MNIST pixel at least this bright is ink
LENGTH_WEIGHTS = {1: 1, 2: 2, 3: 3, 4: 4, 5: 4, 6: 3, 7: 2, 8: 1, 9: 1, 10: 1, 11: 1}  # digits per line
DIGIT_HEIGHT_RANGE_PX = (24.0, 44.0)  # the line's digit height H in the drawing
SCALE_JITTER = 0.12  # each digit up to this much taller or shorter than H
WIDTH_RANGE = (0.8, 1.6)  # each digit's width vs MNIST's for its height (cheque zeros are wide ovals)
SLANT_RANGE = (-0.35, 0.25)  # horizontal shift per row of height (> 0: leaning right at the top)
BASELINE_JITTER = 0.08  # of H
INK_THRESHOLD_RANGE = (60, 190)  # where the resized MNIST grays are cut: thick or thin strokes
THICK_PEN_SHARE = 0.2  # lines written with a felt pen: strokes dilated ...
THICK_PEN_RANGE = (0.02, 0.07)  # ... by this share of H on each side
GAP_RANGE = (-0.08, 0.45)  # space between neighbours' boxes, of H (< 0: they run into each other)
FLAGGED_ONE_SHARE = 0.5  # of the 1s
SMALL_TAIL_SHARE = 0.2  # lines whose digits after the first one or two are written smaller ...
SMALL_TAIL_SCALE = (0.5, 0.8)  # ... by this much, on the same baseline
SEPARATOR_SHARE = 0.3  # lines with a dot or comma between two digits
TRAILING_DASH_SHARE = 0.3  # lines ending in "-" or ".-"
UNDERLINE_SHARE = 0.15  # lines underlined
SPECK_SHARE = 0.2  # lines with a few specks of noise
LINE_SLOPE = 0.04  # rows per column the line may climb or fall
BORDER_CUT_SHARE = 0.1  # lines whose first or last digit is cut by the crop (up to a quarter of its width)
BORDER_CUT_MAX = 0.25
# Sums of money on cheques, invoices and forms are mostly round: a few leading digits and then zeros ("15.000",
# "3500", "200,00"); such zeros are often written small, quickly and joined in one stroke at their tops
ROUND_LEADING_DIGITS = (1, 3)  # the digits before the zeros (the first not a zero)
SMALL_ZEROS_SHARE = 0.5  # of round amounts: their zeros written smaller (SMALL_TAIL_SCALE)
JOINED_ZEROS_SHARE = 0.5  # of round amounts: their zeros joined at the top ...
JOINED_ZERO_GAP_RANGE = (-0.08, 0.15)  # ... this close together (of H)
JOINED_ZERO_LEVEL = 0.25  # the joining stroke leaves a zero and enters the next this far below its top (of its height)


@dataclass(frozen=True)
class LineStyles:
    """How the digits of a line are written beyond MNIST's own shapes (`synthetic.styles`)."""

    flag_length_range: tuple[float, float]  # a flagged 1's flag, as a share of its height
    flag_angle_range_deg: tuple[float, float]  # below the horizontal
    crossed_seven_share: float  # of the 7s
    hooked_nine_share: float  # of the 9s
    ligature_share: float  # lines written joined up: a stroke from each digit to the next one ...
    ligature_level_range: tuple[float, float]  # ... at this height (share of H above the baseline)
    curved_flag_share: float = 0.0  # of the flagged 1s: the flag bowed (FLAG_BEND_RANGE)
    round_amount_share: float = 0.0  # lines written as a round sum (ROUND_LEADING_DIGITS, then zeros)


LINE_STYLES = {  # by name (training.config.LINE_STYLE_NAMES)
    # the shipped line model's: flags of moderate length, ligatures at the foot only
    "basic": LineStyles(FLAG_LENGTH_RANGE, FLAG_ANGLE_RANGE_DEG, 0.0, 0.0, 0.15, (0.1, 0.1)),
    # and what the dev cheques' misreadings showed (docs/realworld.md): flags as long as the stem or nearly flat,
    # crossed 7s, 9s curled at the foot, ligatures at any height as cursive zeros are joined ("3.000" in one stroke)
    "latin": LineStyles(LONG_FLAG_LENGTH_RANGE, LONG_FLAG_ANGLE_RANGE_DEG, 0.3, 0.3, 0.25, (0.1, 0.9)),
    # and sums of money as they are written: round amounts with small joined zeros, flags bowed like a cursive "l"
    "amounts": LineStyles(LONG_FLAG_LENGTH_RANGE, LONG_FLAG_ANGLE_RANGE_DEG, 0.3, 0.3, 0.25, (0.1, 0.9), 0.4, 0.4),
}


@dataclass(frozen=True)
class LineMask:
    mask: np.ndarray  # uint8 0/255 (rows, columns), the line's ink
    text: str  # its digits, left to right
    height: float  # H as the reader would measure it


def digit_mask(
    image: np.ndarray, label: int, height: float, rng: np.random.Generator, threshold: int, styles: LineStyles
) -> np.ndarray | None:
    """One MNIST digit (28x28 uint8) as an ink mask `height` tall, with its own width and slant."""
    if label == 1 and rng.random() < FLAGGED_ONE_SHARE:
        bowed = styles.curved_flag_share and rng.random() < styles.curved_flag_share
        bend = rng.uniform(*FLAG_BEND_RANGE) if bowed else 0.0
        image = flagged_one(image, rng, styles.flag_length_range, styles.flag_angle_range_deg, bend)
    if label == 7 and styles.crossed_seven_share and rng.random() < styles.crossed_seven_share:
        image = crossed_seven(image, rng)
    if label == 9 and styles.hooked_nine_share and rng.random() < styles.hooked_nine_share:
        image = hooked_nine(image, rng)
    rows, cols = np.nonzero(image >= INK_LEVEL)
    if not len(rows):
        return None
    crop = image[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    out_h = max(4, round(height))
    out_w = max(2, round(crop.shape[1] * out_h / crop.shape[0] * rng.uniform(*WIDTH_RANGE)))
    gray = cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    slant = rng.uniform(*SLANT_RANGE)
    extra = int(np.ceil(abs(slant) * out_h))
    shear = np.float32([[1, -slant, max(slant, 0.0) * out_h], [0, 1, 0]])  # the top moves by slant x height
    gray = cv2.warpAffine(gray, shear, (out_w + extra, out_h), flags=cv2.INTER_LINEAR)
    ink = gray >= threshold
    if not ink.any():
        return None
    rows, cols = np.nonzero(ink)
    return ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def round_amount_start(count: int, style: LineStyles, rng: np.random.Generator) -> int:
    """Where a line of `count` digits written as a round sum starts its zeros (ROUND_LEADING_DIGITS); `count`
    where the line is not one (`style.round_amount_share` of the lines of two digits or more are)."""
    if count < 2 or not style.round_amount_share or rng.random() >= style.round_amount_share:
        return count
    return int(rng.integers(ROUND_LEADING_DIGITS[0], min(ROUND_LEADING_DIGITS[1], count - 1) + 1))


def digit_index(labels: np.ndarray, rng: np.random.Generator, zero: bool, first_of_amount: bool) -> int:
    """A random digit of `labels`: any, a zero, or (the first digit of a round sum) anything but a zero."""
    if zero:
        return int(rng.choice(np.flatnonzero(labels == 0)))
    while True:
        index = int(rng.integers(len(labels)))
        if not first_of_amount or labels[index] != 0:
            return index


def draw_mark(canvas: np.ndarray, kind: str, x: int, baseline: int, height: float, stroke: int) -> int:
    """A separator drawn at column x on the baseline; returns the column after it."""
    if kind == "dot":
        radius = max(1, round(stroke * 0.8))
        cv2.circle(canvas, (x + radius, baseline - radius), radius, WHITE, -1)
        return x + 2 * radius + 1
    if kind == "comma":
        cv2.line(canvas, (x + stroke, baseline - stroke), (x, baseline + round(0.25 * height)), WHITE, stroke)
        return x + 2 * stroke + 1
    length = round(height * 0.5)
    middle = baseline - round(height * 0.45)
    cv2.line(canvas, (x, middle), (x + length, middle - round(0.05 * height)), WHITE, stroke)
    return x + length + 1


def synthetic_line(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator, styles: str) -> LineMask:
    """A seeded line of digits drawn from `images` / `labels` (MNIST training digits), written in `styles` (a name
    of LINE_STYLES)."""
    style = LINE_STYLES[styles]
    lengths = np.array(list(LENGTH_WEIGHTS))
    weights = np.array(list(LENGTH_WEIGHTS.values()), float)
    count = int(rng.choice(lengths, p=weights / weights.sum()))
    height = rng.uniform(*DIGIT_HEIGHT_RANGE_PX)
    threshold = int(rng.integers(*INK_THRESHOLD_RANGE))
    stroke = max(1, round(height * rng.uniform(0.06, 0.14)))
    small_from = int(rng.integers(1, 3)) if rng.random() < SMALL_TAIL_SHARE else count
    small_scale = rng.uniform(*SMALL_TAIL_SCALE)
    separator_after = int(rng.integers(0, count - 1)) if count > 1 and rng.random() < SEPARATOR_SHARE else -1
    zeros_from = round_amount_start(count, style, rng)
    if zeros_from < count and rng.random() < SMALL_ZEROS_SHARE:
        small_from = zeros_from
    joined_zeros = zeros_from < count and rng.random() < JOINED_ZEROS_SHARE
    slope = rng.uniform(-LINE_SLOPE, LINE_SLOPE)
    margin = round(height)
    canvas = np.zeros((round(3 * height) + 2 * margin, round(count * 2.2 * height) + 3 * margin), np.uint8)
    baseline0 = round(2 * height) + margin
    x, text, feet = margin, "", []
    joined = rng.random() < style.ligature_share
    level = rng.uniform(*style.ligature_level_range)
    zero_top_right = None  # where the joining stroke leaves the last zero drawn (joined zeros)
    for position in range(count):
        leading = position == 0 < zeros_from < count  # the first digit of a round sum
        index = digit_index(labels, rng, zero=position >= zeros_from, first_of_amount=leading)
        size = height * (1 + rng.uniform(-SCALE_JITTER, SCALE_JITTER))
        if position >= small_from:
            size *= small_scale
        ink = digit_mask(images[index], int(labels[index]), size, rng, threshold, style)
        if ink is None:
            continue
        bottom = round(baseline0 + slope * x + rng.uniform(-BASELINE_JITTER, BASELINE_JITTER) * height)
        top = bottom - ink.shape[0]
        if top < 0 or x + ink.shape[1] >= canvas.shape[1] - margin:
            break
        canvas[top:bottom, x : x + ink.shape[1]][ink] = WHITE
        if joined_zeros and position >= zeros_from:
            zero_level = round(JOINED_ZERO_LEVEL * ink.shape[0])
            if zero_top_right is not None:
                cv2.line(canvas, zero_top_right, (x + 1, top + zero_level), WHITE, max(1, stroke // 2))
            zero_top_right = (x + ink.shape[1] - 1, top + zero_level)
        elif joined and feet:
            cv2.line(canvas, feet[-1], (x + 1, bottom - round((level + 0.1) * height)), WHITE, max(1, stroke // 2))
        feet.append((x + ink.shape[1] - 1, bottom - round(level * height)))
        text += str(int(labels[index]))
        x += ink.shape[1]
        if position == separator_after:
            x = draw_mark(canvas, rng.choice(["dot", "comma"]), x + stroke, bottom, height, stroke) + stroke
        joining = joined_zeros and position >= zeros_from and position != separator_after
        x += round(rng.uniform(*(JOINED_ZERO_GAP_RANGE if joining else GAP_RANGE)) * height)
        x = max(x, margin)
    ink_end = x
    if rng.random() < TRAILING_DASH_SHARE:
        x = ink_end + round(rng.uniform(0.1, 0.4) * height)
        if rng.random() < 0.5:
            x = draw_mark(canvas, "dot", x, round(baseline0 + slope * x), height, stroke) + stroke
        draw_mark(canvas, "dash", x, round(baseline0 + slope * x), height, stroke)
    if rng.random() < UNDERLINE_SHARE:
        y = round(baseline0 + rng.uniform(0.05, 0.3) * height)
        cv2.line(canvas, (margin // 2, y), (ink_end, y + round(slope * ink_end)), WHITE, max(1, stroke // 2))
    if rng.random() < SPECK_SHARE:
        for _ in range(int(rng.integers(1, 4))):
            centre = (int(rng.integers(canvas.shape[1])), int(rng.integers(canvas.shape[0])))
            cv2.circle(canvas, centre, max(1, stroke // 2), WHITE, -1)
    if rng.random() < THICK_PEN_SHARE:
        size = max(1, round(rng.uniform(*THICK_PEN_RANGE) * height))
        canvas = cv2.dilate(canvas, np.ones((2 * size + 1, 2 * size + 1), np.uint8))
    rows, cols = np.nonzero(canvas)
    if not len(rows):
        return LineMask(canvas[:1, :1], "", height)
    mask = canvas[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    if rng.random() < BORDER_CUT_SHARE:
        cut = round(rng.uniform(0, BORDER_CUT_MAX) * height * 0.6)  # of a digit about 0.6 H wide
        mask = mask[:, cut:] if rng.random() < 0.5 else mask[:, : mask.shape[1] - cut]
        if not mask.any():
            return LineMask(canvas[:1, :1], "", height)
    return LineMask(mask, text, measured_height(mask))


def measured_height(mask: np.ndarray) -> float:
    """H as the reader measures it on a line (`reading.lines.line_height` over its tall components), so that
    small trailing digits scale the line as they do in the reader."""
    _, components = connected_components(mask)
    tallest = max(c.height for c in components)
    return line_height([c for c in components if c.height >= TALL_FRACTION * tallest])
