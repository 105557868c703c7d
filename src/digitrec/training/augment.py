"""Batched, seeded augmentation of image tensors `(N, C, H, W)`, done with torch's affine_grid/grid_sample."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def rotation_matrices(angles_deg: torch.Tensor) -> torch.Tensor:
    """`(N,)` angles -> `(N, 2, 3)` affine matrices rotating about the image centre (normalized coordinates)."""
    radians = angles_deg * (math.pi / 180.0)
    cos, sin = torch.cos(radians), torch.sin(radians)
    zeros = torch.zeros_like(cos)
    return torch.stack([torch.stack([cos, -sin, zeros], 1), torch.stack([sin, cos, zeros], 1)], 1)


def apply_affine(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Resample each image through its `(2, 3)` matrix; pixels from outside repeat the border (Keras' "nearest")."""
    grid = F.affine_grid(matrices.to(images.device, images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_rotation(images: torch.Tensor, max_degrees: float, generator: torch.Generator) -> torch.Tensor:
    """Rotate each image by an angle drawn uniformly from [-max_degrees, max_degrees] (Keras' rotation_range)."""
    if max_degrees <= 0:
        return images
    angles = (torch.rand(len(images), generator=generator) * 2 - 1) * max_degrees
    return apply_affine(images, rotation_matrices(angles))


def random_affine(
    images: torch.Tensor,
    generator: torch.Generator,
    rotation_deg: float = 0.0,
    shift_fraction: float = 0.0,
    scale_range: float = 0.0,
    shear_deg: float = 0.0,
) -> torch.Tensor:
    """One random affine map per image, all in one grid_sample: rotation, shear, isotropic scale, translation.

    Angles are uniform in [-deg, deg], the scale in [1 - range, 1 + range], the shift in [-f, f] of the image size.
    """
    if rotation_deg <= 0 and shift_fraction <= 0 and scale_range <= 0 and shear_deg <= 0:
        return images
    count = len(images)

    def uniform(limit: float) -> torch.Tensor:
        return (torch.rand(count, generator=generator) * 2 - 1) * limit

    radians = uniform(rotation_deg) * (math.pi / 180)
    shear = torch.tan(uniform(shear_deg) * (math.pi / 180))
    scale = 1 + uniform(scale_range)
    cos, sin = torch.cos(radians), torch.sin(radians)
    # sampling matrix = rotation @ shear, divided by scale (sampling coordinates shrink when the digit grows)
    a, b = cos, cos * shear - sin
    c, d = sin, sin * shear + cos
    shift_x, shift_y = uniform(2 * shift_fraction), uniform(2 * shift_fraction)  # normalized coords span 2
    matrices = torch.stack(
        [torch.stack([a / scale, b / scale, shift_x], 1), torch.stack([c / scale, d / scale, shift_y], 1)], 1
    )
    return apply_affine(images, matrices)


def random_erasing(images: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """With `probability`, blank one random rectangle (up to a third of each side) of an image to its minimum."""
    if probability <= 0:
        return images
    count, _, height, width = images.shape
    chosen = torch.rand(count, generator=generator) < probability
    heights = (torch.rand(count, generator=generator) * height / 3 + 1).long()
    widths = (torch.rand(count, generator=generator) * width / 3 + 1).long()
    tops = (torch.rand(count, generator=generator) * (height - heights + 1)).long()
    lefts = (torch.rand(count, generator=generator) * (width - widths + 1)).long()
    rows = torch.arange(height).view(1, height, 1)
    cols = torch.arange(width).view(1, 1, width)
    mask = (
        (rows >= tops.view(-1, 1, 1)) & (rows < (tops + heights).view(-1, 1, 1))
        & (cols >= lefts.view(-1, 1, 1)) & (cols < (lefts + widths).view(-1, 1, 1))
        & chosen.view(-1, 1, 1)
    )  # fmt: skip
    background = images.amin(dim=(1, 2, 3), keepdim=True)
    return torch.where(mask.unsqueeze(1).to(images.device), background, images)
