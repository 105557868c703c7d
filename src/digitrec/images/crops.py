"""Small images that are crops of one digit (USPS and Semeion scans, a digit cut from a form): laid on paper of
their own, contrast stretched, before the photo pipeline, which expects paper around the digit."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from digitrec.images.ink import MIN_INK_SNR, border_pixels
from digitrec.mnist import WHITE

# Small images are crops of one digit, not photos: USPS and Semeion scans are 16x16, MNIST 28x28, a digit cut from a
# 300-dpi scan 40-100 px; the synthetic photos of benchmarks/photos.py are 200-320 px. Such a crop is often tight
# (the digit touches or fills the frame, so the border is not all paper) and has no uneven lighting to flatten.
# It is laid on a margin of its own paper first, so that the photo pipeline finds paper around the digit.
TIGHT_CROP_MAX_SIDE_PX = 100
TIGHT_CROP_MARGIN_FRACTION = 0.5  # paper wanted on each side of the ink, as a fraction of the ink's longer side
# The ink's level is read at the crop's 3rd most extreme pixel (not the most extreme: one or two hot pixels don't count)
TIGHT_CROP_EXTREME_PIXELS = 3
# A crop holds ink when its ink stands out from its paper by at least this many gray levels (3% of the range: fainter
# than that a digit is hard to see on a screen) and by MIN_INK_SNR times its pixel noise; a near-uniform crop does not.
TIGHT_CROP_MIN_CONTRAST = 8
# Its noise is read from the quietest quarter of the differences between neighbouring pixels: in a dense 16x16 USPS
# digit half of them straddle a stroke's edge (the median difference reaches 42 gray levels), never three quarters.
# For Gaussian noise of sigma s a difference is N(0, 2 s^2), whose absolute value has its 25th percentile at
# 0.3186 * sqrt(2) * s.
NOISE_DIFFERENCE_PERCENTILE = 25
NOISE_DIFFERENCE_PER_SIGMA = 0.4506


def is_small_crop(array: np.ndarray) -> bool:
    return max(array.shape[:2]) <= TIGHT_CROP_MAX_SIDE_PX


def pixel_noise(channel: np.ndarray) -> float:
    """The pixels' noise (sigma) from the quietest NOISE_DIFFERENCE_PERCENTILE of the differences between
    neighbours, which lie within flat paper or ink even when the digit fills the image."""
    values = channel.astype(np.float32)
    differences = np.concatenate([np.diff(values, axis=0).ravel(), np.diff(values, axis=1).ravel()])
    if differences.size == 0:
        return 0.0
    return float(np.percentile(np.abs(differences), NOISE_DIFFERENCE_PERCENTILE)) / NOISE_DIFFERENCE_PER_SIGMA


@dataclass(frozen=True)
class CropInk:
    """How ink stands out in one channel of a small crop, against its paper (the border's median)."""

    paper: float
    ink: float  # the level of the ink's most extreme pixels (TIGHT_CROP_EXTREME_PIXELS)
    noise: float  # `pixel_noise`

    @property
    def contrast(self) -> float:
        return abs(self.paper - self.ink)

    @property
    def signal_to_noise(self) -> float:
        return self.contrast / (self.noise + 1.0)

    @property
    def has_ink(self) -> bool:
        return self.contrast >= TIGHT_CROP_MIN_CONTRAST and self.signal_to_noise >= MIN_INK_SNR


def crop_ink(channel: np.ndarray) -> CropInk:
    """The paper is the border's median: even where the digit touches the frame, most of the border is paper (at
    most 39% of a USPS digit's border is ink, 35% for 99% of MNIST's digits cropped tightly). The ink is whichever
    extreme lies further from it, so light ink on dark paper is found the same way."""
    paper = float(np.median(border_pixels(channel)))
    flat = channel.ravel()
    count = min(TIGHT_CROP_EXTREME_PIXELS, flat.size - 1)
    dark = float(np.partition(flat, count)[count])
    light = float(np.partition(flat, flat.size - 1 - count)[flat.size - 1 - count])
    ink = light if light - paper > paper - dark else dark
    return CropInk(paper, ink, pixel_noise(channel))


def crop_on_paper(array: np.ndarray) -> tuple[np.ndarray, bool]:
    """A small crop of one digit (`is_small_crop`) -> the gray channel where its ink stands out most, ink dark,
    stretched from the ink's level (0) to the paper's (255), on a margin of white paper
    (TIGHT_CROP_MARGIN_FRACTION); and whether it holds ink at all (`CropInk.has_ink`).

    The photo pipeline then finds paper all around the digit: the border tells the polarity, the wide median the
    background, and nothing of the digit touches the border (where it would pass for a frame). A faint crop is read
    as well as a dark one."""
    if array.ndim == 2:
        candidates = [array]
    else:
        candidates = [
            cv2.cvtColor(array, cv2.COLOR_RGB2GRAY),
            *(np.ascontiguousarray(array[:, :, c]) for c in range(3)),
        ]
    inks = [crop_ink(channel) for channel in candidates]
    best = int(np.argmax([ink.signal_to_noise for ink in inks]))
    channel, ink = candidates[best].astype(np.float32), inks[best]
    ink_dark = (channel - ink.ink) / (ink.paper - ink.ink) if ink.contrast > 0 else np.ones_like(channel)
    gray = np.clip(np.rint(ink_dark * WHITE), 0, WHITE).astype(np.uint8)
    margin = missing_margin(gray < WHITE // 2)
    page = cv2.copyMakeBorder(gray, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=WHITE)
    return page, ink.has_ink


def missing_margin(ink: np.ndarray) -> int:
    """The paper to add on each side so that TIGHT_CROP_MARGIN_FRACTION of the ink's longer side lies around it
    (0 for a crop that already has it: a small digit on a larger piece of paper stays as large as it is)."""
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        return 0
    longer = max(rows[-1] - rows[0] + 1, columns[-1] - columns[0] + 1)
    present = min(rows[0], columns[0], ink.shape[0] - 1 - rows[-1], ink.shape[1] - 1 - columns[-1])
    return max(0, round(TIGHT_CROP_MARGIN_FRACTION * longer) - int(present))
