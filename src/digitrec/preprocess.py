"""Turning raw pixels into model inputs.

Pixel normalizations shared by training and inference live here, so both sides use the same code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from digitrec.errors import DigitrecError

PIXEL_MAX = 255.0  # uint8 images
MNIST_MEAN = 0.1307  # mean pixel of the 60k MNIST training images, after /255
MNIST_STD = 0.3081  # their standard deviation, after /255


def keras_l2_normalize(x: np.ndarray, axis: int) -> np.ndarray:
    """What `tf.keras.utils.normalize(x, axis)` computes: x divided by its L2 norm along `axis`.

    Zero-norm slices are left at zero (Keras replaces a zero norm by 1).
    """
    x = x.astype(np.float32)
    norms = np.linalg.norm(x, axis=axis, keepdims=True)
    norms[norms == 0] = 1.0
    return x / norms


def normalize_paper(images: np.ndarray) -> np.ndarray:
    """The report's training normalization: `normalize(x_train, axis=1)` on an `(N, 28, 28)` array.

    Axis 1 of that array is the row index, so each pixel *column* `x[n, :, j]` gets unit L2 norm.
    """
    return keras_l2_normalize(images, axis=-2)


def normalize_paper_single_image_rows(image: np.ndarray) -> np.ndarray:
    """The report's own-image inference quirk: `normalize(img, axis=1)` on one `(28, 28)` image scales *rows*.

    Kept only to reproduce the report's own-image pipeline; training used columns (`normalize_paper`).
    """
    return keras_l2_normalize(image, axis=-1)


def normalize_unit(images: np.ndarray) -> np.ndarray:
    """Pixels scaled to [0, 1]."""
    return images.astype(np.float32) / PIXEL_MAX


def normalize_standard(images: np.ndarray) -> np.ndarray:
    """Pixels scaled to [0, 1], then standardized with the MNIST training mean and std."""
    return (normalize_unit(images) - MNIST_MEAN) / MNIST_STD


NORMALIZATIONS = {
    "paper": normalize_paper,
    "unit": normalize_unit,
    "standard": normalize_standard,
}


def normalize_images(images: np.ndarray, method: str) -> np.ndarray:
    """uint8 images `(N, H, W)` (or one `(H, W)`) -> float32 model inputs of the same shape."""
    try:
        normalize = NORMALIZATIONS[method]
    except KeyError:
        raise DigitrecError(f"unknown normalization {method!r}; known: {', '.join(NORMALIZATIONS)}") from None
    return normalize(images)


def to_model_inputs(images: np.ndarray, normalization: str) -> torch.Tensor:
    """uint8 images `(N, H, W)` -> normalized float32 tensor `(N, 1, H, W)`."""
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3:
        raise DigitrecError(f"expected images of shape (N, H, W) or (H, W), got {images.shape}")
    return torch.from_numpy(np.ascontiguousarray(normalize_images(images, normalization))).unsqueeze(1)


LIGHT_BACKGROUND_MEAN = 127.5  # a mean above mid-gray means dark ink on light paper: invert to MNIST's polarity


def read_image_gray(source) -> np.ndarray:
    """A file path or PIL image -> uint8 grayscale array; unreadable input is a one-line error."""
    import cv2

    if hasattr(source, "convert"):  # PIL image
        return np.asarray(source.convert("L"), dtype=np.uint8)
    path = Path(source)
    try:
        raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    except OSError as exc:
        raise DigitrecError(f"{path}: cannot read ({exc.strerror})") from None
    image = cv2.imdecode(raw, cv2.IMREAD_GRAYSCALE) if raw.size else None
    if image is None:
        raise DigitrecError(f"{path}: not a readable image")
    return image


def load_digit_image(source, size: int = 28) -> np.ndarray:
    """A single, already centred digit image (file or PIL) -> uint8 `(size, size)`, white ink on black.

    This is the simple path for MNIST-like inputs (resize + polarity); photos need the full photo pipeline.
    """
    import cv2

    image = read_image_gray(source)
    if image.shape != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    if image.mean() > LIGHT_BACKGROUND_MEAN:
        image = 255 - image
    return image
