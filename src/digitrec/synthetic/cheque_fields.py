"""Seeded scans of a line of writing as bank cheques show it: gray ink on a printed security pattern.

A binary line of digits (`synthetic.line_masks`) is laid on a field of paper printed with fine wavy guilloche
lines or a dot screen, grain and a slow gradient; the ink is gray, not black, and its strength varies along the
strokes (a ballpoint's light pressure and skips); some fields have the printed baseline (solid or dashed) or a
printed vertical rule; the field is cropped tightly, scaled to a scan's size and JPEG-compressed. Read by the
reader's own ink stage (`reading.lines.lines_of_ink`), such a field gives the line model what real amounts give
it: strokes broken or thinned by binarization, pattern specks and rules the ink stage kept, the line height the
reader measured. The ranges describe cheque scans in general (ORAND-CAR-like crops: 40-60 px high, light gray
security paper), not any image here.
"""

from __future__ import annotations

import cv2
import numpy as np

PAPER_RANGE = (165.0, 230.0)  # the paper's gray
INK_CONTRAST_RANGE = (70.0, 160.0)  # how much darker the ink is than the paper
PATTERN_CONTRAST_SHARE = (0.1, 0.5)  # the pattern's darkest lines, as a share of the ink's contrast
GRAIN_SIGMA_RANGE = (2.0, 9.0)
GRADIENT_RANGE = 25.0  # the paper's gray drifts by up to this across the field
FAINT_STROKE_RANGE = (0.0, 0.6)  # the ink's strength falls by up to this share along the strokes ...
FAINT_CELL_PX = 12  # ... varying over cells about this size
EDGE_BLUR_RANGE = (0.4, 1.0)  # the pen's edge (Gaussian sigma, px of the drawing)
MARGIN_RANGE_PX = ((2, 14), (2, 20))  # paper above/below and left/right of the ink (tight crops touch it)
BASELINE_SHARE = 0.35  # fields with the printed baseline under the digits ...
DASHED_BASELINE_SHARE = 0.5  # ... dashed in half of them
VERTICAL_RULE_SHARE = 0.1  # fields crossed by a printed vertical rule
PRINT_GRAY_RANGE = (60.0, 140.0)
SCAN_DIGIT_HEIGHT_PX = (21.0, 42.0)  # the digits' height in the scan
JPEG_QUALITY_RANGE = (50, 95)
PATTERNS = ("waves", "dots", "both", "plain")
PATTERN_WEIGHTS = (0.5, 0.2, 0.2, 0.1)


def guilloche(shape: tuple[int, int], contrast: float, rng: np.random.Generator) -> np.ndarray:
    """1-3 families of fine wavy lines a few pixels apart, `contrast` gray levels dark."""
    rows, columns = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    period, amplitude = rng.uniform(2.5, 7.0), rng.uniform(3.0, 20.0)
    wavelength, tilt, sharpness = rng.uniform(20.0, 80.0), rng.uniform(-0.5, 0.5), rng.uniform(0.85, 0.97)
    darkness = np.zeros(shape, np.float32)
    for family in range(int(rng.integers(1, 4))):
        phase = rng.uniform(0, 2 * np.pi)
        waves = np.cos((rows + tilt * columns + amplitude * np.sin(columns / wavelength + phase)) / period + family)
        darkness = np.maximum(darkness, (waves > sharpness) * contrast)
    return darkness


def dot_screen(shape: tuple[int, int], contrast: float, rng: np.random.Generator) -> np.ndarray:
    """A printed screen of dots a few pixels apart, `contrast` gray levels dark."""
    rows, columns = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    step, shear = rng.uniform(3.0, 7.0), rng.uniform(-0.5, 0.5)
    dots = np.cos(2 * np.pi * rows / step) * np.cos(2 * np.pi * (columns + shear * rows) / step) > 0.6
    return dots * np.float32(contrast)


def security_paper(shape: tuple[int, int], ink_contrast: float, rng: np.random.Generator) -> np.ndarray:
    """The field's paper (float gray): a pattern, grain and a gradient."""
    kind = PATTERNS[int(rng.choice(len(PATTERNS), p=PATTERN_WEIGHTS))]
    contrast = rng.uniform(*PATTERN_CONTRAST_SHARE) * ink_contrast
    darkness = np.zeros(shape, np.float32)
    if kind in ("waves", "both"):
        darkness = np.maximum(darkness, guilloche(shape, contrast, rng))
    if kind in ("dots", "both"):
        darkness = np.maximum(darkness, dot_screen(shape, contrast, rng))
    paper = rng.uniform(*PAPER_RANGE) - darkness + rng.normal(0, rng.uniform(*GRAIN_SIGMA_RANGE), shape)
    return paper + np.linspace(0, rng.uniform(-GRADIENT_RANGE, GRADIENT_RANGE), shape[1])[None]


def ink_strength(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """How much ink covers each pixel (0..1): the mask's strokes with a soft edge, fainter in places."""
    coverage = cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), rng.uniform(*EDGE_BLUR_RANGE))
    height, width = mask.shape
    cells = rng.uniform(0, 1, (max(1, height // FAINT_CELL_PX), max(1, width // FAINT_CELL_PX))).astype(np.float32)
    fading = cv2.resize(cells, (width, height), interpolation=cv2.INTER_LINEAR)
    return coverage * (1 - rng.uniform(*FAINT_STROKE_RANGE) * fading)


def printed_rules(page: np.ndarray, rng: np.random.Generator) -> None:
    """The field's printed baseline (solid or dashed) and vertical rule, where it has them (in place)."""
    height, width = page.shape
    if rng.random() < BASELINE_SHARE:
        row, thickness = height - int(rng.integers(3, 16)), int(rng.integers(1, 3))
        row = int(np.clip(row, 0, height - 1))
        solid = np.ones(width, bool)
        if rng.random() < DASHED_BASELINE_SHARE:
            solid = np.arange(width) % int(rng.integers(5, 12)) < int(rng.integers(3, 6))
        page[row : row + thickness] = np.where(solid, rng.uniform(*PRINT_GRAY_RANGE), page[row : row + thickness])
    if rng.random() < VERTICAL_RULE_SHARE:
        column = int(rng.integers(0, width))
        page[:, column : column + int(rng.integers(1, 3))] = rng.uniform(*PRINT_GRAY_RANGE)


def cheque_field(mask: np.ndarray, height: float, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int]]:
    """A line's ink mask (uint8 0/255, digit height `height` px) as a scanned cheque field (uint8 gray), and the
    columns (first, end) its ink spans in the scan."""
    (top, bottom), (left, right) = (tuple(int(rng.integers(*r)) for _ in range(2)) for r in MARGIN_RANGE_PX)
    padded = np.pad(mask, ((top, bottom), (left, right)))
    ink_contrast = rng.uniform(*INK_CONTRAST_RANGE)
    paper = security_paper(padded.shape, ink_contrast, rng)
    strength = ink_strength(padded, rng)
    page = paper * (1 - strength) + (paper.mean() - ink_contrast) * strength
    printed_rules(page, rng)
    scale = rng.uniform(*SCAN_DIGIT_HEIGHT_PX) / max(height, 1.0)
    scan = cv2.resize(np.clip(page, 0, 255).astype(np.uint8), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    quality = int(rng.integers(*JPEG_QUALITY_RANGE))
    _, jpeg = cv2.imencode(".jpg", scan, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE), (round(left * scale), round((left + mask.shape[1]) * scale))
