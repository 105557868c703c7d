"""A digit read from the photo's gray levels in and around its binarized ink (the reader's second view)."""

from __future__ import annotations

import cv2
import numpy as np

from digitrec.images.framing import (
    FAINTEST_SHOWN_INK,
    STROKE_BOX_PX,
    changed_stroke,
    crop_to_ink,
    mask_to_mnist,
    mnist_frame,
    resize_to_box,
    shear,
    skew_correction,
    stroke_change_px,
)
from digitrec.mnist import IMAGE_SIZE, WHITE

FAINT_RIM_PX = 2  # reading digits from gray: ink this far outside the binarized stroke is kept (a pen line's soft
# rim and faint ends, which the threshold leaves out; MNIST's own strokes have a 1-2 px anti-aliased rim)
INK_LEVEL_PERCENTILE = 5  # ... the ink's full darkness: this percentile of the gray under the binarized stroke


def ink_strength(gray: np.ndarray, stroke: np.ndarray, paper_level: float) -> np.ndarray:
    """How much ink each pixel of `gray` (ink dark) holds, float32 0 (paper) .. 255 (as dark as the ink under the
    binarized `stroke`, read at its INK_LEVEL_PERCENTILE)."""
    ink_level = float(np.percentile(gray[stroke], INK_LEVEL_PERCENTILE))
    strength = (paper_level - gray.astype(np.float32)) / max(paper_level - ink_level, 1.0)
    return np.clip(strength, 0.0, 1.0) * WHITE


def normalize_gray_stroke(strength: np.ndarray) -> np.ndarray:
    """`normalize_stroke` for ink strengths: scaled to STROKE_BOX_PX, widened or narrowed (gray dilation/erosion)
    by the disc that brings its half-strength stroke into MNIST's width range."""
    boxed, _ = resize_to_box(strength, STROKE_BOX_PX)
    return changed_stroke(boxed, stroke_change_px(np.where(boxed >= WHITE / 2, WHITE, 0).astype(np.uint8)))


def gray_to_mnist(gray: np.ndarray, mask: np.ndarray, others: np.ndarray, paper_level: float, size: int = IMAGE_SIZE):
    """One digit's gray levels -> MNIST-like `(size, size)`, the way MNIST itself was made (anti-aliased gray, not
    a binary mask): the ink strength within FAINT_RIM_PX of its binarized ink, so that the soft or faint parts of
    strokes that the threshold cut away come back, then deskewed, stroke width normalized and framed like
    `mask_to_mnist`.

    `gray` (ink dark, lighting flattened), `mask` (the digit's binarized ink, 0/255) and `others` (other digits'
    ink, never taken into this one) cover the same box around the digit, at least FAINT_RIM_PX wider than its ink;
    `paper_level` is the paper's gray there. Where the ink is no darker than that paper (nothing to read in gray),
    the binarized ink is read instead (`mask_to_mnist`)."""
    stroke = mask > 0
    rim = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=FAINT_RIM_PX) > 0
    strength = np.where(rim & ~(others > 0), ink_strength(gray, stroke, paper_level), 0.0).astype(np.float32)
    if not (strength > FAINTEST_SHOWN_INK).any():
        return mask_to_mnist(mask, size)
    correction = skew_correction(mask)
    if correction != 0.0:
        strength = shear(strength, correction, cv2.INTER_LINEAR)
    return mnist_frame(normalize_gray_stroke(crop_to_ink(strength)), size)
