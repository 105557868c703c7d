"""A digit's ink mask -> MNIST's framing: deskewed, stroke width normalized, 20 px box, centre of mass."""

from __future__ import annotations

import cv2
import numpy as np

from digitrec.mnist import IMAGE_SIZE, MNIST_BOX_FRACTION, MNIST_CENTRE_OF_MASS_FRACTION, WHITE

FAINTEST_SHOWN_INK = 20  # ... crops keep rows and columns with ink stronger than this (of 255): paper noise is left out

# Slant of MNIST's training digits as the moments skew mu11 / mu02 of their ink (x to the right, y down; < 0: the
# top leans right): quartiles over the first 10k training digits (median -0.13; 5th-95th percentiles -0.59, 0.33).
# Deskewing beyond the quartiles read rotated photos best (benchmarks/photos.py, "rotation": 84% vs 80% without
# deskew, digitnet-small after 2 epochs; no change on upright digits).
MNIST_SKEW_RANGE = (-0.32, 0.06)
# Stroke width (`stroke_width_px`) with the digit's longer side scaled to STROKE_BOX_PX, of the first 1,000 MNIST
# training digits shown to this pipeline as dark-on-light images: 5th and 95th percentiles (median 11.7 px, i.e.
# 2.9 px in the 20 px box). Pens outside this range are brought to its nearer end.
STROKE_BOX_PX = 80
MNIST_STROKE_RANGE_PX = (9.0, 15.4)


def clipped(value: float, low: float, high: float) -> float:
    """`value` brought into [low, high] (np.clip for one number, without its cost per call)."""
    return min(max(float(value), low), high)


def tight_crop(mask: np.ndarray) -> np.ndarray:
    """`mask` cropped to the rows and columns holding ink (any non-zero pixel)."""
    if mask.dtype == np.uint8:  # OpenCV's bounding box of the non-zero pixels: one call
        left, top, width, height = cv2.boundingRect(mask)
        return mask[top : top + height, left : left + width]
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return mask[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]


def moments_skew(mask: np.ndarray) -> float:
    """Slant of the ink as mu11 / mu02: how far x moves per pixel down the digit's principal axis."""
    moments = cv2.moments(mask, binaryImage=True)
    return moments["mu11"] / moments["mu02"] if moments["mu02"] > 0 else 0.0


def skew_correction(mask: np.ndarray) -> float:
    """How much of the ink's slant `deskew` takes out: the part beyond MNIST_SKEW_RANGE (0.0 inside it)."""
    skew = moments_skew(mask)
    return skew - clipped(skew, *MNIST_SKEW_RANGE)


def shear(image: np.ndarray, correction: float, interpolation: int) -> np.ndarray:
    """`image` sheared horizontally by `correction` about its middle row, widened so that nothing falls off."""
    height, width = image.shape
    centre_y = (height - 1) / 2
    extra = int(np.ceil(abs(correction) * height / 2)) + 1
    # x' = x - correction * (y - centre_y) + extra
    matrix = np.float32([[1, -correction, correction * centre_y + extra], [0, 1, 0]])
    return cv2.warpAffine(image, matrix, (width + 2 * extra, height), flags=interpolation)


def deskew(mask: np.ndarray) -> np.ndarray:
    """Shear the digit so its slant falls back inside MNIST's range (MNIST_SKEW_RANGE); within it, nothing moves.

    A horizontal shear keeps every row where it was: the top of the digit stays on top, so a 6 stays a 6 and a 9 a 9
    (a rotation by the principal axis could turn one into the other). Only slants beyond what most MNIST writers
    produced (beyond their quartiles) are corrected, which straightens digits rotated by up to about ±30°;
    upside-down digits are not.
    """
    correction = skew_correction(mask)
    if correction == 0.0:
        return mask
    return tight_crop(shear(mask, correction, cv2.INTER_NEAREST))


def resize_to_box(image: np.ndarray, box_px: int) -> tuple[np.ndarray, float]:
    """`image` resized so that its longer side is `box_px`, keeping its aspect ratio; and the scale."""
    height, width = image.shape
    scale = box_px / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interpolation), scale


