"""Decoded images (PIL or NumPy) -> uint8 arrays at the working size."""

from __future__ import annotations

import contextlib

import cv2
import numpy as np

from digitrec.errors import DigitrecError
from digitrec.mnist import WHITE

SIXTEEN_TO_EIGHT_BITS = 257  # 65535 / 255
WORK_MAX_SIDE_PX = 1024  # photos are analysed at most this large: a digit a tenth of the frame is still 100 px
WORK_MIN_SIDE_PX = 224  # smaller images (a 28x28 digit) are enlarged so that the morphology below has room


def image_to_array(image) -> np.ndarray:
    """A PIL image or an array -> uint8 gray `(H, W)` or RGB `(H, W, 3)`.

    EXIF orientation is applied, transparency flattened onto white, 16-bit gray scaled to 8 bits (not clipped),
    CMYK, palette and other modes converted to RGB.
    """
    if isinstance(image, np.ndarray):
        return array_to_uint8(image)
    from PIL import ImageOps

    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):  # a damaged EXIF block: keep it as stored
        image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I"):  # I;16, I;16B, I (16-bit PNG and TIFF)
        return array_to_uint8(np.clip(np.asarray(image), 0, np.iinfo(np.uint16).max).astype(np.uint16))
    if image.mode == "F":
        return array_to_uint8(np.asarray(image, dtype=np.float32))
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        return array_to_uint8(np.asarray(image.convert("RGBA")))
    if image.mode in ("1", "L"):
        return np.asarray(image.convert("L"))
    return np.asarray(image.convert("RGB"))


def array_to_uint8(array: np.ndarray) -> np.ndarray:
    """uint8, uint16 or float (0..1) pixels, gray, RGB or RGBA -> uint8 gray or RGB, alpha flattened onto white."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise DigitrecError(f"expected a gray, RGB or RGBA image, got an array of shape {array.shape}")
    if array.dtype == np.uint16:
        array = array / SIXTEEN_TO_EIGHT_BITS
    elif array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
            raise DigitrecError(f"expected numeric pixels, got dtype {array.dtype} or non-finite values")
        array = array * WHITE if array.max() <= 1.0 else array
    array = np.clip(np.rint(array), 0, WHITE).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 4:
        alpha = array[:, :, 3:].astype(np.float32) / WHITE
        array = np.rint(array[:, :, :3] * alpha + WHITE * (1 - alpha)).astype(np.uint8)
    return array


def resize_for_work(array: np.ndarray) -> np.ndarray:
    """Shrink large photos to WORK_MAX_SIDE_PX, enlarge tiny images to WORK_MIN_SIDE_PX (longer side)."""
    longer = max(array.shape[:2])
    if longer > WORK_MAX_SIDE_PX:
        scale, interpolation = WORK_MAX_SIDE_PX / longer, cv2.INTER_AREA
    elif longer < WORK_MIN_SIDE_PX:
        scale, interpolation = WORK_MIN_SIDE_PX / longer, cv2.INTER_CUBIC
    else:
        return array
    height, width = array.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(array, size, interpolation=interpolation)
