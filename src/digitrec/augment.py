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
    grid = F.affine_grid(matrices.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_rotation(images: torch.Tensor, max_degrees: float, generator: torch.Generator) -> torch.Tensor:
    """Rotate each image by an angle drawn uniformly from [-max_degrees, max_degrees] (Keras' rotation_range)."""
    if max_degrees <= 0:
        return images
    angles = (torch.rand(len(images), generator=generator) * 2 - 1) * max_degrees
    return apply_affine(images, rotation_matrices(angles))
