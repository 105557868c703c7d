"""Batched rotation: identity at 0°, exact at 90°, seeded, bounded."""

import torch

from digitrec.training.augment import apply_affine, fixed_affine, random_rotation, rotation_matrices


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
    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 10:18, 12:16] = 1.0  # an 8x4 bar centred on the image
    torch.testing.assert_close(fixed_affine(image), image, atol=1e-5, rtol=0)
    turned = fixed_affine(image, rotation_deg=90)
    assert min((turned - torch.rot90(image, k, dims=(2, 3))).abs().max() for k in (1, -1)) < 1e-3
    grown, shrunk = fixed_affine(image, scale=1.5), fixed_affine(image, scale=0.5)
    ink = image.sum()
    assert abs(grown.sum() / ink - 1.5**2) < 0.15 and abs(shrunk.sum() / ink - 0.5**2) < 0.1  # area goes as scale²
