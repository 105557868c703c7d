"""Seeded photo-like images of handwritten *numbers* (a line of MNIST digits), and how well a reader reads them.

A strip is one line of digits written left to right: each digit becomes a pen stroke (`synth.pen_stroke`) with its
own small changes of size, baseline and slant; neighbours are separated by a clear gap or, with a chosen
probability, run into each other (their inks touch or overlap by up to a stroke width; such a digit may also reach
the digit before its neighbour, as cramped writing does). The line is then written on paper, lit and photographed
under one of `synth.CONDITIONS`, with the canvas sized to the line.

The condition's rotation turns the whole line (a number written askew), not each digit: the canvas grows to hold
it. Boxes are measured in the ink before the camera: a condition with perspective ("combined": 2-6% of the canvas
side, "perspective") moves the ink by up to that much after they were measured.

Every draw comes from the generator passed in; `strip_generator` gives each strip of an evaluation its own
stream, so a seed gives the same strips on every machine and a subset of cells or conditions leaves the others as
they were.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.ndimage import distance_transform_edt, maximum_filter1d, minimum_filter1d

from digitrec.errors import DigitrecError
from digitrec.fileio import write_bytes_atomic
from digitrec.mnist import IMAGE_SIZE as MNIST_SIDE_PX
from digitrec.synthetic.photos import CONDITIONS, Scene, base_scene, lighting, paper, pen_stroke, photograph

INK_THRESHOLD = 0.5  # coverage above which a pixel counts as ink (half way through the pen's edge)
# the line as a person writes it; heights and gaps are fractions of the strip's digit height (the MNIST 20 px box)
DIGIT_HEIGHT_RANGE_PX = (60.0, 120.0)  # a number photographed to be read: large enough, small enough to stay light
MAX_STRIP_WIDTH_PX = 1600  # the digit height is capped so that even the widest line fits about this width
WIDEST_ADVANCE = 1.4  # a wide digit (0.85) enlarged 10% and the widest gap (0.45); 360 strips measured <= 1.1
SCALE_JITTER = 0.10  # each digit is up to 10% larger or smaller than the line's height
BASELINE_JITTER = 0.08  # each digit's bottom is up to 8% of the height above or below the line
SLANT_JITTER_DEG = 4.0  # each digit leans up to 4° either way, independently of its neighbours
GAP_RANGE = (0.10, 0.45)  # clear space between the ink extents of two digits that do not touch
OVERLAP_RANGE_STROKES = (0.2, 1.0)  # how far a touching digit runs into its neighbour, in widths of the pen's stroke
MAX_OVERLAP_OF_WIDTH = 0.25  # and at most this share of the narrower digit's width (a 1 is not written over a 0)
CONTACT_REACH = 0.25  # where two digits meet, rows this far above and below (fraction of the height) count too
MARGIN_RANGE = (0.3, 0.9)  # paper on each side of the line
# synth's conditions that make sense for a line of digits (see the report); the others are left out because:
#   perspective: synth moves the corners by 5-12% of each canvas side, on a wide strip up to 190 px sideways,
#     enough to push the first or last digit off the photo (and the boxes, measured before the camera, off the ink);
#   rotation: a line 10-30° askew is a task of its own (finding and straightening the line), not reading it;
#   large-canvas: the strip sizes its own canvas and digits, so nothing of that condition would remain but noise.
READING_CONDITIONS = [
    "clean", "blue-ink", "coloured-paper", "pencil", "lighting-gradient", "shadow", "ruled-paper", "grid-paper",
    "jpeg", "blur", "noise", "thick-pen", "thin-pen", "light-on-dark", "combined",
]  # fmt: skip


TOUCHING_FRACTION_STEPS = 1000  # a touching fraction enters the seed in thousandths
Box = tuple[int, int, int, int]  # (x, y, width, height) in image pixels


@dataclass(frozen=True)
class Strip:
    """One photographed number and what is true about it."""

    image: np.ndarray  # uint8 RGB (H, W, 3)
    text: str  # the number as written, e.g. "4071"
    boxes: tuple[Box, ...]  # each digit's ink bounding box, left to right
    touching: tuple[bool, ...]  # for each pair of neighbours: is some connected piece of their two inks in both
    condition: str
    digit_height_px: float  # the line's digit height before each digit's own jitter
    coverage: np.ndarray  # float32 (H, W) ink coverage 0..1 before lighting and camera (the max over digits)
    digit_ink: np.ndarray  # bool (k, H, W): each digit's own ink (its coverage > INK_THRESHOLD)


@dataclass(frozen=True)
class Handwriting:
    """How one person wrote one number: each digit's size, baseline and slant, and each gap or overlap."""

    scales: np.ndarray  # (k,) relative to the line's digit height
    baseline_shifts: np.ndarray  # (k,) fractions of the digit height, > 0: lower
    slants_deg: np.ndarray  # (k,)
    touch_wanted: np.ndarray  # (k - 1,) bool: does this pair run together
    gaps: np.ndarray  # (k - 1,) clear space between ink extents, fractions of the digit height (pairs apart)
    overlaps: np.ndarray  # (k - 1,) how far the right digit runs into the left one, in pen widths (pairs touching)


