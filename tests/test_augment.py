"""Batched rotation: identity at 0°, exact at 90°, seeded, bounded."""

import math

import numpy as np
import torch

from digitrec.inference.views import affine_view
from digitrec.training.augment import apply_affine, random_rotation, rotation_matrices


def test_zero_rotation_is_identity(mnist_test):
    images = torch.from_numpy(mnist_test.images[:8]).float().unsqueeze(1)
    rotated = apply_affine(images, rotation_matrices(torch.zeros(8)))
    torch.testing.assert_close(rotated, images, atol=1e-3, rtol=0)


def test_quarter_turn_matches_rot90(mnist_test):
    images = torch.from_numpy(mnist_test.images[:4]).float().unsqueeze(1)
    rotated = apply_affine(images, rotation_matrices(torch.full((4,), 90.0)))
    # a positive angle in affine_grid's sampling convention turns the picture counter-clockwise on screen
    expected = torch.rot90(images, k=1, dims=(2, 3))
    expected_cw = torch.rot90(images, k=-1, dims=(2, 3))
    error_ccw, error_cw = (rotated - expected).abs().max(), (rotated - expected_cw).abs().max()
    assert min(error_ccw, error_cw) < 1e-2


def test_random_rotation_is_seeded_and_keeps_ink(mnist_test):
    images = torch.from_numpy(mnist_test.images[:16]).float().unsqueeze(1) / 255
    a = random_rotation(images, 10, torch.Generator().manual_seed(1))
    b = random_rotation(images, 10, torch.Generator().manual_seed(1))
    c = random_rotation(images, 10, torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c) and not torch.equal(a, images)
    ink_ratio = a.sum(dim=(1, 2, 3)) / images.sum(dim=(1, 2, 3))
    assert ((ink_ratio > 0.9) & (ink_ratio < 1.1)).all(), "a ±10° turn should keep the digit's ink"


def test_fixed_views_identity_rotation_and_scale():
    """The recognizer's test-time views (NumPy): identity, a quarter turn, area growing as scale squared."""
    image = np.zeros((1, 1, 28, 28), np.float32)
    image[0, 0, 10:18, 12:16] = 1.0  # an 8x4 bar centred on the image
    np.testing.assert_allclose(affine_view(image, 0.0, 1.0), image, atol=1e-5)
    turned = affine_view(image, 90.0, 1.0)
    assert min(np.abs(turned - np.rot90(image, k, axes=(2, 3))).max() for k in (1, -1)) < 1e-3
    grown, shrunk = affine_view(image, 0.0, 1.5), affine_view(image, 0.0, 0.5)
    ink = image.sum()
    assert abs(grown.sum() / ink - 1.5**2) < 0.15 and abs(shrunk.sum() / ink - 0.5**2) < 0.1  # area goes as scale²


def test_numpy_views_sample_exactly_as_torch_grid_sample(mnist_test):
    """Recognition runs without torch, so its views are written in NumPy; they must be the views the models were
    calibrated with: torch's affine_grid + grid_sample (bilinear, border padding)."""
    images = (mnist_test.images[:32].astype(np.float32) / 255)[:, None]
    for rotation_deg, scale in [(6.0, 1.0), (-6.0, 1.0), (0.0, 0.92), (0.0, 1.08), (13.0, 0.8)]:
        radians = math.radians(rotation_deg)
        cos, sin = math.cos(radians) / scale, math.sin(radians) / scale
        matrices = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]]).expand(len(images), 2, 3)
        by_torch = apply_affine(torch.from_numpy(images), matrices).numpy()
        np.testing.assert_allclose(affine_view(images, rotation_deg, scale), by_torch, atol=1e-5)
