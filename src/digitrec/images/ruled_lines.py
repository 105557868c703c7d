"""Ruled, grid and margin lines: long thin straight runs of faint ink, taken out of the ink."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from digitrec.images.framing import stroke_width_px
from digitrec.mnist import WHITE

LINE_SEGMENT_FRACTION = 0.08  # a ruled line is made of straight runs at least this long (fraction of the side),


LINE_ANGLES_DEG = (-3.0, -1.5, 0.0, 1.5, 3.0)  # horizontal or photographed slightly askew,


LINE_MAX_THICKNESS_FRACTION = 0.03  # thin (ruled lines are 1-3 px where the page spans 300 px; at least 6 px),


LINE_MIN_THICKNESS_PX = 6
LINE_SPAN_FRACTION = 0.85  # lined up from end to end across this much of the image,


LINE_COVERAGE_FRACTION = 0.3  # and visible along this much of it (the rest may hide under the digit)
# Across a line of writing (one side at least WRITING_LINE_ASPECT times the other) the short side is a digit's
# height, and the stem of a 1, 4, 7 or 9 spans it as a printed rule does ("706226" lost its 7 on a dev cheque). A
# line across it is taken for a rule only when it runs straight (its fit no steeper than the angles searched) from
# border to border, as a rule cut by the crop does (LINE_BORDER_GAP_PX for the blur of the crop's edge), and is a
# hairline beside the pen: under PRINTED_RULE_STROKE_FRACTION of the writing's stroke width (on the dev cheques the
# printed rule is 0.6 of it, the stems 1.0-1.3; a rule as thick as the pen is left in, read as the 1 it looks like).
WRITING_LINE_ASPECT = 2.0
LINE_BORDER_GAP_PX = 2
PRINTED_RULE_STROKE_FRACTION = 0.8


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

    @cached_property
    def fit(self) -> tuple[float, float]:
        """The least-squares line y = slope * x + intercept through the piece's pixels (computed once)."""
        slope, intercept = np.polyfit(self.xs, self.ys, 1) if self.x1 > self.x0 else (0.0, float(self.ys.mean()))
        return float(slope), float(intercept)

    def y_at(self, x: float) -> float:
        slope, intercept = self.fit
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


def is_printed_rule(line: LinePiece, width: int, writing_stroke_px: float) -> bool:
    """The line's pieces (`line`: all of them) run straight (no steeper than LINE_ANGLES_DEG) from one border to the
    other, thinner than the writing's strokes."""
    straight = abs(line.fit[0]) <= np.tan(np.radians(max(np.abs(LINE_ANGLES_DEG))))
    across = line.x0 <= LINE_BORDER_GAP_PX and line.x1 >= width - 1 - LINE_BORDER_GAP_PX
    return straight and across and line.thickness < PRINTED_RULE_STROKE_FRACTION * writing_stroke_px


def horizontal_lines(faint: np.ndarray, writing_stroke_px: float | None = None) -> np.ndarray:
    """The bands of ruled lines: thin straight pieces that line up across nearly the whole image (0/255). Given
    the stroke width of the writing they run across (a line of writing's short side), only printed rules
    (`is_printed_rule`).

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
        if writing_stroke_px is not None and not is_printed_rule(whole, width, writing_stroke_px):
            continue
        slope, intercept = whole.fit
        lines |= np.abs(rows - (slope * columns + intercept)) <= whole.thickness / 2 + 1
    return np.where(lines, WHITE, 0).astype(np.uint8)


def remove_ruled_lines(ink: np.ndarray, faint: np.ndarray) -> np.ndarray:
    """Remove ruled and grid lines, then mend the strokes they crossed (only line pixels are filled back).

    Lines are looked for among the faint marks, where they are whole: in the ink, only the pieces touching the
    digit remain.
    """
    height, width = ink.shape
    stroke = stroke_width_px(ink) if max(height, width) >= WRITING_LINE_ASPECT * min(height, width) else None
    horizontal = horizontal_lines(faint, stroke if height > width else None) & ink
    vertical = horizontal_lines(faint.T.copy(), stroke if width > height else None).T & ink
    lines = horizontal | vertical
    if not lines.any():
        return ink
    kept = ink & ~lines
    mend = 2 * round(max(LINE_MIN_THICKNESS_PX, LINE_MAX_THICKNESS_FRACTION * min(ink.shape))) + 1
    bridged = cv2.morphologyEx(kept, cv2.MORPH_CLOSE, np.ones((mend, 1), np.uint8)) & horizontal
    bridged |= cv2.morphologyEx(kept, cv2.MORPH_CLOSE, np.ones((1, mend), np.uint8)) & vertical
    return kept | bridged