def draw_handwriting(count: int, touching_fraction: float, rng: np.random.Generator) -> Handwriting:
    pairs = max(count - 1, 0)
    return Handwriting(
        scales=1 + rng.uniform(-SCALE_JITTER, SCALE_JITTER, count),
        baseline_shifts=rng.uniform(-BASELINE_JITTER, BASELINE_JITTER, count),
        slants_deg=rng.uniform(-SLANT_JITTER_DEG, SLANT_JITTER_DEG, count),
        touch_wanted=rng.random(pairs) < touching_fraction,
        gaps=rng.uniform(*GAP_RANGE, pairs),
        overlaps=rng.uniform(*OVERLAP_RANGE_STROKES, pairs),
    )


def largest_digit_height(length: int) -> float:
    """The tallest digits a line of `length` may have and still be about MAX_STRIP_WIDTH_PX wide at most."""
    widest_line = WIDEST_ADVANCE * length + 2 * MARGIN_RANGE[1]  # in digit heights
    low, high = DIGIT_HEIGHT_RANGE_PX
    return float(np.clip(MAX_STRIP_WIDTH_PX / widest_line, low, high))


def strip_scene(condition: str, digit_height_px: float, rng: np.random.Generator) -> Scene:
    """The condition's scene with the strip's digit height (before the condition, so that sizes drawn relative to
    the digit, like ruling and blur, follow it; and after, so that the strip's layout decides the size)."""
    if condition not in CONDITIONS:
        raise DigitrecError(f"unknown photo condition {condition!r}; known: {', '.join(CONDITIONS)}")
    _, apply = CONDITIONS[condition]
    scene = apply(dataclasses.replace(base_scene(rng), digit_height_px=digit_height_px), rng)
    return dataclasses.replace(scene, digit_height_px=digit_height_px)


