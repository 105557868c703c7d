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
MIN_STROKE_PX = 1.5  # the thinnest flag drawn, whatever the digit's own stroke


def flagged_one(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An MNIST "1" (28x28 uint8, white on black) with a flag drawn from the top of its stem down to the left, in
    the digit's own stroke width; the digit unchanged when it has no ink."""
    ink = digit >= INK_LEVEL
    rows = np.flatnonzero(ink.any(axis=1))
    if not len(rows):
        return digit
    top, height = int(rows[0]), int(rows[-1] - rows[0] + 1)
    top_x = float(np.flatnonzero(ink[top]).mean())
    length = rng.uniform(*FLAG_LENGTH_RANGE) * height
    angle = np.radians(rng.uniform(*FLAG_ANGLE_RANGE_DEG))
    end = (top_x - length * np.cos(angle), top + length * np.sin(angle))
    shift = 4  # cv2's fixed-point drawing: sub-pixel ends
    canvas = np.zeros_like(digit)
    stroke = max(MIN_STROKE_PX, stroke_width_px(ink.astype(np.uint8)))
    thickness = max(1, round(0.8 * stroke))  # an up-stroke is written lighter
    start_point = (round(top_x * 2**shift), round(top * 2**shift))
    end_point = (round(end[0] * 2**shift), round(end[1] * 2**shift))
    cv2.line(canvas, start_point, end_point, WHITE, thickness, cv2.LINE_AA, shift)
    return np.maximum(digit, canvas)


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
