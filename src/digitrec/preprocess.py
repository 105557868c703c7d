"""Turning raw pixels into model inputs.

Pixel normalizations shared by training and inference live here, so both sides use the same code; so does the
photo pipeline (`photo_stages`, `photo_to_mnist`) that turns a user's photo or scan of one digit into an MNIST-like
28x28 image, and the report's naive one (`naive_photo_to_mnist`) kept for comparison.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import cv2
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


# ---------------------------------------------------------------------------------- a user's image -> MNIST digit
#
# How MNIST was made (LeCun, Cortes & Burges): black-and-white NIST digits were size-normalized to fit a 20x20 box,
# keeping their aspect ratio (anti-aliasing made the gray levels), then placed in a 28x28 field so that their centre
# of mass is at its centre. The photo pipeline finds the ink and the digit in a photo, then repeats those two steps.

MNIST_BOX_FRACTION = 20 / 28  # the 20x20 box inside the 28x28 field
MNIST_CENTRE_OF_MASS_FRACTION = 0.5  # centre of mass of the first 10k training digits: x 14.00, y 14.00 (± 0.29 px)
# Slant of MNIST's training digits as the moments skew mu11 / mu02 of their ink (x to the right, y down; < 0: the
# top leans right): quartiles over the first 10k training digits (median -0.13; 5th-95th percentiles -0.59, 0.33).
# Deskewing beyond the quartiles read rotated photos best (benchmarks/photos.py, "rotation": 84% vs 80% without
# deskew, digitnet-small after 2 epochs; no change on upright digits).
MNIST_SKEW_RANGE = (-0.32, 0.06)
# Stroke width (`stroke_width_px`) with the digit's longer side scaled to STROKE_BOX_PX, of the first 1,000 MNIST
# training digits shown to this pipeline as dark-on-light images: 5th and 95th percentiles (median 11.7 px, i.e.
# 2.9 px in the 20 px box). Pens outside this range are brought to its nearer end.
STROKE_BOX_PX = 80
MNIST_STROKE_RANGE_PX = (9.0, 15.4)

WHITE = 255
SIXTEEN_TO_EIGHT_BITS = 257  # 65535 / 255
WORK_MAX_SIDE_PX = 1024  # photos are analysed at most this large: a digit a tenth of the frame is still 100 px
WORK_MIN_SIDE_PX = 224  # smaller images (a 28x28 digit) are enlarged so that the morphology below has room
COARSE_SIDE_PX = 128  # lighting and background are estimated on the image shrunk to this shorter side
BACKGROUND_MEDIAN_FRACTION = 0.3  # median window for the background, as a fraction of the coarse shorter side
# Closing windows tried for uneven lighting, as fractions of the coarse shorter side: the first is wider than most
# pen strokes and narrow enough to follow shadows; wider ones are for markers whose strokes it would hollow out.
LIGHTING_CLOSING_FRACTIONS = (0.25, 0.5, 1.0)
MIN_EXTRA_INK_FRACTION = 0.005  # a wider window that adds less ink than this changes nothing
SMALL_HOLE_FRACTION = 0.005  # enclosed paper smaller than this fraction of the ink is a pinhole, not a loop
INK_LEVEL_TOLERANCE = 0.25  # added pixels are ink when this close to it (fraction of the ink-to-paper range)
EXTREME_PIXEL_FRACTION = 0.0005  # ink contrast is read at the 0.05% most extreme pixels (at least 30 of them)
EXTREME_MIN_PIXELS = 30
BORDER_FRACTION = 0.05  # the image's outer 5% tells the paper's brightness (and so the ink's polarity) ...
BORDER_EVEN_FRACTION = 0.25  # ... when its 10-90% spread is below this fraction of the image's contrast
MIN_INK_CONTRAST = 40  # gray levels between ink and paper below which nothing is taken for ink
MIN_INK_SNR = 6.0  # ... or below this many times the paper's noise (robust sigma)
INK_NOISE_SIGMAS = 4.0  # a pixel is ink only if darker than the paper by this many noise sigmas (and by Otsu)
LINE_SEGMENT_FRACTION = 0.08  # a ruled line is made of straight runs at least this long (fraction of the side),
LINE_ANGLES_DEG = (-3.0, -1.5, 0.0, 1.5, 3.0)  # horizontal or photographed slightly askew,
LINE_MAX_THICKNESS_FRACTION = 0.03  # thin (ruled lines are 1-3 px where the page spans 300 px; at least 6 px),
LINE_MIN_THICKNESS_PX = 6
LINE_SPAN_FRACTION = 0.85  # lined up from end to end across this much of the image,
LINE_COVERAGE_FRACTION = 0.3  # and visible along this much of it (the rest may hide under the digit)
MIN_DIGIT_HEIGHT_FRACTION = 0.04  # of the working image's shorter side: smaller marks are specks
MIN_DIGIT_HEIGHT_PX = 8
SPECK_AREA_FRACTION = 0.03  # components below this fraction of the digit's main component are noise
MAX_DIGIT_WIDTH_PER_HEIGHT = 3.0  # wider components are lines or smudges, not digits
PART_GAP_FRACTION = 0.15  # a broken-off piece within this fraction of the digit's height belongs to it
RIVAL_HEIGHT_FRACTION = 0.5  # another component this tall (vs the digit) ...
RIVAL_AREA_FRACTION = 0.2  # ... with this much ink is another digit
FAINT_RIM_PX = 2  # reading digits from gray: ink this far outside the binarized stroke is kept (a pen line's soft
# rim and faint ends, which the threshold leaves out; MNIST's own strokes have a 1-2 px anti-aliased rim)
INK_LEVEL_PERCENTILE = 5  # ... the ink's full darkness: this percentile of the gray under the binarized stroke
FAINTEST_SHOWN_INK = 20  # ... crops keep rows and columns with ink stronger than this (of 255): paper noise is left out
NO_DIGIT = "no digit found (the image looks blank, or its ink is too faint)"
LIGHT_BACKGROUND_MEAN = 127.5  # the naive pipeline: a mean above mid-gray means a light background


@dataclass(frozen=True)
class PhotoStages:
    """Every stage of the photo pipeline, for the debug strip; `digit` is None when `problem` says why."""

    original: np.ndarray  # uint8 RGB (or gray) at working size
    gray: np.ndarray  # uint8, ink dark on light paper, lighting flattened
    binary: np.ndarray  # uint8 0/255, ink white, ruled lines removed
    cropped: np.ndarray  # uint8 0/255, the digit's components cut out tightly, deskewed, strokes normalized
    digit: np.ndarray | None  # uint8 (size, size), white on black, MNIST-like
    problem: str | None = None


def image_to_array(image) -> np.ndarray:
    """A PIL image or an array -> uint8 gray `(H, W)` or RGB `(H, W, 3)`.

    EXIF orientation is applied, transparency flattened onto white, 16-bit gray scaled to 8 bits (not clipped),
    CMYK, palette and other modes converted to RGB.
    """
    if isinstance(image, np.ndarray):
        return array_to_uint8(image)
    from PIL import ImageOps

    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):  # a damaged EXIF block: keep it as stored
        image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I"):  # I;16, I;16B, I (16-bit PNG and TIFF)
        return array_to_uint8(np.clip(np.asarray(image), 0, np.iinfo(np.uint16).max).astype(np.uint16))
    if image.mode == "F":
        return array_to_uint8(np.asarray(image, dtype=np.float32))
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        return array_to_uint8(np.asarray(image.convert("RGBA")))
    if image.mode in ("1", "L"):
        return np.asarray(image.convert("L"))
    return np.asarray(image.convert("RGB"))


def array_to_uint8(array: np.ndarray) -> np.ndarray:
    """uint8, uint16 or float (0..1) pixels, gray, RGB or RGBA -> uint8 gray or RGB, alpha flattened onto white."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise DigitrecError(f"expected a gray, RGB or RGBA image, got an array of shape {array.shape}")
    if array.dtype == np.uint16:
        array = array / SIXTEEN_TO_EIGHT_BITS
    elif array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
            raise DigitrecError(f"expected numeric pixels, got dtype {array.dtype} or non-finite values")
        array = array * WHITE if array.max() <= 1.0 else array
    array = np.clip(np.rint(array), 0, WHITE).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 4:
        alpha = array[:, :, 3:].astype(np.float32) / WHITE
        array = np.rint(array[:, :, :3] * alpha + WHITE * (1 - alpha)).astype(np.uint8)
    return array