def digit_patch(digit: np.ndarray, scene: Scene) -> np.ndarray:
    """The digit's pen stroke, cropped to where there is any ink (its soft edge included)."""
    coverage = pen_stroke(digit, scene)
    if not (coverage > INK_THRESHOLD).any():
        raise DigitrecError("a digit of the strip has no ink")
    rows, cols = np.nonzero(coverage > 0)
    return coverage[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def row_extents(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) ink column of each row; +inf / -inf in rows without ink."""
    has_ink = ink.any(axis=1)
    first = np.where(has_ink, ink.argmax(axis=1), np.inf)
    last = np.where(has_ink, ink.shape[1] - 1 - ink[:, ::-1].argmax(axis=1), -np.inf)
    return first, last


@dataclass(frozen=True)
class Placed:
    """A digit's patch and where its top-left corner lies in the line."""

    patch: np.ndarray
    top: int
    left: int

    @property
    def ink(self) -> np.ndarray:
        return self.patch > INK_THRESHOLD


def ink_width_px(patch: np.ndarray) -> int:
    columns = np.flatnonzero((patch > INK_THRESHOLD).any(axis=0))
    return int(columns[-1] - columns[0] + 1)


def pen_width_px(scene: Scene) -> float:
    """The width of the scene's pen stroke: MNIST's, widened or narrowed by the pen change on each side."""
    return max(1.0, scene.stroke_px + 2 * scene.pen_change_px)


def tops_on_one_baseline(patches: list[np.ndarray], baseline_shifts: np.ndarray, digit_height_px: float) -> list[int]:
    """Each patch's top row such that the ink bottoms sit on one baseline, each moved by its own shift."""
    bottoms = [int(np.flatnonzero((patch > INK_THRESHOLD).any(axis=1))[-1]) for patch in patches]
    tops = [round(shift * digit_height_px) - bottom for bottom, shift in zip(bottoms, baseline_shifts, strict=True)]
    return [top - min(tops) for top in tops]


def left_for_clear_gap(placed: list[Placed], patch: np.ndarray, gap_px: int) -> int:
    """The patch's left column that leaves `gap_px` empty columns after the ink extents of all digits so far."""
    line_end = max(digit.left + int(np.flatnonzero(digit.ink.any(axis=0))[-1]) for digit in placed)
    first_ink_column = int(np.flatnonzero((patch > INK_THRESHOLD).any(axis=0))[0])
    return line_end + 1 + gap_px - first_ink_column


def left_for_overlap(previous: Placed, patch: np.ndarray, top: int, overlap_px: int, reach_rows: int) -> int:
    """The patch's left column at which its ink, row by row, runs `overlap_px` columns into the previous digit's.

    Each row is compared with the rows up to `reach_rows` above and below, so that a digit's open side (a 5's
    mouth, the space under a 7's bar) counts as filled and the next digit does not slide into it.
    """
    band_top = min(previous.top, top)
    band_height = max(previous.top + previous.patch.shape[0], top + patch.shape[0]) - band_top
    previous_last = np.full(band_height, -np.inf)
    previous_rows = slice(previous.top - band_top, previous.top - band_top + previous.patch.shape[0])
    previous_last[previous_rows] = row_extents(previous.ink)[1] + previous.left
    new_first = np.full(band_height, np.inf)
    new_first[top - band_top : top - band_top + patch.shape[0]] = row_extents(patch > INK_THRESHOLD)[0]
    window = 2 * reach_rows + 1
    previous_hull = maximum_filter1d(previous_last, window, mode="constant", cval=-np.inf)
    new_hull = minimum_filter1d(new_first, window, mode="constant", cval=np.inf)
    reach = previous_hull - new_hull
    shared_rows = np.isfinite(reach)
    if not shared_rows.any():  # too far apart in height: meet at the ink extents
        return left_for_clear_gap([previous], patch, -overlap_px)
    return int(reach[shared_rows].max()) + 1 - overlap_px


def moved_to_contact(previous: Placed, candidate: Placed) -> Placed:
    """`candidate` as it is if its ink touches the previous digit's, else moved the shortest way until it does
    (its ink pixel nearest to the previous ink lands on that ink)."""
    previous_coverage, candidate_coverage = pair_coverages(previous, candidate)
    if inks_touch(previous_coverage, candidate_coverage):
        return candidate
    previous_ink, candidate_ink = previous_coverage > INK_THRESHOLD, candidate_coverage > INK_THRESHOLD
    distances, (nearest_rows, nearest_cols) = distance_transform_edt(~previous_ink, return_indices=True)
    row, col = np.unravel_index(np.argmin(np.where(candidate_ink, distances, np.inf)), distances.shape)
    return dataclasses.replace(
        candidate,
        top=candidate.top + int(nearest_rows[row, col]) - int(row),
        left=candidate.left + int(nearest_cols[row, col]) - int(col),
    )


def pair_coverages(left: Placed, right: Placed) -> tuple[np.ndarray, np.ndarray]:
    """The two digits' coverages on one small canvas that holds both."""
    top, x0 = min(left.top, right.top), min(left.left, right.left)
    bottom = max(d.top + d.patch.shape[0] for d in (left, right))
    x1 = max(d.left + d.patch.shape[1] for d in (left, right))
    canvases = []
    for digit in (left, right):
        canvas = np.zeros((bottom - top, x1 - x0), np.float32)
        y, x = digit.top - top, digit.left - x0
        canvas[y : y + digit.patch.shape[0], x : x + digit.patch.shape[1]] = digit.patch
        canvases.append(canvas)
    return canvases[0], canvases[1]


def inks_touch(coverage_a: np.ndarray, coverage_b: np.ndarray) -> bool:
    return masks_touch(coverage_a > INK_THRESHOLD, coverage_b > INK_THRESHOLD)


def masks_touch(ink_a: np.ndarray, ink_b: np.ndarray) -> bool:
    """Whether some connected piece (8-neighbours) of the two inks together holds ink of both."""
    _, pieces = cv2.connectedComponents((ink_a | ink_b).astype(np.uint8), connectivity=8)
    return bool(np.intersect1d(pieces[ink_a], pieces[ink_b]).size)


def place_next(
    placed: list[Placed], patch: np.ndarray, top: int, touch: bool, spacing_px: int, reach_rows: int
) -> Placed:
    """The next digit after `placed`: touching the previous one (overlap `spacing_px`) or `spacing_px` clear of all.

    Checked on the two inks: a touching pair that does not connect is moved until it does, a pair apart that
    touches is moved further apart.
    """
    previous = placed[-1]
    if touch:
        return moved_to_contact(
            previous, Placed(patch, top, left_for_overlap(previous, patch, top, spacing_px, reach_rows))
        )
    candidate = Placed(patch, top, left_for_clear_gap(placed, patch, spacing_px))
    while inks_touch(*pair_coverages(previous, candidate)):  # cannot happen with a gap >= 1 px; kept as the guarantee
        candidate = dataclasses.replace(candidate, left=candidate.left + max(spacing_px, 1))
    return candidate


def lay_out_line(patches: list[np.ndarray], handwriting: Handwriting, scene: Scene) -> list[Placed]:
    """The digits in one line, left to right; rows and columns count from the line's top-left patch corner."""
    tops = tops_on_one_baseline(patches, handwriting.baseline_shifts, scene.digit_height_px)
    reach_rows = round(CONTACT_REACH * scene.digit_height_px)
    placed = [Placed(patches[0], tops[0], 0)]
    for pair, (patch, top) in enumerate(zip(patches[1:], tops[1:], strict=True)):
        touch = bool(handwriting.touch_wanted[pair])
        if touch:
            narrower_px = min(ink_width_px(patches[pair]), ink_width_px(patch))
            overlap_px = min(handwriting.overlaps[pair] * pen_width_px(scene), MAX_OVERLAP_OF_WIDTH * narrower_px)
            spacing_px = max(1, round(overlap_px))
        else:
            spacing_px = max(1, round(handwriting.gaps[pair] * scene.digit_height_px))
        placed.append(place_next(placed, patch, top, touch, spacing_px, reach_rows))
    top, left = min(digit.top for digit in placed), min(digit.left for digit in placed)
    return [dataclasses.replace(digit, top=digit.top - top, left=digit.left - left) for digit in placed]


def digit_layers(placed: list[Placed], margins_px: tuple[int, int, int, int]) -> np.ndarray:
    """(k, H, W) float32: each digit's coverage on the strip's canvas; margins (top, right, bottom, left)."""
    top_margin, right_margin, bottom_margin, left_margin = margins_px
    height = max(d.top + d.patch.shape[0] for d in placed) + top_margin + bottom_margin
    width = max(d.left + d.patch.shape[1] for d in placed) + left_margin + right_margin
    layers = np.zeros((len(placed), height, width), np.float32)
    for layer, digit in zip(layers, placed, strict=True):
        y, x = digit.top + top_margin, digit.left + left_margin
        layer[y : y + digit.patch.shape[0], x : x + digit.patch.shape[1]] = digit.patch
    return layers


def rotate_layers(layers: np.ndarray, angle_deg: float) -> np.ndarray:
    """The whole line turned by `angle_deg` (counter-clockwise) about its centre, on a canvas grown to hold it."""
    _, height, width = layers.shape
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), angle_deg, 1.0)
    cos, sin = abs(rotation[0, 0]), abs(rotation[0, 1])
    new_width, new_height = int(np.ceil(width * cos + height * sin)), int(np.ceil(width * sin + height * cos))
    rotation[:, 2] += (new_width / 2 - width / 2, new_height / 2 - height / 2)
    return np.stack(
        [cv2.warpAffine(layer, rotation, (new_width, new_height), flags=cv2.INTER_LINEAR) for layer in layers]
    )


