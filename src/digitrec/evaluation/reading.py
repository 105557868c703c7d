"""How well a reader reads numbers: edit distances, per-digit scores, the strip benchmark's cells."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from digitrec.errors import DigitrecError
from digitrec.synthetic.photos import CONDITIONS
from digitrec.synthetic.strips import READING_CONDITIONS, evaluation_strip

FAILURES_PER_CELL = 5  # wrong readings kept as examples in each cell of the report


def edit_table(read: str, true: str) -> np.ndarray:
    """Levenshtein table: cell (i, j) is the fewest insertions, deletions and substitutions turning read[:i]
    into true[:j]."""
    table = np.zeros((len(read) + 1, len(true) + 1), np.int64)
    table[:, 0] = np.arange(len(read) + 1)
    table[0, :] = np.arange(len(true) + 1)
    for i, read_char in enumerate(read, start=1):
        for j, true_char in enumerate(true, start=1):
            substitution = table[i - 1, j - 1] + (read_char != true_char)
            table[i, j] = min(substitution, table[i - 1, j] + 1, table[i, j - 1] + 1)
    return table


def levenshtein(read: str, true: str) -> int:
    return int(edit_table(read, true)[-1, -1])


def per_digit_accuracy(read: str, true: str) -> float:
    """1 - (edit distance / number of true digits), at least 0: one wrong, missing or extra digit in a 4-digit
    number gives 0.75; an empty reading gives 0."""
    return max(0.0, 1 - levenshtein(read, true) / len(true))


def true_digits_read(read: str, true: str) -> list[bool]:
    """For each true digit: is it matched by the same digit in one cheapest alignment of the reading with it."""
    table = edit_table(read, true)
    matched = [False] * len(true)
    i, j = len(read), len(true)
    while i and j:
        if read[i - 1] == true[j - 1] and table[i, j] == table[i - 1, j - 1]:
            matched[j - 1] = True
            i, j = i - 1, j - 1
        elif table[i, j] == table[i - 1, j - 1] + 1:
            i, j = i - 1, j - 1
        elif table[i, j] == table[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    return matched


def digits_touching_a_neighbour(touching: Sequence[bool]) -> list[bool]:
    """For each digit: does its ink touch the digit before or after it."""
    after = list(touching) + [False]
    before = [False] + list(touching)
    return [a or b for a, b in zip(before, after, strict=True)]


def reading_of(read_text: Callable[[np.ndarray], str], image: np.ndarray) -> str:
    """The reader's text without whitespace; a reader that refuses (DigitrecError) read nothing."""
    try:
        text = read_text(image)
    except DigitrecError:
        return ""
    return "".join(text.split())


def check_evaluation_inputs(lengths, touching_fractions, per_cell: int, conditions: list[str]) -> None:
    if per_cell < 1:
        raise DigitrecError(f"strips per cell must be at least 1, got {per_cell}")
    if not lengths or min(lengths) < 1:
        raise DigitrecError(f"number lengths must be at least 1, got {list(lengths)}")
    if not touching_fractions or not all(0 <= fraction <= 1 for fraction in touching_fractions):
        raise DigitrecError(f"touching fractions must be in [0, 1], got {list(touching_fractions)}")
    unknown = [condition for condition in conditions if condition not in CONDITIONS]
    if unknown or not conditions:
        raise DigitrecError(f"unknown photo conditions {unknown or conditions}; known: {', '.join(CONDITIONS)}")


@dataclass(frozen=True)
class StripReading:
    strip_index: int
    condition: str
    true: str
    read: str
    touching: tuple[bool, ...]


def cell_summary(readings: list[StripReading]) -> dict:
    """Scores of one (length, touching fraction) cell from its readings."""
    digit_touches, digit_read = [], []
    for reading in readings:
        digit_touches += digits_touching_a_neighbour(reading.touching)
        digit_read += true_digits_read(reading.read, reading.true)
    digit_touches, digit_read = np.array(digit_touches), np.array(digit_read)
    by_condition: dict[str, list[bool]] = {}
    for reading in readings:
        by_condition.setdefault(reading.condition, []).append(reading.read == reading.true)
    failures = [reading for reading in readings if reading.read != reading.true][:FAILURES_PER_CELL]
    return {
        "strips": len(readings),
        "whole_number_accuracy": float(np.mean([r.read == r.true for r in readings])),
        "per_digit_accuracy": float(np.mean([per_digit_accuracy(r.read, r.true) for r in readings])),
        "length_error_rate": float(np.mean([len(r.read) != len(r.true) for r in readings])),
        "mean_touching_pairs": float(np.mean([sum(r.touching) for r in readings])),
        "touching_digits": int(digit_touches.sum()),
        "touching_digits_read": float(digit_read[digit_touches].mean()) if digit_touches.any() else None,
        "separate_digits_read": float(digit_read[~digit_touches].mean()) if (~digit_touches).any() else None,
        "by_condition": {
            name: {"strips": len(correct), "whole_number_accuracy": float(np.mean(correct))}
            for name, correct in by_condition.items()
        },
        "failures": [
            {"true": r.true, "read": r.read, "condition": r.condition, "strip_index": r.strip_index} for r in failures
        ],
    }


def evaluate_reading(
    read_text: Callable[[np.ndarray], str],
    images: np.ndarray,
    labels: np.ndarray,
    *,
    per_cell: int,
    lengths: Sequence[int] = (2, 4, 6, 10),
    touching_fractions: Sequence[float] = (0.0, 0.3),
    conditions: list[str] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """How well `read_text` (an RGB photo -> the number it shows) reads strips of digits from `images`.

    For each (length, touching fraction) cell, `per_cell` strips cycling through `conditions` (default
    READING_CONDITIONS). Readings are compared with whitespace removed; a DigitrecError from the reader counts as
    an empty reading. Per cell: whole-number accuracy (exact match), per-digit accuracy (`per_digit_accuracy`,
    averaged), the share of readings of the wrong length, the mean number of touching pairs, the share of true
    digits read (aligned by edit distance) among digits touching a neighbour and among those standing apart, the
    whole-number accuracy per condition, and the first few failures.
    """
    conditions = list(READING_CONDITIONS) if conditions is None else list(conditions)
    check_evaluation_inputs(lengths, touching_fractions, per_cell, conditions)
    cells = [(int(length), float(fraction)) for length in lengths for fraction in touching_fractions]
    bar = tqdm(total=len(cells) * per_cell, unit="strip", desc="strips", disable=not progress)
    report_cells = []
    for length, fraction in cells:
        readings = []
        for index in range(per_cell):
            strip = evaluation_strip(images, labels, length, fraction, conditions, seed, index)
            read = reading_of(read_text, strip.image)
            readings.append(StripReading(index, strip.condition, strip.text, read, strip.touching))
            bar.update()
        report_cells.append({"length": length, "touching_fraction": fraction, **cell_summary(readings)})
    bar.close()
    return {
        "seed": seed,
        "per_cell": per_cell,
        "lengths": [int(length) for length in lengths],
        "touching_fractions": [float(fraction) for fraction in touching_fractions],
        "conditions": conditions,
        "cells": report_cells,
    }
