"""Model inputs from uint8 images: the normalizations the models were trained with (NumPy)."""

from __future__ import annotations

import numpy as np

from digitrec.errors import DigitrecError
from digitrec.mnist import MNIST_MEAN, MNIST_STD, PIXEL_MAX


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


def to_model_inputs(images: np.ndarray, normalization: str) -> np.ndarray:
    """uint8 images `(N, H, W)` -> normalized float32 array `(N, 1, H, W)` (torch: `torch.from_numpy` of it)."""
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3:
        raise DigitrecError(f"expected images of shape (N, H, W) or (H, W), got {images.shape}")
    return np.ascontiguousarray(normalize_images(images, normalization), dtype=np.float32)[:, None]
