"""Debug strips: the photo pipeline's stages side by side in one PNG."""

from __future__ import annotations

import cv2
import numpy as np

from digitrec.errors import DigitrecError
from digitrec.images.photo import PhotoStages
from digitrec.mnist import WHITE

STRIP_HEIGHT_PX = 160
STRIP_LABEL_PX = 22
STRIP_GAP_PX = 6


def debug_strip(stages: PhotoStages) -> np.ndarray:
    """One RGB image of the stages side by side (original, gray, binarized, cropped, final), each labelled."""
    panels = [("original", stages.original), ("gray", stages.gray), ("binarized", stages.binary)]
    panels += [("cropped", stages.cropped), ("final 28x28", stages.digit if stages.digit is not None else None)]
    tiles = []
    for label, picture in panels:
        tile = strip_tile(picture)
        band = np.full((STRIP_LABEL_PX, tile.shape[1], 3), WHITE, np.uint8)
        cv2.putText(band, label, (4, STRIP_LABEL_PX - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        tiles += [np.vstack([band, tile]), np.full((STRIP_HEIGHT_PX + STRIP_LABEL_PX, STRIP_GAP_PX, 3), 128, np.uint8)]
    return np.hstack(tiles[:-1])


def strip_tile(picture: np.ndarray | None) -> np.ndarray:
    """A stage scaled to STRIP_HEIGHT_PX (nearest neighbour, so pixels stay visible), as RGB; gray if missing."""
    if picture is None or picture.size <= 1:
        return np.full((STRIP_HEIGHT_PX, STRIP_HEIGHT_PX, 3), 200, np.uint8)
    rgb = picture if picture.ndim == 3 else cv2.cvtColor(picture, cv2.COLOR_GRAY2RGB)
    width = max(1, round(rgb.shape[1] * STRIP_HEIGHT_PX / rgb.shape[0]))
    width = min(width, 4 * STRIP_HEIGHT_PX)  # very wide inputs are squeezed
    return cv2.resize(rgb, (width, STRIP_HEIGHT_PX), interpolation=cv2.INTER_NEAREST)


def debug_strip_png(stages: PhotoStages) -> bytes:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(debug_strip(stages), cv2.COLOR_RGB2BGR))
    if not ok:
        raise DigitrecError("could not encode the debug strip as PNG")
    return encoded.tobytes()