def ink_box(ink: np.ndarray) -> Box:
    rows, cols = np.nonzero(ink)
    if not rows.size:
        return (0, 0, 0, 0)
    return (int(cols.min()), int(rows.min()), int(cols.max() - cols.min() + 1), int(rows.max() - rows.min() + 1))


def photograph_coverage(coverage: np.ndarray, scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """Ink coverage (H, W) written on the scene's paper, lit and photographed -> uint8 RGB."""
    ink = coverage[:, :, None]
    page = paper(scene, rng) * (1 - ink) + np.float32(scene.ink_rgb) * ink
    return photograph(page * lighting(scene, rng)[:, :, None], scene, rng)


def check_strip_inputs(digits: np.ndarray, labels: Sequence[int], touching_fraction: float) -> None:
    if digits.ndim != 3 or digits.shape[1:] != (MNIST_SIDE_PX, MNIST_SIDE_PX) or len(digits) == 0:
        raise DigitrecError(f"expected digits of shape (k, 28, 28) with k >= 1, got {digits.shape}")
    if len(labels) != len(digits):
        raise DigitrecError(f"{len(digits)} digits but {len(labels)} labels")
    if not 0 <= touching_fraction <= 1:
        raise DigitrecError(f"touching fraction must be in [0, 1], got {touching_fraction}")


def render_strip(
    digits: np.ndarray,
    labels: Sequence[int],
    condition: str,
    touching_fraction: float,
    rng: np.random.Generator,
) -> Strip:
    """MNIST digits `(k, 28, 28)` uint8 (white on black) written as one number, photographed under `condition`."""
    check_strip_inputs(digits, labels, touching_fraction)
    digit_height_px = float(rng.uniform(DIGIT_HEIGHT_RANGE_PX[0], largest_digit_height(len(digits))))
    scene = strip_scene(condition, digit_height_px, rng)
    handwriting = draw_handwriting(len(digits), touching_fraction, rng)
    patches = [
        digit_patch(digit, dataclasses.replace(scene, digit_height_px=digit_height_px * scale, rotation_deg=slant))
        for digit, scale, slant in zip(digits, handwriting.scales, handwriting.slants_deg, strict=True)
    ]
    margins_px = tuple(round(margin * digit_height_px) for margin in rng.uniform(*MARGIN_RANGE, 4))
    layers = digit_layers(lay_out_line(patches, handwriting, scene), margins_px)
    if scene.rotation_deg:
        layers = rotate_layers(layers, scene.rotation_deg)
    coverage, digit_ink = layers.max(axis=0), layers > INK_THRESHOLD
    scene = dataclasses.replace(scene, canvas_hw=coverage.shape)
    return Strip(
        image=photograph_coverage(coverage, scene, rng),
        text="".join(str(int(label)) for label in labels),
        boxes=tuple(ink_box(ink) for ink in digit_ink),
        touching=tuple(masks_touch(left, right) for left, right in zip(digit_ink[:-1], digit_ink[1:], strict=True)),
        condition=condition,
        digit_height_px=digit_height_px,
        coverage=coverage,
        digit_ink=digit_ink,
    )


def strip_generator(
    seed: int, length: int, touching_fraction: float, condition_index: int, strip_index: int
) -> np.random.Generator:
    """Each strip has its own stream: evaluating fewer cells, conditions or strips leaves the others as they were
    (`condition_index` is the condition's place in synth.CONDITIONS; the touching fraction enters in thousandths)."""
    touching_steps = round(touching_fraction * TOUCHING_FRACTION_STEPS)
    return np.random.default_rng([seed, length, touching_steps, condition_index, strip_index])


def evaluation_strip(
    images: np.ndarray,
    labels: np.ndarray,
    length: int,
    touching_fraction: float,
    conditions: list[str],
    seed: int,
    strip_index: int,
) -> Strip:
    """Strip `strip_index` of the evaluation cell (length, touching fraction): its condition cycles through
    `conditions`, its digits are drawn from `images` by its own generator."""
    condition = conditions[strip_index % len(conditions)]
    condition_index = list(CONDITIONS).index(condition)
    rng = strip_generator(seed, length, touching_fraction, condition_index, strip_index)
    picks = rng.integers(len(labels), size=length)
    return render_strip(images[picks], labels[picks], condition, touching_fraction, rng)


# (condition, number length, touching fraction, file format): the strips written for the README
EXAMPLE_STRIPS = [
    ("clean", 4, 0.0, "png"),
    ("blue-ink", 6, 0.3, "jpg"),
    ("ruled-paper", 5, 0.3, "jpg"),
    ("grid-paper", 4, 0.5, "jpg"),
    ("pencil", 3, 0.0, "jpg"),
    ("coloured-paper", 7, 0.3, "jpg"),
    ("lighting-gradient", 4, 1.0, "jpg"),
    ("combined", 10, 0.3, "jpg"),
]


EXAMPLE_JPEG_QUALITY = 85


def example_strips(images: np.ndarray, labels: np.ndarray, seed: int = 0) -> list[tuple[str, Strip]]:
    """(file name, strip) for each of EXAMPLE_STRIPS, e.g. `number-4071-ruled-paper.jpg` (the true number in the
    name)."""
    examples = []
    for index, (condition, length, touching_fraction, file_format) in enumerate(EXAMPLE_STRIPS):
        rng = np.random.default_rng([seed, index])
        picks = rng.integers(len(labels), size=length)
        strip = render_strip(images[picks], labels[picks], condition, touching_fraction, rng)
        examples.append((f"number-{strip.text}-{condition}.{file_format}", strip))
    return examples


def write_example_strips(out_dir: Path, images: np.ndarray, labels: np.ndarray, seed: int = 0) -> list[Path]:
    paths = []
    for name, strip in example_strips(images, labels, seed):
        suffix = Path(name).suffix
        options = [cv2.IMWRITE_JPEG_QUALITY, EXAMPLE_JPEG_QUALITY] if suffix == ".jpg" else []
        ok, encoded = cv2.imencode(suffix, strip.image[:, :, ::-1], options)
        if not ok:
            raise DigitrecError(f"could not encode {name}")
        write_bytes_atomic(Path(out_dir) / name, encoded.tobytes())
        paths.append(Path(out_dir) / name)
    return paths
