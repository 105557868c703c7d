"""Test-time views in NumPy: each image rotated and scaled about its centre, the probabilities averaged.

The sampling is torch's `affine_grid` + `grid_sample` (bilinear, border padding, align_corners=False), written out
so that recognition needs no torch: the same views the models were calibrated with (a test checks it against torch).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from digitrec.numeric import softmax

View = tuple[float, float]  # (rotation in degrees, scale)
IDENTITY_VIEW: View = (0.0, 1.0)  # the image as it is
SMALLEST_PROBABILITY = 1e-30  # floor before the log, so an underflowed class gives a finite score


@dataclass(frozen=True)
class Sampling:
    """Where each output pixel of one view reads from: the four neighbours and their bilinear weights."""

    rows: tuple[np.ndarray, np.ndarray]  # (H, W) int: the upper and lower source row
    cols: tuple[np.ndarray, np.ndarray]  # (H, W) int: the left and right source column
    weights: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # (H, W) float32: top-left, top-right, ...


def view_sampling(height: int, width: int, rotation_deg: float, scale: float) -> Sampling:
    """The sampling of a view: output pixel centres in normalized coordinates [-1, 1], mapped by the view's matrix
    (sampling coordinates shrink when the digit grows), back to pixels and clamped to the border."""
    radians = math.radians(rotation_deg)
    cos, sin = math.cos(radians) / scale, math.sin(radians) / scale
    ys = (2 * np.arange(height, dtype=np.float32) + 1) / height - 1
    xs = (2 * np.arange(width, dtype=np.float32) + 1) / width - 1
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    source_x = np.float32(cos) * grid_x - np.float32(sin) * grid_y
    source_y = np.float32(sin) * grid_x + np.float32(cos) * grid_y
    pixel_x = np.clip(((source_x + 1) * width - 1) / 2, 0, width - 1)
    pixel_y = np.clip(((source_y + 1) * height - 1) / 2, 0, height - 1)
    left, top = np.floor(pixel_x), np.floor(pixel_y)
    right_share, bottom_share = pixel_x - left, pixel_y - top
    left, top = left.astype(np.intp), top.astype(np.intp)
    right, bottom = np.minimum(left + 1, width - 1), np.minimum(top + 1, height - 1)
    weights = (
        (1 - right_share) * (1 - bottom_share), right_share * (1 - bottom_share),
        (1 - right_share) * bottom_share, right_share * bottom_share,
    )  # fmt: skip
    return Sampling((top, bottom), (left, right), tuple(w.astype(np.float32) for w in weights))


def affine_view(inputs: np.ndarray, rotation_deg: float, scale: float) -> np.ndarray:
    """`(N, C, H, W)` float inputs seen through one view."""
    height, width = inputs.shape[-2:]
    sampling = view_sampling(height, width, rotation_deg, scale)
    (top, bottom), (left, right) = sampling.rows, sampling.cols
    top_left, top_right, bottom_left, bottom_right = sampling.weights
    return (
        inputs[..., top, left] * top_left + inputs[..., top, right] * top_right
        + inputs[..., bottom, left] * bottom_left + inputs[..., bottom, right] * bottom_right
    ).astype(np.float32)  # fmt: skip


def average_over_views(score: Callable[[np.ndarray], np.ndarray], inputs: np.ndarray, views: list[View]) -> np.ndarray:
    """Test-time augmentation: the log of the mean softmax of `score` over the views of `inputs`, in one call of
    `score` for all views. Usable as logits (its softmax is the mean probability); with no views, `score(inputs)`."""
    if not views or list(views) == [IDENTITY_VIEW]:
        return score(inputs)
    count = len(inputs)
    seen = np.concatenate([affine_view(inputs, *view) for view in views])
    probabilities = softmax(score(seen)).reshape(len(views), count, -1)
    return np.log(np.maximum(probabilities.mean(axis=0), SMALLEST_PROBABILITY))


def model_views(metadata: dict, recipe_views: tuple[View, ...] = ()) -> list[View]:
    """The views a model is meant to be read with: those recorded with it, else its recipe's."""
    recorded = metadata.get("inference", {}).get("test_time_views")
    views = recorded if recorded is not None else recipe_views
    return [(float(rotation), float(scale)) for rotation, scale in views]