def scale_to_box(mask: np.ndarray, box_px: int) -> np.ndarray:
    """Resize a 0/255 mask so that its longer side is `box_px`, keeping its aspect ratio and staying 0/255."""
    resized, scale = resize_to_box(mask, box_px)
    _, binary = cv2.threshold(resized, WHITE // 2 - 1, WHITE, cv2.THRESH_BINARY)  # >= WHITE // 2: ink
    if cv2.countNonZero(binary) < 0.5 * cv2.countNonZero(mask) * scale**2:  # hairlines shrunk below half a pixel
        _, binary = cv2.threshold(resized, 0, WHITE, cv2.THRESH_BINARY)
    return binary


def stroke_width_px(mask: np.ndarray) -> float:
    """Mean stroke width: a stroke of length L and width w has area L*w and outline 2*L, so w = 2 * area / outline."""
    ink = mask if mask.dtype == np.uint8 else (mask > 0).astype(np.uint8)  # findContours: non-zero is ink
    contours, _ = cv2.findContours(ink, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    outline = sum(cv2.arcLength(contour, closed=True) for contour in contours)
    return 2.0 * np.count_nonzero(mask) / outline if outline > 0 else 0.0


def stroke_change_px(boxed: np.ndarray) -> int:
    """The radius of the disc that brings the stroke width of `boxed` (0/255, STROKE_BOX_PX) into MNIST's range:
    positive to thicken, negative to thin, 0 inside it (a disc of radius r changes the width by 2r)."""
    width = stroke_width_px(boxed)
    target = clipped(width, *MNIST_STROKE_RANGE_PX)
    return round((target - width) / 2)


def disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(radius) + 1, 2 * abs(radius) + 1))


def changed_stroke(boxed: np.ndarray, radius: int) -> np.ndarray:
    """`boxed` (a 0/255 mask or ink strengths) widened by a disc of `radius` (dilation), or narrowed by one of
    -`radius` (erosion, unless that leaves no ink), cropped to its ink; unchanged when `radius` is 0."""
    if radius > 0:
        padded = cv2.copyMakeBorder(boxed, radius, radius, radius, radius, cv2.BORDER_CONSTANT, value=0)
        return crop_to_ink(cv2.dilate(padded, disc(radius)))
    if radius < 0:
        eroded = cv2.erode(boxed, disc(radius))
        return crop_to_ink(eroded) if (eroded > FAINTEST_SHOWN_INK).any() else boxed
    return boxed


def normalize_stroke(mask: np.ndarray) -> np.ndarray:
    """Thicken thin pens and thin thick ones until the stroke width is inside MNIST's range (MNIST_STROKE_RANGE_PX)."""
    boxed = scale_to_box(mask, STROKE_BOX_PX)
    return changed_stroke(boxed, stroke_change_px(boxed))


def mnist_frame(mask: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """MNIST's own last steps: fit the longer side to the 20 px box (anti-aliased), centre of mass at the centre."""
    box_px = round(size * MNIST_BOX_FRACTION)
    height, width = mask.shape
    scale = box_px / max(height, width)
    scaled_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = cv2.resize(mask.astype(np.float32), scaled_size, interpolation=cv2.INTER_AREA)
    moments = cv2.moments(digit)
    mass = max(moments["m00"], 1e-6)  # an empty mask is caught by photo_stages
    centre = size * MNIST_CENTRE_OF_MASS_FRACTION
    shift_x = round(centre - moments["m10"] / mass)
    shift_y = round(centre - moments["m01"] / mass)
    return placed(np.clip(np.rint(digit), 0, WHITE).astype(np.uint8), shift_x, shift_y, size)


def placed(image: np.ndarray, left: int, top: int, size: int) -> np.ndarray:
    """(size, size): `image` with its top-left corner at (left, top) on black, what falls outside cut off."""
    field = np.zeros((size, size), image.dtype)
    height, width = image.shape
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + height, size), min(left + width, size)
    if y1 > y0 and x1 > x0:
        field[y0:y1, x0:x1] = image[y0 - top : y1 - top, x0 - left : x1 - left]
    return field


def mask_to_mnist(mask: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """A 0/255 mask of one digit's ink -> MNIST-like `(size, size)`: cropped, deskewed, stroke width normalized,
    fitted into the 20 px box, centre of mass centred."""
    return mnist_frame(normalize_stroke(deskew(tight_crop(mask))), size)


def crop_to_ink(strength: np.ndarray) -> np.ndarray:
    """`strength` (ink bright: a 0/255 mask or ink strengths) cropped to the rows and columns with ink in them."""
    rows = np.flatnonzero(strength.max(axis=1) > FAINTEST_SHOWN_INK)
    columns = np.flatnonzero(strength.max(axis=0) > FAINTEST_SHOWN_INK)
    return strength[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
