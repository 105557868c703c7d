"""Cutting a line into a known number of digits: how a labelled example ("4817" under a photo of it) becomes four
labelled digit images, for adapting the models to one writer or one kind of form (`digitrec adapt`).

The reader's own candidate cuts and piece scores are used; only the choice differs: the best cutting with exactly
as many pieces as the label has digits, instead of the best cutting of any length. The line read is the one with
the most ink (a stray mark elsewhere on a cheque is not part of the amount).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digitrec.images.framing import mask_to_mnist
from digitrec.mnist import IMAGE_SIZE
from digitrec.reading.cuts import candidate_pieces
from digitrec.reading.lines import lines_of_ink
from digitrec.reading.reader import gray_views
from digitrec.reading.segmentation import SKIP_PENALTY, PieceScorer, Segment, cutting_steps, segment_of


@dataclass(frozen=True)
class AlignedDigits:
    """The digits of a line cut into a known count, each seen as the reader sees it (two views)."""

    binary: np.ndarray  # (count, 28, 28) uint8: each digit from its binarized ink
    gray: np.ndarray  # (count, 28, 28) uint8: each digit from the gray levels in and around its ink


def cutting_into(
    steps: dict[tuple[int, int], float], stray_marks: dict[int, int], cut_count: int, pieces: int
) -> list[tuple[int, int]] | None:
    """The best cutting (by the sum of its steps' scores) from the first cut to the last in exactly `pieces`
    steps, leaving out stray marks as `best_cutting` may; None when there is none. Dynamic programming over
    (pieces so far, cut); a left-out mark is marked in `previous` as -i - 2."""
    best = np.full((pieces + 1, cut_count), -np.inf)
    previous = np.full((pieces + 1, cut_count), -1)
    best[0, 0] = 0.0
    for k in range(pieces + 1):
        if k:
            for (i, j), score in steps.items():
                if best[k - 1, i] + score > best[k, j]:
                    best[k, j], previous[k, j] = best[k - 1, i] + score, i
        for j in sorted(stray_marks):
            i = stray_marks[j]
            if best[k, i] - SKIP_PENALTY > best[k, j]:
                best[k, j], previous[k, j] = best[k, i] - SKIP_PENALTY, -i - 2
    if best[pieces, cut_count - 1] == -np.inf:
        return None
    chosen, j, k = [], cut_count - 1, pieces
    while j > 0:
        i = int(previous[k, j])
        if i >= 0:
            chosen.append((i, j))
            j, k = i, k - 1
        else:
            j = -i - 2
    return list(reversed(chosen))


def aligned_digits(image, count: int, score_pieces: PieceScorer, size: int = IMAGE_SIZE) -> AlignedDigits | None:
    """`image` (PIL image or array) cut into `count` digits along its inkiest line; None where the reader finds no
    ink or no cutting of that line into `count` plausible pieces."""
    found = lines_of_ink(image)
    if found is None:
        return None
    line = max((line for line, _ in found.lines), key=lambda line: int(np.count_nonzero(line.mask)))
    candidates = candidate_pieces(line)
    if not candidates.pieces:
        return None
    steps = cutting_steps(line, candidates, score_pieces, line.height)
    cutting = cutting_into(steps, candidates.stray_marks, len(candidates.cuts), count)
    if cutting is None:
        return None
    segments: list[Segment] = [segment_of(line, candidates, i, j) for i, j in cutting]
    binary = np.stack([mask_to_mnist(segment.mask, size) for segment in segments])
    return AlignedDigits(binary, gray_views(found.gray, line, segments, size))
