"""Seeded photo-like images of MNIST test digits under named conditions, and how well a recognizer reads them.

Only MNIST *test* digits may be drawn here (training and tuning never see them). Each digit is enlarged into a pen
stroke, written on paper (coloured, ruled, squared or a blackboard), lit unevenly, photographed (perspective, blur,
noise, JPEG). Every draw comes from the generator passed in, so a seed gives the same image on every machine.
The images are not kept: `evaluate_photos` makes them again from the seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from digitrec.errors import DigitrecError
from digitrec.fileio import write_bytes_atomic
from digitrec.mnist import MNIST_BOX_PX, WHITE

MNIST_STROKE_PER_BOX = 2.5 / 20  # MNIST's median stroke width, as a fraction of the 20 px box
RGB = tuple[int, int, int]
BALLPOINT_BLUE = (30, 50, 160)
RULE_BLUE = (150, 185, 230)
MARGIN_RED = (220, 110, 120)
GRID_GRAY_BLUE = (165, 185, 210)
BLACKBOARD = (40, 58, 48)
CHALK = (228, 228, 216)
PAPER_COLOURS = [(245, 230, 140), (245, 200, 210), (200, 235, 190), (195, 215, 245), (250, 215, 170)]
INK_COLOURS = [(190, 30, 30), (30, 120, 50), (30, 50, 160), (100, 40, 130), (20, 20, 20)]


@dataclass(frozen=True)
class Scene:
    """Everything that makes one photo, in pixels of the output image."""

    canvas_hw: tuple[int, int] = (256, 256)
    digit_height_px: float = 150.0  # the MNIST 20 px box, enlarged
    centre_yx: tuple[float, float] = (0.5, 0.5)  # where the digit's centre falls, as fractions of the canvas
    ink_rgb: RGB = (25, 25, 30)
    paper_rgb: RGB = (240, 238, 232)
    pen_change_px: float = 0.0  # > 0: a thicker pen (dilation radius), < 0: a thinner one
    rotation_deg: float = 0.0
    ruling: str = "none"  # "none", "ruled" or "grid"
    rule_spacing_px: float = 0.0
    rule_rgb: RGB = RULE_BLUE
    rule_thickness_px: int = 1
    margin_line: bool = False
    gradient: float = 0.0  # how much darker one side of the page is than the other (fraction)
    gradient_angle_deg: float = 0.0
    shadow: float = 0.0  # darkness of a soft shadow over part of the page (fraction)
    perspective: float = 0.0  # corner displacement, as a fraction of the canvas side
    blur_sigma_px: float = 0.6
    noise_sigma: float = 2.0  # gray levels
    jpeg_quality: int = 0  # 0: not JPEG-compressed

    @property
    def stroke_px(self) -> float:
        return self.digit_height_px * MNIST_STROKE_PER_BOX


def base_scene(rng: np.random.Generator) -> Scene:
    """A plain, well-lit photo of a digit in dark ink on white paper, with small random variations."""
    side = int(rng.integers(200, 320))
    return Scene(
        canvas_hw=(side, int(side * rng.uniform(0.9, 1.3))),
        digit_height_px=side * rng.uniform(0.45, 0.7),
        centre_yx=(rng.uniform(0.42, 0.58), rng.uniform(0.42, 0.58)),
        ink_rgb=tuple(int(v) for v in rng.integers(15, 60, size=3)),
        paper_rgb=tuple(int(v) for v in rng.integers(225, 252, size=3)),
    )


def pick(rng: np.random.Generator, options: list):
    return options[int(rng.integers(len(options)))]


def signed(rng: np.random.Generator, low: float, high: float) -> float:
    """A value whose size is in [low, high], with a random sign."""
    return float(rng.uniform(low, high) * rng.choice([-1, 1]))


def _coloured_paper(scene: Scene, rng: np.random.Generator) -> Scene:
    paper = pick(rng, PAPER_COLOURS)
    return dataclasses.replace(scene, paper_rgb=paper, ink_rgb=pick(rng, INK_COLOURS))


def _ruled(scene: Scene, rng: np.random.Generator) -> Scene:
    return dataclasses.replace(
        scene,
        ruling="ruled",
        rule_spacing_px=scene.digit_height_px * rng.uniform(0.9, 1.3),
        rule_thickness_px=int(rng.integers(1, 4)),
        margin_line=bool(rng.random() < 0.3),
    )


def _grid(scene: Scene, rng: np.random.Generator) -> Scene:
    return dataclasses.replace(
        scene,
        ruling="grid",
        rule_spacing_px=scene.digit_height_px * rng.uniform(0.35, 0.55),
        rule_rgb=GRID_GRAY_BLUE,
        rule_thickness_px=int(rng.integers(1, 3)),
    )


def _large_canvas(scene: Scene, rng: np.random.Generator) -> Scene:
    height = int(rng.integers(700, 1000))
    return dataclasses.replace(
        scene,
        canvas_hw=(height, int(height * rng.uniform(1.2, 1.5))),
        digit_height_px=float(rng.uniform(80, 160)),
        centre_yx=(rng.uniform(0.2, 0.8), rng.uniform(0.15, 0.85)),
        noise_sigma=4.0,
    )


def _combined(scene: Scene, rng: np.random.Generator) -> Scene:
    """A quick phone photo of a school exercise book: several conditions at once."""
    scene = _ruled(dataclasses.replace(scene, ink_rgb=BALLPOINT_BLUE), rng)
    return dataclasses.replace(
        scene,
        gradient=rng.uniform(0.2, 0.4),
        gradient_angle_deg=rng.uniform(0, 360),
        perspective=rng.uniform(0.02, 0.06),
        rotation_deg=signed(rng, 0, 12),
        blur_sigma_px=scene.digit_height_px * 0.012,
        noise_sigma=6.0,
        jpeg_quality=int(rng.integers(40, 70)),
    )


def _replace(**fields_by_draw: Callable[[Scene, np.random.Generator], object]):
    """A condition that sets each field to a value drawn from the scene and the generator."""

    def apply(scene: Scene, rng: np.random.Generator) -> Scene:
        return dataclasses.replace(scene, **{name: draw(scene, rng) for name, draw in fields_by_draw.items()})

    return apply


def _pen_change(low: float, high: float):
    """A thicker (> 0) or thinner (< 0) pen: the stroke's radius changes by this fraction of MNIST's stroke width."""
    return _replace(pen_change_px=lambda scene, rng: rng.uniform(low, high) * scene.stroke_px)


# name -> (what it is, how it changes the base scene)
CONDITIONS: dict[str, tuple[str, Callable[[Scene, np.random.Generator], Scene]]] = {
    "clean": ("dark ink on white paper, even light", lambda scene, rng: scene),
    "blue-ink": ("blue ballpoint on white paper", _replace(ink_rgb=lambda s, r: BALLPOINT_BLUE)),
    "coloured-paper": ("coloured ink on coloured paper", _coloured_paper),
    "pencil": (
        "light gray pencil",
        _replace(ink_rgb=lambda s, r: (int(r.integers(110, 150)),) * 3, pen_change_px=lambda s, r: -0.1 * s.stroke_px),
    ),
    "lighting-gradient": (
        "one side of the page 30-60% darker",
        _replace(gradient=lambda s, r: r.uniform(0.3, 0.6), gradient_angle_deg=lambda s, r: r.uniform(0, 360)),
    ),
    "shadow": ("a soft shadow 35-60% dark over part of the page", _replace(shadow=lambda s, r: r.uniform(0.35, 0.6))),
    "ruled-paper": ("ruled exercise-book paper", _ruled),
    "grid-paper": ("squared paper", _grid),
    "jpeg": ("JPEG quality 8-25", _replace(jpeg_quality=lambda s, r: int(r.integers(8, 26)))),
    "blur": ("out of focus", _replace(blur_sigma_px=lambda s, r: s.digit_height_px * r.uniform(0.025, 0.05))),
    "noise": ("sensor noise, sigma 15-30 gray levels", _replace(noise_sigma=lambda s, r: r.uniform(15, 30))),
    "perspective": ("photographed at an angle", _replace(perspective=lambda s, r: r.uniform(0.05, 0.12))),
    "rotation": ("digit written 10-30° askew", _replace(rotation_deg=lambda s, r: signed(r, 10, 30))),
    "large-canvas": ("a small digit off-centre in a large photo", _large_canvas),
    "thick-pen": ("marker: strokes 1.6-2.4 times MNIST's", _pen_change(0.3, 0.7)),
    "thin-pen": ("fine pen: strokes 30-50% of MNIST's", _pen_change(-0.35, -0.25)),
    "light-on-dark": ("chalk on a blackboard", _replace(ink_rgb=lambda s, r: CHALK, paper_rgb=lambda s, r: BLACKBOARD)),
    "combined": ("blue ballpoint, ruled paper, uneven light, slight angle and rotation, JPEG", _combined),
}  # fmt: skip


def scene_for(condition: str, rng: np.random.Generator) -> Scene:
    try:
        _, apply = CONDITIONS[condition]
    except KeyError:
        raise DigitrecError(f"unknown photo condition {condition!r}; known: {', '.join(CONDITIONS)}") from None
    return apply(base_scene(rng), rng)


def pen_stroke(digit: np.ndarray, scene: Scene) -> np.ndarray:
    """An MNIST digit -> float ink coverage (0..1) at the scene's scale: enlarged, sharpened, pen, rotation."""
    scale = scene.digit_height_px / MNIST_BOX_PX
    size = max(8, round(digit.shape[0] * scale))
    enlarged = cv2.resize(digit.astype(np.float32) / WHITE, (size, size), interpolation=cv2.INTER_CUBIC)
    coverage = np.clip((enlarged - 0.3) / 0.4, 0, 1)  # a pen's crisp edge instead of MNIST's anti-aliased blur
    pad = size // 2
    coverage = cv2.copyMakeBorder(coverage, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    radius = round(abs(scene.pen_change_px))
    if radius and scene.pen_change_px > 0:
        coverage = cv2.dilate(coverage, disc(radius))
    elif radius:
        coverage = fine_pen(coverage, max(1.0, scene.stroke_px / 2 - radius))
    if scene.rotation_deg:
        centre = (coverage.shape[1] / 2, coverage.shape[0] / 2)
        rotation = cv2.getRotationMatrix2D(centre, scene.rotation_deg, 1.0)
        coverage = cv2.warpAffine(coverage, rotation, coverage.shape[::-1], flags=cv2.INTER_LINEAR)
    return coverage


def disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def thin_to_skeleton(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a 0/1 mask to a connected, one-pixel-wide centre line (both sub-steps vectorized)."""
    skeleton = np.pad(mask.astype(bool), 1)
    changed = True
    while changed:
        changed = False
        for step in (0, 1):
            p = skeleton
            # neighbours P2..P9, clockwise from north
            n = [p[:-2, 1:-1], p[:-2, 2:], p[1:-1, 2:], p[2:, 2:], p[2:, 1:-1], p[2:, :-2], p[1:-1, :-2], p[:-2, :-2]]
            count = sum(v.astype(np.uint8) for v in n)
            transitions = sum((~n[i] & n[(i + 1) % 8]).astype(np.uint8) for i in range(8))
            if step == 0:
                clear = ~(n[0] & n[2] & n[4]) & ~(n[2] & n[4] & n[6])
            else:
                clear = ~(n[0] & n[2] & n[6]) & ~(n[0] & n[4] & n[6])
            remove = p[1:-1, 1:-1] & (count >= 2) & (count <= 6) & (transitions == 1) & clear
            if remove.any():
                skeleton = skeleton.copy()
                skeleton[1:-1, 1:-1] &= ~remove
                changed = True
    return skeleton[1:-1, 1:-1].astype(np.uint8)


def fine_pen(coverage: np.ndarray, half_width_px: float) -> np.ndarray:
    """The same path drawn with a fine pen: the stroke's skeleton, widened to `2 * half_width_px`, soft-edged.

    (Eroding the thick stroke instead would break its thinner parts, which a real pen does not.)
    """
    skeleton = thin_to_skeleton(coverage > 0.5)
    widened = cv2.dilate(skeleton, disc(max(1, round(half_width_px)))).astype(np.float32)
    return cv2.GaussianBlur(widened, (0, 0), 0.7)


def paper(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """Float RGB paper with its ruling."""
    height, width = scene.canvas_hw
    sheet = np.empty((height, width, 3), np.float32)
    sheet[:] = scene.paper_rgb
    if scene.ruling != "none":
        offset = rng.uniform(0, scene.rule_spacing_px)
        for y in np.arange(offset, height, scene.rule_spacing_px):
            cv2.line(sheet, (0, round(y)), (width - 1, round(y)), scene.rule_rgb, scene.rule_thickness_px, cv2.LINE_AA)
        if scene.ruling == "grid":
            for x in np.arange(offset, width, scene.rule_spacing_px):
                line_end = (round(x), height - 1)
                cv2.line(sheet, (round(x), 0), line_end, scene.rule_rgb, scene.rule_thickness_px, cv2.LINE_AA)
    if scene.margin_line:
        x = round(width * rng.uniform(0.08, 0.15))
        cv2.line(sheet, (x, 0), (x, height - 1), MARGIN_RED, 2, cv2.LINE_AA)
    return sheet


def place(coverage: np.ndarray, scene: Scene) -> np.ndarray:
    """The stroke's coverage on a canvas-sized array, its centre at `scene.centre_yx`."""
    height, width = scene.canvas_hw
    canvas = np.zeros((height, width), np.float32)
    top = round(scene.centre_yx[0] * height - coverage.shape[0] / 2)
    left = round(scene.centre_yx[1] * width - coverage.shape[1] / 2)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + coverage.shape[0], height), min(left + coverage.shape[1], width)
    canvas[y0:y1, x0:x1] = coverage[y0 - top : y1 - top, x0 - left : x1 - left]
    return canvas


def lighting(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """A multiplicative light field: a linear gradient, and a soft-edged shadow over part of the page."""
    height, width = scene.canvas_hw
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    light = np.ones((height, width), np.float32)
    if scene.gradient:
        angle = np.radians(scene.gradient_angle_deg)
        ramp = (xs / width - 0.5) * np.cos(angle) + (ys / height - 0.5) * np.sin(angle)
        light *= 1 - scene.gradient * (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    if scene.shadow:
        angle = rng.uniform(0, 2 * np.pi)
        distance = (xs - width * rng.uniform(0.3, 0.7)) * np.cos(angle) + (
            ys - height * rng.uniform(0.3, 0.7)
        ) * np.sin(angle)
        softness = min(height, width) * rng.uniform(0.02, 0.1)
        light *= 1 - scene.shadow / (1 + np.exp(-distance / softness))
    return light


def photograph(image: np.ndarray, scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """The camera: perspective, blur, noise, JPEG; float RGB in, uint8 RGB out."""
    height, width = scene.canvas_hw
    if scene.perspective:
        corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
        moved = corners + rng.uniform(-1, 1, size=(4, 2)).astype(np.float32) * scene.perspective * [width, height]
        warp = cv2.getPerspectiveTransform(corners, moved.astype(np.float32))
        image = cv2.warpPerspective(image, warp, (width, height), borderMode=cv2.BORDER_REPLICATE)
    if scene.blur_sigma_px:
        image = cv2.GaussianBlur(image, (0, 0), scene.blur_sigma_px)
    image = image + rng.normal(0, scene.noise_sigma, size=image.shape).astype(np.float32)
    image = np.clip(np.rint(image), 0, WHITE).astype(np.uint8)
    if scene.jpeg_quality:
        _, encoded = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, scene.jpeg_quality])
        image = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[:, :, ::-1]
    return np.ascontiguousarray(image)


def render_scene(digit: np.ndarray, scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """One MNIST digit `(28, 28)` uint8 (white on black) -> uint8 RGB photo `(H, W, 3)`."""
    coverage = place(pen_stroke(digit, scene), scene)[:, :, None]
    page = paper(scene, rng) * (1 - coverage) + np.float32(scene.ink_rgb) * coverage
    return photograph(page * lighting(scene, rng)[:, :, None], scene, rng)


def render_photo(digit: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
    """One MNIST test digit photographed under a named condition (see CONDITIONS)."""
    return render_scene(digit, scene_for(condition, rng), rng)


def condition_generator(seed: int, condition_index: int, image_index: int) -> np.random.Generator:
    """Each image has its own stream: evaluating a subset of conditions, or more images, leaves the others as
    they were (`condition_index` is the condition's place in CONDITIONS; new conditions go at its end)."""
    return np.random.default_rng([seed, condition_index, image_index])


def pick_test_digits(count: int, total: int, seed: int) -> np.ndarray:
    if not 1 <= count <= total:
        raise DigitrecError(f"images per condition must be in [1, {total}], got {count}")
    return np.sort(np.random.default_rng(seed).choice(total, size=count, replace=False))


# (condition, file format): the photos shipped in examples/, one digit each
EXAMPLE_CONDITIONS = [
    ("clean", "png"),
    ("blue-ink", "jpg"),
    ("coloured-paper", "jpg"),
    ("pencil", "png"),
    ("ruled-paper", "jpg"),
    ("grid-paper", "webp"),
    ("shadow", "jpg"),
    ("lighting-gradient", "jpg"),
    ("light-on-dark", "png"),
    ("rotation", "jpg"),
    ("large-canvas", "jpg"),
    ("combined", "jpg"),
]


EXAMPLE_JPEG_QUALITY = 85
EXAMPLE_NOISE_SIGMA = 1.0  # less noise than the benchmark, so that the PNG files stay small


def example_photos(test_images: np.ndarray, test_labels: np.ndarray, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """(file name, RGB image) for each of EXAMPLE_CONDITIONS, each a different MNIST test digit, e.g.
    `photo-7-blue-ink.png` (the true digit is in the name)."""
    rng = np.random.default_rng(seed)
    digits = rng.permutation(10).tolist() + rng.permutation(10).tolist()
    examples = []
    for (condition, file_format), digit in zip(EXAMPLE_CONDITIONS, digits, strict=False):
        index = int(rng.choice(np.flatnonzero(test_labels == digit)))
        scene = dataclasses.replace(scene_for(condition, rng), noise_sigma=EXAMPLE_NOISE_SIGMA)
        examples.append((f"photo-{digit}-{condition}.{file_format}", render_scene(test_images[index], scene, rng)))
    return examples


def write_examples(out_dir: Path, test_images: np.ndarray, test_labels: np.ndarray, seed: int = 0) -> list[Path]:
    paths = []
    for name, image in example_photos(test_images, test_labels, seed):
        options = {".jpg": [cv2.IMWRITE_JPEG_QUALITY, EXAMPLE_JPEG_QUALITY], ".webp": [cv2.IMWRITE_WEBP_QUALITY, 90]}
        ok, encoded = cv2.imencode(Path(name).suffix, image[:, :, ::-1], options.get(Path(name).suffix, []))
        if not ok:
            raise DigitrecError(f"could not encode {name}")
        write_bytes_atomic(out_dir / name, encoded.tobytes())
        paths.append(out_dir / name)
    return paths
