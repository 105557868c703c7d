"""Ink and lighting: the best channel, flattened lighting, the ink's polarity and a threshold that follows noise."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from digitrec.mnist import WHITE

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


def ink_dark_gray(array: np.ndarray, min_snr: float = MIN_INK_SNR) -> tuple[np.ndarray, bool]:
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
    has_ink = contrast.contrast >= MIN_INK_CONTRAST and contrast.signal_to_noise >= min_snr
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


def find_ink(gray: np.ndarray, noise_sigmas: float = INK_NOISE_SIGMAS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flattened gray, ink, faint marks) from `binarize`, with the narrowest lighting window that does not hollow
    out the strokes.

    A narrow window follows shadows best, but strokes wider than it lose their middles; a wider window is kept when
    the ink it adds (beyond a 1-pixel change of outline) is as dark as ink (a marker), not shadowed paper.
    """
    flat = flatten_lighting(gray, LIGHTING_CLOSING_FRACTIONS[0])
    ink, faint = binarize(flat, noise_sigmas)
    for closing_fraction in LIGHTING_CLOSING_FRACTIONS[1:]:
        wider_flat = flatten_lighting(gray, closing_fraction)
        wider_ink, wider_faint = binarize(wider_flat, noise_sigmas)
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


def binarize(flat: np.ndarray, noise_sigmas: float = INK_NOISE_SIGMAS) -> tuple[np.ndarray, np.ndarray]:
    """(ink, faint marks), 0/255. Ink: pixels darker than Otsu's threshold and clearly darker than the paper's
    noise, grown (hysteresis) into connected faint marks, so that faint thin strokes stay whole. Faint marks:
    everything halfway between that threshold and the paper (light ruled lines too).

    Otsu alone splits the paper's noise in two when the digit is a tiny part of a large photo.
    """
    smooth = cv2.GaussianBlur(flat, (0, 0), 1.0)
    otsu_threshold, _ = cv2.threshold(smooth, 0, WHITE, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    paper = float(np.median(smooth))
    noise_threshold = paper - max(noise_sigmas * robust_sigma(smooth[::2, ::2]), MIN_INK_CONTRAST / 2)
    strong = smooth < min(otsu_threshold, noise_threshold)
    weak = smooth < min(noise_threshold, (otsu_threshold + paper) / 2)
    _, labels = cv2.connectedComponents(weak.astype(np.uint8), connectivity=8)
    seeded = np.unique(labels[strong])
    ink = np.where(np.isin(labels, seeded[seeded != 0]), WHITE, 0).astype(np.uint8)
    return ink, np.where(weak, WHITE, 0).astype(np.uint8)
