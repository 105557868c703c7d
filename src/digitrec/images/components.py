"""Connected components of ink, and which of them is the digit."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from digitrec.mnist import WHITE

NO_DIGIT = "no digit found (the image looks blank, or its ink is too faint)"

MIN_DIGIT_HEIGHT_FRACTION = 0.04  # of the working image's shorter side: smaller marks are specks
MIN_DIGIT_HEIGHT_PX = 8
SPECK_AREA_FRACTION = 0.03  # components below this fraction of the digit's main component are noise
MAX_DIGIT_WIDTH_PER_HEIGHT = 3.0  # wider components are lines or smudges, not digits
PART_GAP_FRACTION = 0.15  # a broken-off piece within this fraction of the digit's height belongs to it
RIVAL_HEIGHT_FRACTION = 0.5  # another component this tall (vs the digit) ...
RIVAL_AREA_FRACTION = 0.2  # ... with this much ink is another digit


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


def is_piece_in_crop(component: Component, main: Component, ink_height: int) -> bool:
    """In a crop of one digit, a piece of it however tall: not a speck, and above or below its main component
    (sharing at least half of the narrower one's columns) or within PART_GAP_FRACTION of the height of all the
    crop's ink (the main component may be only half of a broken digit)."""
    if component.area < SPECK_AREA_FRACTION * main.area:
        return False
    return main.x_overlap(component) >= 0.5 or main.gap_to(component) <= PART_GAP_FRACTION * ink_height


def select_digit(ink: np.ndarray, crop: bool = False) -> tuple[np.ndarray | None, str | None]:
    """The digit's pixels (its main component and broken-off pieces), or None and what is wrong.

    Another component nearly as tall and inked as the digit means several digits: refused rather than guessed.
    With `crop` (the image is a small crop of one digit, `is_small_crop`), its ink is the digit however small or
    flat (a 5 whose lower part the scan lost is a dash), and its pieces are one digit however tall (a 3 broken into
    three strokes): only marks side by side and apart are several digits.
    """
    labels, components = connected_components(ink)
    candidates = digit_candidates(components, ink.shape)
    shaped = [c for c in candidates if is_digit_shaped(c)]
    min_height = max(MIN_DIGIT_HEIGHT_PX, MIN_DIGIT_HEIGHT_FRACTION * min(ink.shape))
    if crop and candidates and (not shaped or max(c.height for c in shaped) < min_height):
        shaped, min_height = candidates, 1
    if not shaped or max(c.height for c in shaped) < min_height:
        return None, NO_DIGIT
    main = max(shaped, key=lambda c: c.area)
    ink_height = max(c.y + c.height for c in candidates) - min(c.y for c in candidates)
    parts = [main] + [
        c
        for c in candidates
        if c is not main and (is_part_of(c, main) or crop and is_piece_in_crop(c, main, ink_height))
    ]
    rivals = [c for c in candidates if c not in parts and is_rival(c, main)]
    if rivals:
        return None, (
            f"it holds several digits ({len(rivals) + 1} digit-sized marks); predict reads one digit per image: "
            "use `digitrec read` for numbers of several digits, or crop it"
        )
    mask = np.isin(labels, [c.label for c in parts])
    return np.where(mask, WHITE, 0).astype(np.uint8), None
