"""Ways of writing digits that MNIST's writers (American) seldom used, drawn onto MNIST digits.

The "1" with a long flag (the up-stroke from the lower left to the top of the stem), as written across most of
Europe and Latin America, is the commonest: on real cheque amounts the reader cut such ones into "1 1" or read them
as 4 or 7, and the piece model rated the whole flagged 1 as "not one digit" (dev cheques, docs/realworld.md).
"""

from __future__ import annotations

import cv2
import numpy as np

from digitrec.images.framing import stroke_width_px
from digitrec.mnist import WHITE

INK_LEVEL = 128  # an MNIST pixel at least this bright is ink
FLAG_LENGTH_RANGE = (0.4, 0.65)  # the flag's length, as a share of the 1's height
FLAG_ANGLE_RANGE_DEG = (30.0, 60.0)  # how far below the horizontal it runs, to the left of the top
# Many writers draw the flag as long as the stem, or nearly flat ("^"- and "7"-like 1s on Chilean cheques):
LONG_FLAG_LENGTH_RANGE = (0.4, 1.0)
LONG_FLAG_ANGLE_RANGE_DEG = (15.0, 60.0)
# Others write the flag as a curve bowing up and to the left (a 1 begun like a cursive "l"): the curve's middle
# stands off the straight flag by up to this share of the flag's length
FLAG_BEND_RANGE = (0.1, 0.45)
CROSSBAR_LENGTH_RANGE = (0.35, 0.6)  # a crossed 7's bar, as a share of the 7's height, across its stem ...
CROSSBAR_HEIGHT_RANGE = (0.45, 0.6)  # ... this far down from its top
# A 9 whose tail curls back to the left at its foot (read as 8 by readers that never saw one): the curl reaches this
# far left (share of the 9's height) and comes back up this far
HOOK_LENGTH_RANGE = (0.25, 0.5)
HOOK_RISE_RANGE = (0.05, 0.3)
MIN_STROKE_PX = 1.5  # the thinnest stroke drawn, whatever the digit's own
ADDED_STROKE_WEIGHT = 0.8  # an added stroke (a flag is an up-stroke) is written lighter than the digit's own
SUBPIXEL_BITS = 4  # cv2's fixed-point drawing: sub-pixel points


def with_stroke(digit: np.ndarray, ink: np.ndarray, points: np.ndarray) -> np.ndarray:
    """`digit` with an antialiased stroke through `points` ((N, 2) float x, y), a little lighter than the digit's
    own stroke width (`ADDED_STROKE_WEIGHT`)."""
    thickness = max(1, round(ADDED_STROKE_WEIGHT * max(MIN_STROKE_PX, stroke_width_px(ink.astype(np.uint8)))))
    fixed = np.round(np.asarray(points, float) * 2**SUBPIXEL_BITS).astype(np.int32)
    canvas = np.zeros_like(digit)
    cv2.polylines(canvas, [fixed], False, WHITE, thickness, cv2.LINE_AA, SUBPIXEL_BITS)
    return np.maximum(digit, canvas)


def flagged_one(
    digit: np.ndarray,
    rng: np.random.Generator,
    length_range: tuple[float, float] = FLAG_LENGTH_RANGE,
    angle_range_deg: tuple[float, float] = FLAG_ANGLE_RANGE_DEG,
    bend: float = 0.0,
) -> np.ndarray:
    """An MNIST "1" (28x28 uint8, white on black) with a flag drawn from the top of its stem down to the left, in
    the digit's own stroke width (its length a share of the 1's height drawn from `length_range`, its angle below
    the horizontal from `angle_range_deg`), bowed up and to the left by `bend` of its length (0: straight); the
    digit unchanged when it has no ink."""
    ink = digit >= INK_LEVEL
    rows = np.flatnonzero(ink.any(axis=1))
    if not len(rows):
        return digit
    top, height = int(rows[0]), int(rows[-1] - rows[0] + 1)
    top_x = float(np.flatnonzero(ink[top]).mean())
    length = rng.uniform(*length_range) * height
    angle = np.radians(rng.uniform(*angle_range_deg))
    start = np.array([top_x, top])
    end = start + length * np.array([-np.cos(angle), np.sin(angle)])
    middle = (start + end) / 2 + bend * length * np.array([-np.sin(angle), -np.cos(angle)])  # up-left of the chord
    t = np.linspace(0.0, 1.0, 9 if bend else 2)[:, None]  # a quadratic curve through `middle` at t = 1/2
    control = 2 * middle - (start + end) / 2
    curve = (1 - t) ** 2 * start + 2 * t * (1 - t) * control + t**2 * end
    return with_stroke(digit, ink, curve)


def crossed_seven(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An MNIST "7" (28x28 uint8, white on black) with the bar across its stem that most of Europe and Latin
    America write, in the digit's own stroke width; the digit unchanged when it has no ink."""
    ink = digit >= INK_LEVEL
    rows = np.flatnonzero(ink.any(axis=1))
    if not len(rows):
        return digit
    top, height = int(rows[0]), int(rows[-1] - rows[0] + 1)
    row = min(int(rows[-1]), round(top + rng.uniform(*CROSSBAR_HEIGHT_RANGE) * height))
    stem = np.flatnonzero(ink[row])
    if not len(stem):
        return digit
    centre, half = float(stem.mean()), rng.uniform(*CROSSBAR_LENGTH_RANGE) * height / 2
    tilt = rng.uniform(-0.1, 0.1) * height  # a bar is seldom level
    return with_stroke(digit, ink, np.array([(centre - half, row + tilt / 2), (centre + half, row - tilt / 2)]))


def hooked_nine(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An MNIST "9" (28x28 uint8, white on black) whose tail curls back to the left at its foot, in the digit's own
    stroke width; the digit unchanged when it has no ink."""
    ink = digit >= INK_LEVEL
    rows = np.flatnonzero(ink.any(axis=1))
    if not len(rows):
        return digit
    top, bottom = int(rows[0]), int(rows[-1])
    height = bottom - top + 1
    foot_x = float(np.flatnonzero(ink[bottom]).mean())
    length, rise = rng.uniform(*HOOK_LENGTH_RANGE) * height, rng.uniform(*HOOK_RISE_RANGE) * height
    t = np.linspace(0.0, 1.0, 9)[:, None]  # a quadratic curve: down and left from the foot, then back up
    ends = np.array(
        [[foot_x, bottom], [foot_x - 0.4 * length, bottom + 0.12 * height], [foot_x - length, bottom - rise]]
    )
    curve = (1 - t) ** 2 * ends[0] + 2 * t * (1 - t) * ends[1] + t**2 * ends[2]
    limit = np.array([digit.shape[1] - 1, digit.shape[0] - 1])
    return with_stroke(digit, ink, np.clip(curve, 0, limit))


def with_flagged_ones(digits: np.ndarray, labels: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """The digits with about `share` of their 1s flagged (`flagged_one`); the others as they were."""
    if share <= 0:
        return digits  # and the generator untouched
    chosen = (labels == 1) & (rng.random(len(labels)) < share)
    if not chosen.any():
        return digits
    digits = digits.copy()
    for index in np.flatnonzero(chosen):
        digits[index] = flagged_one(digits[index], rng)
    return digits