def resize_for_work(array: np.ndarray) -> np.ndarray:
    """Shrink large photos to WORK_MAX_SIDE_PX, enlarge tiny images to WORK_MIN_SIDE_PX (longer side)."""
    longer = max(array.shape[:2])
    if longer > WORK_MAX_SIDE_PX:
        scale, interpolation = WORK_MAX_SIDE_PX / longer, cv2.INTER_AREA
    elif longer < WORK_MIN_SIDE_PX:
        scale, interpolation = WORK_MIN_SIDE_PX / longer, cv2.INTER_CUBIC
    else:
        return array
    height, width = array.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(array, size, interpolation=interpolation)


def shrink_to_coarse(gray: np.ndarray) -> np.ndarray:
    scale = min(1.0, COARSE_SIDE_PX / min(gray.shape))
    size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def odd(value: float) -> int:
    return max(3, int(value) // 2 * 2 + 1)


def median_background(gray: np.ndarray) -> np.ndarray:
    """The paper's brightness under each pixel, whatever the ink's polarity: a wide median, computed coarse."""
    coarse = shrink_to_coarse(gray)
    background = cv2.medianBlur(coarse, odd(min(coarse.shape) * BACKGROUND_MEDIAN_FRACTION))
    return cv2.resize(background, (gray.shape[1], gray.shape[0]), interpolation=cv2.INTER_LINEAR)


def robust_sigma(values: np.ndarray) -> float:
    """Standard deviation estimated from the median absolute deviation (1.4826 makes it exact for a Gaussian)."""
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def extreme_values(values: np.ndarray) -> tuple[float, float]:
    """(low, high): the values of the EXTREME_PIXEL_FRACTION darkest and brightest pixels (at least 30 of them)."""
    flat = values.ravel()
    count = min(flat.size - 1, max(EXTREME_MIN_PIXELS, int(flat.size * EXTREME_PIXEL_FRACTION)))
    return float(np.partition(flat, count)[count]), float(
        np.partition(flat, flat.size - 1 - count)[flat.size - 1 - count]
    )


@dataclass(frozen=True)
class ChannelContrast:
    """How ink stands out in one channel, in gray levels, against the local background (a wide median)."""

    dark: float  # how much darker than the background its darkest pixels are
    light: float  # how much lighter its lightest pixels are
    noise: float  # robust sigma of the channel around its background

    @property
    def contrast(self) -> float:
        return max(self.dark, self.light)

    @property
    def signal_to_noise(self) -> float:
        return self.contrast / (self.noise + 1.0)


def channel_contrast(channel: np.ndarray) -> ChannelContrast:
    """Read at the most extreme few pixels after a slight blur, so that single noisy pixels do not count."""
    difference = channel.astype(np.float32) - median_background(channel)
    low, high = extreme_values(cv2.GaussianBlur(difference, (0, 0), 1.0))
    return ChannelContrast(-low, high, robust_sigma(difference[:: max(1, difference.size // 200_000)]))


def border_pixels(channel: np.ndarray) -> np.ndarray:
    """The image's outer BORDER_FRACTION: paper almost always surrounds a digit."""
    band = max(1, round(min(channel.shape) * BORDER_FRACTION))
    return np.concatenate(
        [channel[:band].ravel(), channel[-band:].ravel(), channel[:, :band].ravel(), channel[:, -band:].ravel()]
    )


def ink_is_light(channel: np.ndarray, local: ChannelContrast) -> bool:
    """Light ink on dark paper (chalk)?

    Where the border is evenly lit, the paper's level is its median and the ink is whichever extreme lies further
    from it (this holds for big digits filling the image). Under a shadow or gradient the border is not even; then
    the stronger side against the local background decides (this holds for digits thinner than the median window).
    """
    border = border_pixels(channel)
    low, high = extreme_values(cv2.GaussianBlur(channel, (0, 0), 1.0))
    spread = float(np.percentile(border, 90) - np.percentile(border, 10))
    if spread <= BORDER_EVEN_FRACTION * (high - low):
        paper = float(np.median(border))
        return high - paper > paper - low
    return local.light > local.dark


def ink_dark_gray(array: np.ndarray) -> tuple[np.ndarray, bool]:
    """The gray image in which the ink stands out most, turned so that ink is dark; and whether any ink stands out.

    Colour images offer luminance, red, green and blue; coloured ink on coloured paper usually stands out best in
    one channel (blue ink on yellow paper: red). Light ink on dark paper (chalk) is detected and inverted.
    """
    if array.ndim == 2:
        candidates = [array]
    else:
        candidates = [
            cv2.cvtColor(array, cv2.COLOR_RGB2GRAY),
            *(np.ascontiguousarray(array[:, :, c]) for c in range(3)),
        ]
    contrasts = [channel_contrast(channel) for channel in candidates]
    best = int(np.argmax([c.signal_to_noise for c in contrasts]))
    channel, contrast = candidates[best], contrasts[best]
    has_ink = contrast.contrast >= MIN_INK_CONTRAST and contrast.signal_to_noise >= MIN_INK_SNR
    return (WHITE - channel if ink_is_light(channel, contrast) else channel), has_ink


def flatten_lighting(gray: np.ndarray, closing_fraction: float) -> np.ndarray:
    """Divide by the paper's brightness (a morphological closing wider than the strokes): shadows and gradients go."""
    coarse = shrink_to_coarse(gray)
    size = odd(min(coarse.shape) * closing_fraction)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    paper = cv2.morphologyEx(coarse, cv2.MORPH_CLOSE, kernel)
    paper = cv2.GaussianBlur(paper, (0, 0), size / 4)
    paper = cv2.resize(paper, (gray.shape[1], gray.shape[0]), interpolation=cv2.INTER_LINEAR)
    flat = gray.astype(np.float32) / np.maximum(paper.astype(np.float32), 1.0) * WHITE
    return np.clip(flat, 0, WHITE).astype(np.uint8)


def is_ink_dark(gray: np.ndarray, ink: np.ndarray, extra: np.ndarray) -> bool:
    """Are the `extra` pixels as dark as ink (a marker's wide stroke) rather than as paper in a shadow?"""
    ink_level, paper_level = np.median(gray[ink > 0]), np.median(gray[ink == 0])
    return np.median(gray[extra]) <= ink_level + INK_LEVEL_TOLERANCE * (paper_level - ink_level)


def find_ink(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flattened gray, ink, faint marks) from `binarize`, with the narrowest lighting window that does not hollow
    out the strokes.

    A narrow window follows shadows best, but strokes wider than it lose their middles; a wider window is kept when
    the ink it adds (beyond a 1-pixel change of outline) is as dark as ink (a marker), not shadowed paper.
    """
    flat = flatten_lighting(gray, LIGHTING_CLOSING_FRACTIONS[0])
    ink, faint = binarize(flat)
    for closing_fraction in LIGHTING_CLOSING_FRACTIONS[1:]:
        wider_flat = flatten_lighting(gray, closing_fraction)
        wider_ink, wider_faint = binarize(wider_flat)
        extra = cv2.erode(np.where((wider_ink > 0) & (ink == 0), WHITE, 0).astype(np.uint8), np.ones((3, 3), np.uint8))
        if not ink.any() or np.count_nonzero(extra) <= MIN_EXTRA_INK_FRACTION * np.count_nonzero(ink):
            break
        if not is_ink_dark(gray, ink, extra > 0):
            break
        flat, ink, faint = wider_flat, wider_ink, wider_faint
    return flat, fill_small_holes(ink), faint


def fill_small_holes(ink: np.ndarray) -> np.ndarray:
    """Fill pinholes: paper enclosed by ink and far smaller than any loop of a digit (noise, a marker's sheen)."""
    count, holes, stats, _ = cv2.connectedComponentsWithStats(np.where(ink > 0, 0, 1).astype(np.uint8), connectivity=4)
    x, y, width, height, area = (stats[:, i] for i in range(5))
    inside = (x > 0) & (y > 0) & (x + width < ink.shape[1]) & (y + height < ink.shape[0])
    pinholes = np.flatnonzero(inside & (area <= SMALL_HOLE_FRACTION * np.count_nonzero(ink)))
    pinholes = pinholes[pinholes != 0]
    filled = ink.copy()
    filled[np.isin(holes, pinholes)] = WHITE
    return filled


def binarize(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ink, faint marks), 0/255. Ink: pixels darker than Otsu's threshold and clearly darker than the paper's
    noise, grown (hysteresis) into connected faint marks, so that faint thin strokes stay whole. Faint marks:
    everything halfway between that threshold and the paper (light ruled lines too).

    Otsu alone splits the paper's noise in two when the digit is a tiny part of a large photo.
    """
    smooth = cv2.GaussianBlur(flat, (0, 0), 1.0)
    otsu_threshold, _ = cv2.threshold(smooth, 0, WHITE, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    paper = float(np.median(smooth))
    noise_threshold = paper - max(INK_NOISE_SIGMAS * robust_sigma(smooth[::2, ::2]), MIN_INK_CONTRAST / 2)
    strong = smooth < min(otsu_threshold, noise_threshold)
    weak = smooth < min(noise_threshold, (otsu_threshold + paper) / 2)
    _, labels = cv2.connectedComponents(weak.astype(np.uint8), connectivity=8)
    seeded = np.unique(labels[strong])
    ink = np.where(np.isin(labels, seeded[seeded != 0]), WHITE, 0).astype(np.uint8)
    return ink, np.where(weak, WHITE, 0).astype(np.uint8)


def line_kernel(length: int, angle_deg: float) -> np.ndarray:
    """A one-pixel straight line of `length` at `angle_deg` from horizontal, as a structuring element."""
    half_height = int(np.ceil(abs(np.tan(np.radians(angle_deg))) * length / 2))
    kernel = np.zeros((2 * half_height + 1, length), np.uint8)
    rise = np.tan(np.radians(angle_deg)) * (length - 1) / 2
    cv2.line(kernel, (0, round(half_height + rise)), (length - 1, round(half_height - rise)), 1)
    return kernel


@dataclass(frozen=True)
class LinePiece:
    """A straight, thin piece of a ruled line: y = slope * x + intercept for x in [x0, x1]."""

    xs: np.ndarray
    ys: np.ndarray

    @property
    def x0(self) -> int:
        return int(self.xs.min())

    @property
    def x1(self) -> int:
        return int(self.xs.max())

    def fit(self) -> tuple[float, float]:
        slope, intercept = np.polyfit(self.xs, self.ys, 1) if self.x1 > self.x0 else (0.0, float(self.ys.mean()))
        return float(slope), float(intercept)

    def y_at(self, x: float) -> float:
        slope, intercept = self.fit()
        return slope * x + intercept

    @property
    def thickness(self) -> float:
        return len(self.xs) / (self.x1 - self.x0 + 1)


def thin_straight_pieces(faint: np.ndarray, max_thickness: float) -> list[LinePiece]:
    """Straight horizontal runs (slightly tilted too) that are thin: the digit's blobs are cut out of them."""
    length = max(9, round(faint.shape[1] * LINE_SEGMENT_FRACTION))
    runs = np.zeros_like(faint)
    for angle in LINE_ANGLES_DEG:
        runs |= cv2.morphologyEx(faint, cv2.MORPH_OPEN, line_kernel(length, angle))
    thick = cv2.morphologyEx(runs, cv2.MORPH_OPEN, np.ones((int(max_thickness) + 1, 1), np.uint8))
    thin = runs & ~thick
    count, labels, stats, _ = cv2.connectedComponentsWithStats(thin, connectivity=8)
    if count <= 1:
        return []
    ys, xs = np.nonzero(thin)
    owners = labels[ys, xs]
    order = np.argsort(owners, kind="stable")
    starts = np.searchsorted(owners[order], np.arange(1, count))
    pieces = []
    for label, group in zip(range(1, count), np.split(order, starts[1:]), strict=True):
        if stats[label, cv2.CC_STAT_WIDTH] >= length:
            pieces.append(LinePiece(xs[group], ys[group]))
    return pieces


def collinear_groups(pieces: list[LinePiece], tolerance_px: float) -> list[list[LinePiece]]:
    """Pieces of the same line (interrupted by the digit or by gaps) grouped: they meet where they would join."""
    groups: list[list[LinePiece]] = []
    for piece in sorted(pieces, key=lambda p: p.x0):
        for group in groups:
            last = group[-1]
            x = (last.x1 + piece.x0) / 2
            if abs(last.y_at(x) - piece.y_at(x)) <= tolerance_px:
                group.append(piece)
                break
        else:
            groups.append([piece])
    return groups


def horizontal_lines(faint: np.ndarray) -> np.ndarray:
    """The bands of ruled lines: thin straight pieces that line up across nearly the whole image (0/255).

    The band runs across the whole width, also under the digit; `remove_ruled_lines` mends what it cuts.
    """
    height, width = faint.shape
    max_thickness = max(LINE_MIN_THICKNESS_PX, LINE_MAX_THICKNESS_FRACTION * height)
    lines = np.zeros(faint.shape, bool)
    rows, columns = np.mgrid[0:height, 0:width]
    for group in collinear_groups(thin_straight_pieces(faint, max_thickness), max_thickness):
        extent = max(p.x1 for p in group) - min(p.x0 for p in group) + 1
        coverage = sum(p.x1 - p.x0 + 1 for p in group)
        if extent < LINE_SPAN_FRACTION * width or coverage < LINE_COVERAGE_FRACTION * width:
            continue
        whole = LinePiece(np.concatenate([p.xs for p in group]), np.concatenate([p.ys for p in group]))
        slope, intercept = whole.fit()
        lines |= np.abs(rows - (slope * columns + intercept)) <= whole.thickness / 2 + 1
    return np.where(lines, WHITE, 0).astype(np.uint8)


def remove_ruled_lines(ink: np.ndarray, faint: np.ndarray) -> np.ndarray:
    """Remove ruled and grid lines, then mend the strokes they crossed (only line pixels are filled back).

    Lines are looked for among the faint marks, where they are whole: in the ink, only the pieces touching the
    digit remain.
    """
    horizontal = horizontal_lines(faint) & ink
    vertical = horizontal_lines(faint.T.copy()).T & ink
    lines = horizontal | vertical
    if not lines.any():
        return ink
    kept = ink & ~lines
    mend = 2 * round(max(LINE_MIN_THICKNESS_PX, LINE_MAX_THICKNESS_FRACTION * min(ink.shape))) + 1
    bridged = cv2.morphologyEx(kept, cv2.MORPH_CLOSE, np.ones((mend, 1), np.uint8)) & horizontal
    bridged |= cv2.morphologyEx(kept, cv2.MORPH_CLOSE, np.ones((1, mend), np.uint8)) & vertical
    return kept | bridged


@dataclass(frozen=True)
class Component:
    label: int
    x: int
    y: int
    width: int
    height: int
    area: int

    def gap_to(self, other: Component) -> int:
        """Pixels between the two bounding boxes (0 when they overlap)."""
        dx = max(other.x - (self.x + self.width), self.x - (other.x + other.width), 0)
        dy = max(other.y - (self.y + self.height), self.y - (other.y + other.height), 0)
        return max(dx, dy)

    def x_overlap(self, other: Component) -> float:
        """Overlap of the two column ranges, as a fraction of the narrower one."""
        overlap = min(self.x + self.width, other.x + other.width) - max(self.x, other.x)
        return max(overlap, 0) / min(self.width, other.width)


def connected_components(ink: np.ndarray) -> tuple[np.ndarray, list[Component]]:
    _, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    components = [Component(label, *(int(v) for v in stats[label, :5])) for label in range(1, len(stats))]
    return labels, components


def touches_border(component: Component, shape: tuple[int, int]) -> bool:
    return (
        component.x == 0
        or component.y == 0
        or component.x + component.width >= shape[1]
        or component.y + component.height >= shape[0]
    )


def digit_candidates(components: list[Component], shape: tuple[int, int]) -> list[Component]:
    """Components that could be (part of) the digit: not specks, and not touching the border when others don't."""
    min_height = max(MIN_DIGIT_HEIGHT_PX, MIN_DIGIT_HEIGHT_FRACTION * min(shape))
    inner = [c for c in components if not touches_border(c, shape)]
    if inner and max(c.height for c in inner) >= min_height:
        return inner  # frames, table edges and page borders around the paper are ignored
    return components


def is_digit_shaped(component: Component) -> bool:
    return component.width <= MAX_DIGIT_WIDTH_PER_HEIGHT * component.height


def is_part_of(component: Component, main: Component) -> bool:
    """A piece broken off the digit: stacked above or below its main component, or small and very close to it."""
    if component.area < SPECK_AREA_FRACTION * main.area:
        return False
    max_gap = PART_GAP_FRACTION * main.height
    stacked = main.x_overlap(component) >= 0.5 and main.gap_to(component) <= 2 * max_gap
    close_and_small = main.gap_to(component) <= max_gap and component.height < RIVAL_HEIGHT_FRACTION * main.height
    return stacked or close_and_small


def is_rival(component: Component, main: Component) -> bool:
    """Another digit: nearly as tall as the digit's main component, with a good share of its ink."""
    return (
        is_digit_shaped(component)
        and component.height >= RIVAL_HEIGHT_FRACTION * main.height
        and component.area >= RIVAL_AREA_FRACTION * main.area
    )


def select_digit(ink: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """The digit's pixels (its main component and broken-off pieces), or None and what is wrong.

    Another component nearly as tall and inked as the digit means several digits: refused rather than guessed.
    """
    labels, components = connected_components(ink)
    candidates = digit_candidates(components, ink.shape)
    shaped = [c for c in candidates if is_digit_shaped(c)]
    min_height = max(MIN_DIGIT_HEIGHT_PX, MIN_DIGIT_HEIGHT_FRACTION * min(ink.shape))
    if not shaped or max(c.height for c in shaped) < min_height:
        return None, NO_DIGIT
    main = max(shaped, key=lambda c: c.area)
    parts = [main] + [c for c in candidates if c is not main and is_part_of(c, main)]
    rivals = [c for c in candidates if c not in parts and is_rival(c, main)]
    if rivals:
        return None, (
            f"it holds several digits ({len(rivals) + 1} digit-sized marks); predict reads one digit per image: "
            "crop it (`digitrec read` for several digits is planned)"
        )
    mask = np.isin(labels, [c.label for c in parts])
    return np.where(mask, WHITE, 0).astype(np.uint8), None


def tight_crop(mask: np.ndarray) -> np.ndarray:
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return mask[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]


def moments_skew(mask: np.ndarray) -> float:
    """Slant of the ink as mu11 / mu02: how far x moves per pixel down the digit's principal axis."""
    moments = cv2.moments(mask, binaryImage=True)
    return moments["mu11"] / moments["mu02"] if moments["mu02"] > 0 else 0.0


def skew_correction(mask: np.ndarray) -> float:
    """How much of the ink's slant `deskew` takes out: the part beyond MNIST_SKEW_RANGE (0.0 inside it)."""
    skew = moments_skew(mask)
    return skew - float(np.clip(skew, *MNIST_SKEW_RANGE))


def shear(image: np.ndarray, correction: float, interpolation: int) -> np.ndarray:
    """`image` sheared horizontally by `correction` about its middle row, widened so that nothing falls off."""
    height, width = image.shape
    centre_y = (height - 1) / 2
    extra = int(np.ceil(abs(correction) * height / 2)) + 1
    # x' = x - correction * (y - centre_y) + extra
    matrix = np.float32([[1, -correction, correction * centre_y + extra], [0, 1, 0]])
    return cv2.warpAffine(image, matrix, (width + 2 * extra, height), flags=interpolation)


def deskew(mask: np.ndarray) -> np.ndarray:
    """Shear the digit so its slant falls back inside MNIST's range (MNIST_SKEW_RANGE); within it, nothing moves.

    A horizontal shear keeps every row where it was: the top of the digit stays on top, so a 6 stays a 6 and a 9 a 9
    (a rotation by the principal axis could turn one into the other). Only slants beyond what most MNIST writers
    produced (beyond their quartiles) are corrected, which straightens digits rotated by up to about ±30°;
    upside-down digits are not.
    """
    correction = skew_correction(mask)
    if correction == 0.0:
        return mask
    return tight_crop(shear(mask, correction, cv2.INTER_NEAREST))


def resize_to_box(image: np.ndarray, box_px: int) -> tuple[np.ndarray, float]:
    """`image` resized so that its longer side is `box_px`, keeping its aspect ratio; and the scale."""
    height, width = image.shape
    scale = box_px / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interpolation), scale


def scale_to_box(mask: np.ndarray, box_px: int) -> np.ndarray:
    """Resize a 0/255 mask so that its longer side is `box_px`, keeping its aspect ratio and staying 0/255."""
    resized, scale = resize_to_box(mask, box_px)
    binary = resized >= WHITE // 2
    if np.count_nonzero(binary) < 0.5 * np.count_nonzero(mask) * scale**2:  # hairlines shrunk below half a pixel
        binary = resized > 0
    return np.where(binary, WHITE, 0).astype(np.uint8)


def stroke_width_px(mask: np.ndarray) -> float:
    """Mean stroke width: a stroke of length L and width w has area L*w and outline 2*L, so w = 2 * area / outline."""
    contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    outline = sum(cv2.arcLength(contour, closed=True) for contour in contours)
    return 2.0 * np.count_nonzero(mask) / outline if outline > 0 else 0.0


def stroke_change_px(boxed: np.ndarray) -> int:
    """The radius of the disc that brings the stroke width of `boxed` (0/255, STROKE_BOX_PX) into MNIST's range:
    positive to thicken, negative to thin, 0 inside it (a disc of radius r changes the width by 2r)."""
    width = stroke_width_px(boxed)
    target = float(np.clip(width, *MNIST_STROKE_RANGE_PX))
    return round((target - width) / 2)


def disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(radius) + 1, 2 * abs(radius) + 1))


def changed_stroke(boxed: np.ndarray, radius: int) -> np.ndarray:
    """`boxed` (a 0/255 mask or ink strengths) widened by a disc of `radius` (dilation), or narrowed by one of
    -`radius` (erosion, unless that leaves no ink), cropped to its ink; unchanged when `radius` is 0."""
    if radius > 0:
        padded = cv2.copyMakeBorder(boxed, radius, radius, radius, radius, cv2.BORDER_CONSTANT, value=0)
        return crop_to_ink(cv2.dilate(padded, disc(radius)))
    if radius < 0:
        eroded = cv2.erode(boxed, disc(radius))
        return crop_to_ink(eroded) if (eroded > FAINTEST_SHOWN_INK).any() else boxed
    return boxed


def normalize_stroke(mask: np.ndarray) -> np.ndarray:
    """Thicken thin pens and thin thick ones until the stroke width is inside MNIST's range (MNIST_STROKE_RANGE_PX)."""
    boxed = scale_to_box(mask, STROKE_BOX_PX)
    return changed_stroke(boxed, stroke_change_px(boxed))


def mnist_frame(mask: np.ndarray, size: int = 28) -> np.ndarray:
    """MNIST's own last steps: fit the longer side to the 20 px box (anti-aliased), centre of mass at the centre."""
    box_px = round(size * MNIST_BOX_FRACTION)
    height, width = mask.shape
    scale = box_px / max(height, width)
    scaled_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = cv2.resize(mask.astype(np.float32), scaled_size, interpolation=cv2.INTER_AREA)
    moments = cv2.moments(digit)
    mass = max(moments["m00"], 1e-6)  # an empty mask is caught by photo_stages
    centre = size * MNIST_CENTRE_OF_MASS_FRACTION
    shift_x = round(centre - moments["m10"] / mass)
    shift_y = round(centre - moments["m01"] / mass)
    translation = np.float32([[1, 0, shift_x], [0, 1, shift_y]])
    framed = cv2.warpAffine(digit, translation, (size, size), flags=cv2.INTER_NEAREST)
    return np.clip(np.rint(framed), 0, WHITE).astype(np.uint8)


@dataclass(frozen=True)
class InkStages:
    """The photo pipeline up to binarization, shared by one-digit photos and numbers (`digitrec.reading`)."""

    original: np.ndarray  # uint8 RGB (or gray) at working size
    gray: np.ndarray  # uint8, ink dark on light paper (lighting flattened when ink was found)
    binary: np.ndarray  # uint8 0/255, ink white, ruled lines removed; all 0 when no ink stands out
    has_ink: bool


def ink_stages(image) -> InkStages:
    """An image (PIL or array) at working size -> its ink: best channel, lighting flattened, thresholded, ruled
    and grid lines removed."""
    original = resize_for_work(image_to_array(image))
    gray, has_ink = ink_dark_gray(original)
    if not has_ink:
        return InkStages(original, gray, np.zeros_like(gray), False)
    flat, ink, faint = find_ink(gray)
    return InkStages(original, flat, remove_ruled_lines(ink, faint), True)


def mask_to_mnist(mask: np.ndarray, size: int = 28) -> np.ndarray:
    """A 0/255 mask of one digit's ink -> MNIST-like `(size, size)`: cropped, deskewed, stroke width normalized,
    fitted into the 20 px box, centre of mass centred."""
    return mnist_frame(normalize_stroke(deskew(tight_crop(mask))), size)


def ink_strength(gray: np.ndarray, stroke: np.ndarray, paper_level: float) -> np.ndarray:
    """How much ink each pixel of `gray` (ink dark) holds, float32 0 (paper) .. 255 (as dark as the ink under the
    binarized `stroke`, read at its INK_LEVEL_PERCENTILE)."""
    ink_level = float(np.percentile(gray[stroke], INK_LEVEL_PERCENTILE))
    strength = (paper_level - gray.astype(np.float32)) / max(paper_level - ink_level, 1.0)
    return np.clip(strength, 0.0, 1.0) * WHITE


def crop_to_ink(strength: np.ndarray) -> np.ndarray:
    """`strength` (ink bright: a 0/255 mask or ink strengths) cropped to the rows and columns with ink in them."""
    rows = np.flatnonzero(strength.max(axis=1) > FAINTEST_SHOWN_INK)
    columns = np.flatnonzero(strength.max(axis=0) > FAINTEST_SHOWN_INK)
    return strength[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]


def normalize_gray_stroke(strength: np.ndarray) -> np.ndarray:
    """`normalize_stroke` for ink strengths: scaled to STROKE_BOX_PX, widened or narrowed (gray dilation/erosion)
    by the disc that brings its half-strength stroke into MNIST's width range."""
    boxed, _ = resize_to_box(strength, STROKE_BOX_PX)
    return changed_stroke(boxed, stroke_change_px(np.where(boxed >= WHITE / 2, WHITE, 0).astype(np.uint8)))


def gray_to_mnist(gray: np.ndarray, mask: np.ndarray, others: np.ndarray, paper_level: float, size: int = 28):
    """One digit's gray levels -> MNIST-like `(size, size)`, the way MNIST itself was made (anti-aliased gray, not
    a binary mask): the ink strength within FAINT_RIM_PX of its binarized ink, so that the soft or faint parts of
    strokes that the threshold cut away come back, then deskewed, stroke width normalized and framed like
    `mask_to_mnist`.

    `gray` (ink dark, lighting flattened), `mask` (the digit's binarized ink, 0/255) and `others` (other digits'
    ink, never taken into this one) cover the same box around the digit, at least FAINT_RIM_PX wider than its ink;
    `paper_level` is the paper's gray there. Where the ink is no darker than that paper (nothing to read in gray),
    the binarized ink is read instead (`mask_to_mnist`)."""
    stroke = mask > 0
    rim = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=FAINT_RIM_PX) > 0
    strength = np.where(rim & ~(others > 0), ink_strength(gray, stroke, paper_level), 0.0).astype(np.float32)
    if not (strength > FAINTEST_SHOWN_INK).any():
        return mask_to_mnist(mask, size)
    correction = skew_correction(mask)
    if correction != 0.0:
        strength = shear(strength, correction, cv2.INTER_LINEAR)
    return mnist_frame(normalize_gray_stroke(crop_to_ink(strength)), size)


def photo_stages(image, size: int = 28) -> PhotoStages:
    """A photo or scan of one digit (PIL image or array) -> MNIST-like `(size, size)` uint8, with every stage.

    Ink is found in the channel where it stands out most, lighting is flattened, the image thresholded (Otsu, and
    clearly above the paper's noise), ruled and grid lines removed; the digit's components are kept (specks, page
    borders and far marks are not), cropped, deskewed, their strokes brought to MNIST's width, then framed as MNIST.
    """
    ink = ink_stages(image)
    empty = np.zeros((1, 1), np.uint8)
    if not ink.has_ink:
        return PhotoStages(ink.original, ink.gray, ink.binary, empty, None, NO_DIGIT)
    digit_mask, problem = select_digit(ink.binary)
    if digit_mask is None:
        return PhotoStages(ink.original, ink.gray, ink.binary, empty, None, problem)
    cropped = normalize_stroke(deskew(tight_crop(digit_mask)))
    digit = mnist_frame(cropped, size)
    if not digit.any():  # never seen; a blank answer must not reach the model
        return PhotoStages(ink.original, ink.gray, ink.binary, cropped, None, NO_DIGIT)
    return PhotoStages(ink.original, ink.gray, ink.binary, cropped, digit)


def photo_to_mnist(image, size: int = 28, source: str = "image") -> np.ndarray:
    """`photo_stages(image).digit`; an image without exactly one digit is a DigitrecError naming `source`."""
    stages = photo_stages(image, size)
    if stages.problem:
        raise DigitrecError(f"{source}: {stages.problem}")
    return stages.digit


def photo_file_to_mnist(path: str | os.PathLike, size: int = 28) -> np.ndarray:
    """The one digit in an image file (or one-page PDF) -> MNIST-like `(size, size)` uint8."""
    from digitrec.imagefiles import read_single_image

    source = read_single_image(path)
    return photo_to_mnist(source.image, size, source=source.name)


def naive_photo_to_mnist(image, size: int = 28) -> np.ndarray:
    """The report's own-image pipeline, for comparison: gray, threshold at the mean gray, invert if the background
    is light, squeeze to `size` x `size` (cv2.INTER_AREA). No crop, no centring, aspect ratio lost.

    (The report then also applied `normalize_paper_single_image_rows`; here the 28x28 uint8 goes to the model's own
    normalization, so only the geometry is compared.)
    """
    array = image_to_array(image)
    gray = array if array.ndim == 2 else cv2.cvtColor(array, cv2.COLOR_RGB2GRAY)
    binary = np.where(gray > gray.mean(), WHITE, 0).astype(np.uint8)
    if binary.mean() > LIGHT_BACKGROUND_MEAN:
        binary = WHITE - binary
    return cv2.resize(binary, (size, size), interpolation=cv2.INTER_AREA)


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
