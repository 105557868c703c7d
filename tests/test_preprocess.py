"""Pixel normalizations, checked on values computed by hand."""

import numpy as np
import pytest

from digitrec.errors import DigitrecError
from digitrec.images.normalize import (
    keras_l2_normalize,
    normalize_images,
    normalize_paper,
    normalize_paper_single_image_rows,
    to_model_inputs,
)


def test_paper_normalization_scales_each_column_of_each_image_to_unit_norm():
    # Keras normalize(x, axis=1) on (N, H, W): axis 1 is the row index, so vectors x[n, :, j] (columns) are scaled
    images = np.array([[[3, 0, 1], [4, 0, 1]]], dtype=np.uint8)  # (1, 2, 3)
    expected = np.array([[[0.6, 0.0, 1 / np.sqrt(2)], [0.8, 0.0, 1 / np.sqrt(2)]]], dtype=np.float32)
    np.testing.assert_allclose(normalize_paper(images), expected, rtol=1e-6)


def test_report_single_image_quirk_scales_rows():
    image = np.array([[3, 4], [0, 5]], dtype=np.uint8)
    np.testing.assert_allclose(normalize_paper_single_image_rows(image), [[0.6, 0.8], [0.0, 1.0]], rtol=1e-6)


def test_keras_normalize_leaves_zero_vectors_at_zero():
    assert not np.isnan(keras_l2_normalize(np.zeros((2, 3)), axis=0)).any()


def test_paper_normalization_on_real_digits_gives_unit_columns(mnist_test):
    normalized = normalize_paper(mnist_test.images[:10])
    norms = np.linalg.norm(normalized, axis=1)  # (10, 28): one norm per column
    nonzero = mnist_test.images[:10].sum(axis=1) > 0
    np.testing.assert_allclose(norms[nonzero], 1.0, rtol=1e-5)
    assert (norms[~nonzero] == 0).all()


def test_unit_and_standard_normalizations():
    images = np.array([[[0, 255]]], dtype=np.uint8)
    np.testing.assert_allclose(normalize_images(images, "unit"), [[[0.0, 1.0]]])
    np.testing.assert_allclose(
        normalize_images(images, "standard"), [[[-0.1307 / 0.3081, (1 - 0.1307) / 0.3081]]], rtol=1e-6
    )


def test_model_inputs_have_a_channel_axis():
    assert to_model_inputs(np.zeros((4, 28, 28), np.uint8), "unit").shape == (4, 1, 28, 28)
    assert to_model_inputs(np.zeros((28, 28), np.uint8), "unit").shape == (1, 1, 28, 28)


def test_unknown_normalization_is_a_clear_error():
    with pytest.raises(DigitrecError, match="unknown normalization 'zscore'"):
        normalize_images(np.zeros((1, 2, 2), np.uint8), "zscore")
