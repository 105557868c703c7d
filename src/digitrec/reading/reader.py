"""Reading whole numbers: lines, cuttings, and each cut digit read from its ink and from the gray levels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from digitrec.errors import DigitrecError
from digitrec.images.framing import mask_to_mnist
from digitrec.images.gray_view import FAINT_RIM_PX, gray_to_mnist
from digitrec.mnist import IMAGE_SIZE, WHITE
from digitrec.reading.line_model import LineModel, digit_spans, line_input, path_text, text_log_likelihood
from digitrec.reading.lines import LineInk, lines_of_ink, separator_kind
from digitrec.reading.results import NO_DIGITS, Box, DigitReading, LineReading, NumberReading, Separator
from digitrec.reading.segmentation import (
    Classifier,
    PieceScorer,
    Segment,
    check_deadline,
    confidence_scorer,
    line_segments,
)

WORD_GAP_FRACTION = 1.2  # a gap wider than this (vs H) between digits' inks starts a new number: a space ...
WORD_GAP_TIMES_MEDIAN = 2.5  # ... when it is also this many times the line's median gap (a "1" leaves wide gaps)
# The reader's work grows with the length of its lines in digit heights H (candidate cuts every H/8, pieces up to
# 1.3 H wide): about 0.12 s per H on one loaded core here, with the shipped piece model and test-time views (two
# lines of 28 MNIST digits, 70 H: 8 s). Images of scattered specks make many long lines of short specks (860 H for
# 300 specks, 38 s); four lines of 20 digits are 80 H. Past these, the image is refused.
MAX_LINES = 30
# The line models overrule the cut reader on a line when they believe a reading of another length this much more
# than the cut reader's digits (log-likelihood under CTC, averaged over LINE_VIEW_SCALES and the models): chosen on
# the dev cheques (docs/realworld.md), where the cut reader often cuts a flagged 1 in two or a cursive zero into
# other digits, a reading the line models find unlikely.
LINE_MODEL_MARGIN = 3.0
# A reading of the cut's length is chosen by both readers together: the line models' belief plus this weight times
# the classifier's log-probabilities of its digits in the cut pieces (`LineModelViews.combined_reading`), among the
# line models' best reading and their COMBINED_ALTERNATIVES likeliest others, and it replaces the cut digits when it
# scores COMBINED_MARGIN more than they do. The classifier is sure and right on MNIST-like digits, sure and wrong on
# some foreign ones (long-flagged 1s); the line models the other way round. Chosen on the dev cheques and on
# 4-digit strips of MNIST *tuning* digits (docs/realworld.md): weights 0.3-0.7 and margins 0.5-2 read 112-114 of the
# 128 cheques, against 110 for the line models' belief alone.
CLASSIFIER_WEIGHT = 0.5
COMBINED_MARGIN = 1.0
COMBINED_ALTERNATIVES = 5
PROBABILITY_FLOOR = 1e-12  # a classifier's probability below this counts as this (log: -27.6)
# A line the line models read so surely that no other reading comes within this margin of their best
# (`LineModelViews.settles`) is not cut at all: a short cut, since the classifier's say could still change it. At
# 3, 3 of 600 apart and 6 of 600 touching 4-digit MNIST tuning strips were settled wrong where the cut digits were
# right; at 4, 2 and 3 (docs/realworld.md).
SETTLE_MARGIN = 4.0
# The line is read at its measured digit height H and at H 10% smaller and larger: H is measured from the line's
# components and is off where digits touch or differ in size; the three views read 73.4% of the dev cheques alone,
# one view 67.2% (docs/realworld.md).
LINE_VIEW_SCALES = (0.9, 1.0, 1.1)
MAX_LINE_LENGTH_H = 80  # all lines together, in digit heights
# `LineModelViews.settles` looks at the readings one step of a view's best path away, with a class at most this far
# below the step's best (log-units): on the 188 lines of the dev cheques and 60 MNIST test strips, 106 lines need no
# cutting with them (75 with the best reading alone); 5 log-units: 103, 8: 106 and a little slower.
ALTERNATIVE_STEP_GAP = 6.0


def to_input_box(x: int, y: int, width: int, height: int, scale: float) -> Box:
    """A working-image box -> the input image's pixels."""
    return round(x * scale), round(y * scale), max(1, round(width * scale)), max(1, round(height * scale))


def line_text(segments: list[Segment], digits: list[int], height: float) -> str:
    """The digits of a line, with a space where the gap between two inks is much wider than the others."""
    gaps = [right.x - (left.x + left.width) for left, right in zip(segments, segments[1:], strict=False)]
    word_gap = max(WORD_GAP_FRACTION * height, WORD_GAP_TIMES_MEDIAN * float(np.median(gaps))) if gaps else 0
    text = str(digits[0]) if digits else ""
    for gap, digit in zip(gaps, digits[1:], strict=True):
        text += (" " if gap > word_gap else "") + str(digit)
    return text


def paper_level(gray: np.ndarray, line: LineInk) -> float:
    """The paper's gray around a line's digits: the median of its box where there is no ink."""
    box = gray[line.y : line.y + line.mask.shape[0], line.x : line.x + line.mask.shape[1]]
    paper = box[line.mask == 0]
    return float(np.median(paper)) if paper.size else float(WHITE)


def gray_views(gray: np.ndarray, line: LineInk, segments: list[Segment], size: int) -> np.ndarray:
    """The line's digits read from the gray image (`preprocess.gray_to_mnist`): each segment's ink and the faint rim
    around it, without the other digits' ink."""
    line_ink = np.zeros(gray.shape, bool)
    line_ink[line.y : line.y + line.mask.shape[0], line.x : line.x + line.mask.shape[1]] = line.mask > 0
    paper, margin = paper_level(gray, line), FAINT_RIM_PX + 1
    views = []
    for segment in segments:
        top, left = max(0, segment.y - margin), max(0, segment.x - margin)
        bottom = min(gray.shape[0], segment.y + segment.height + margin)
        right = min(gray.shape[1], segment.x + segment.width + margin)
        own = np.zeros((bottom - top, right - left), np.uint8)
        own[segment.y - top : segment.y - top + segment.height, segment.x - left : segment.x - left + segment.width] = (
            segment.mask
        )
        others = line_ink[top:bottom, left:right] & (own == 0)
        views.append(gray_to_mnist(gray[top:bottom, left:right], own, others, paper, size))
    return np.stack(views)


def digit_probabilities(
    classify: Classifier, gray: np.ndarray, line: LineInk, segments: list[Segment], size: int
) -> np.ndarray:
    """Each segment read twice, from its binarized ink (`mask_to_mnist`, as single digits are) and from the gray
    levels around it (`gray_views`), the two probabilities averaged."""
    binary = np.stack([mask_to_mnist(segment.mask, size) for segment in segments])
    both = classify(np.concatenate([binary, gray_views(gray, line, segments, size)]))
    return (both[: len(segments)] + both[len(segments) :]) / 2


def ink_box(mask: np.ndarray, left: int, right: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the ink of `mask`'s columns left..right (the columns themselves without ink),
    so that the gaps between digits stay gaps (`line_text` puts spaces by them)."""
    columns = mask[:, left:right] > 0
    rows, cols = np.flatnonzero(columns.any(axis=1)), np.flatnonzero(columns.any(axis=0))
    if not len(rows):
        return 0, mask.shape[0], left, right
    return int(rows[0]), int(rows[-1]) + 1, left + int(cols[0]), left + int(cols[-1]) + 1


def path_alternatives(log_probs: np.ndarray) -> dict[str, float]:
    """The texts of CTC's best path through one view's (T, LINE_CLASSES) log-probs with one step changed to another
    class at most ALTERNATIVE_STEP_GAP below the step's best, each with its gap (how much less likely than the best
    path its path is, log-units; the smallest where several paths give the text)."""
    steps = log_probs.argmax(axis=1)
    gaps = log_probs - log_probs.max(axis=1, keepdims=True)
    texts: dict[str, float] = {}
    for step, label in zip(*np.nonzero(gaps > -ALTERNATIVE_STEP_GAP), strict=True):
        if label != steps[step]:
            changed = steps.copy()
            changed[step] = label
            text = path_text(changed)
            texts[text] = max(texts.get(text, -np.inf), float(gaps[step, label]))
    return texts


@dataclass
class LineModelViews:
    """The line model's reading of one line at each of LINE_VIEW_SCALES: its log-probs, and the best path of each
    (text -> its digits with their columns, `digit_spans`)."""

    log_probs: list[np.ndarray]
    readings: dict[str, list[tuple[int, float, int, int]]]
    likelihoods: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # text -> per view, as computed
    close_readings: dict[str, list[str]] = field(default_factory=dict, repr=False)  # best -> `alternatives(best)`

    def view_likelihoods(self, text: str) -> np.ndarray:
        """log P(text | line) under CTC in each view (each text's computed once)."""
        if text not in self.likelihoods:
            self.likelihoods[text] = np.array([text_log_likelihood(view, text) for view in self.log_probs])
        return self.likelihoods[text]

    def belief(self, text: str) -> float:
        """The mean over the views of log P(text | line) under CTC."""
        return float(self.view_likelihoods(text).mean())

    def best(self) -> str:
        """The views' best paths' reading the views believe most ("" where no view reads a digit)."""
        return max((text for text in self.readings if text), key=self.belief, default="")

    def settles(self, best: str) -> bool:
        """True when no other reading can come within SETTLE_MARGIN of `best`: the line is read `best` without
        being cut.

        In each view the texts' probabilities sum to 1, so a text not yet looked at has at most 1 minus the
        probability of those that were: first `best` alone, then the likeliest other readings one at a time (the
        other views' best paths, then `path_alternatives`), each one's belief computed exactly. One within the
        margin of `best`, and the line must be cut; the bound of all the rest below it, and it need not."""
        if not best:
            return False
        belief = self.belief(best)
        rest = -np.expm1(self.view_likelihoods(best))  # per view: at most this much probability for any other text
        for text in [best, *self.alternatives(best)]:
            if text != best:
                likelihoods = self.view_likelihoods(text)
                if belief - float(likelihoods.mean()) < SETTLE_MARGIN:
                    return False
                rest = rest - np.exp(likelihoods)
            if belief - float(np.log(np.maximum(rest, np.finfo(float).tiny)).mean()) >= SETTLE_MARGIN:
                return True
        return False

    def alternatives(self, best: str) -> list[str]:
        """The readings other than `best` that the views come close to, likeliest first: the other views' best
        paths, then each view's `path_alternatives` (computed once per `best`: `settles` and `combined_reading`
        both look at them)."""
        if best not in self.close_readings:
            closeness = {text: 0.0 for text in self.readings if text and text != best}
            for view in self.log_probs:
                for text, gap in path_alternatives(view).items():
                    if text and text != best:
                        closeness[text] = max(closeness.get(text, -np.inf), gap)
            self.close_readings[best] = sorted(closeness, key=lambda text: -closeness[text])
        return self.close_readings[best]

    def combined_reading(self, best: str, cut_probabilities: np.ndarray) -> str:
        """The line's reading, from the line models' `best` and the classifier's probabilities of the cut pieces
        (one row per piece): `best` where it has another length than the cut and beats the cut digits by
        LINE_MODEL_MARGIN; otherwise the reading of the cut's length that scores most with both readers
        (CLASSIFIER_WEIGHT), where it beats the cut digits by COMBINED_MARGIN; else the cut digits."""
        cut = cut_text(cut_probabilities)
        if not best or best == cut:
            return cut
        if len(best) != len(cut):
            return best if self.belief(best) - self.belief(cut) >= LINE_MODEL_MARGIN else cut
        log_probabilities = np.log(np.maximum(cut_probabilities, PROBABILITY_FLOOR))
        pieces = np.arange(len(cut))

        def score(text: str) -> float:
            digits = np.array([int(digit) for digit in text])
            return self.belief(text) + CLASSIFIER_WEIGHT * float(log_probabilities[pieces, digits].sum())

        candidates = [best, *self.alternatives(best)[:COMBINED_ALTERNATIVES]]
        choice = max([text for text in candidates if len(text) == len(cut)], key=score)
        return choice if score(choice) - score(cut) >= COMBINED_MARGIN else cut


def line_model_views(read_lines: Sequence[LineModel], line: LineInk) -> LineModelViews:
    """`line` read by each line model at each of LINE_VIEW_SCALES x its digit height (the views of all pooled)."""
    heights = [line.height * s for _ in read_lines for s in LINE_VIEW_SCALES]
    inputs = [line_input(line.mask, line.height * s)[None, None] for s in LINE_VIEW_SCALES]
    log_probs = [model(x)[0] for model in read_lines for x in inputs]
    spans = [digit_spans(view, height, line.mask.shape[1]) for view, height in zip(log_probs, heights, strict=True)]
    readings = {"".join(str(digit) for digit, *_ in view_spans): view_spans for view_spans in spans}
    return LineModelViews(log_probs, readings)


def line_model_digits(
    views: LineModelViews, best: str, line: LineInk, unsure_threshold: float, scale: float
) -> tuple[list[Segment], list[DigitReading]]:
    """The line model's reading `best` of `line` (one of its views' best paths), each digit with the ink of its
    columns as its segment."""
    segments, digits = [], []
    for digit, probability, left, right in views.readings[best]:
        top, bottom, left, right = ink_box(line.mask, left, right)
        segment = Segment(line.x + left, line.y + top, line.mask[top:bottom, left:right])
        box = to_input_box(segment.x, segment.y, segment.width, segment.height, scale)
        segments.append(segment)
        digits.append(DigitReading(digit, probability, box, bool(probability < unsure_threshold)))
    return segments, digits


def cut_text(probabilities: np.ndarray) -> str:
    """The classifier's own reading of a line's cut pieces (one row of probabilities per piece)."""
    return "".join(str(int(p.argmax())) for p in probabilities)


def cut_digits(
    probabilities: np.ndarray, segments: list[Segment], text: str, scale: float, unsure_threshold: float
) -> list[DigitReading]:
    """The digits `text` of a line's cut `segments`, each with the classifier's probability of it in its piece
    (`probabilities`, one row per segment): the classifier's own reading, or one the line models chose with it."""
    readings = []
    for segment, p, digit in zip(segments, probabilities, map(int, text), strict=True):
        box = to_input_box(segment.x, segment.y, segment.width, segment.height, scale)
        readings.append(DigitReading(digit, float(p[digit]), box, bool(p[digit] < unsure_threshold)))
    return readings


def check_reading_cost(lines: list[LineInk]) -> None:
    """Refuse, in one line, an image whose lines would take the reader too long (see MAX_LINE_LENGTH_H)."""
    if len(lines) > MAX_LINES:
        raise DigitrecError(f"too many lines of ink to read ({len(lines)}; at most {MAX_LINES}): scattered specks?")
    length_h = sum(line.mask.shape[1] / max(line.height, 1.0) for line in lines)
    if length_h > MAX_LINE_LENGTH_H:
        raise DigitrecError(
            f"too much ink to read: lines {length_h:.0f} digit heights long (at most {MAX_LINE_LENGTH_H}): "
            "scattered specks, or a page of writing?"
        )


def read_number(
    image,
    classify: Classifier,
    unsure_threshold: float,
    size: int = IMAGE_SIZE,
    score_pieces: PieceScorer | None = None,
    deadline: float | None = None,
    read_lines: Sequence[LineModel] = (),
) -> NumberReading:
    """Every digit in `image` (PIL image or array), in lines, left to right. `classify` reads the final digits;
    `score_pieces` (default: `classify`'s confidence) rates the candidate pieces of a line, of which there are many.
    `deadline` (a `time.monotonic()` value): past it (checked between lines and at every cut of a line), the
    reading stops with a DigitrecError. `read_lines` (line models, `reading.line_model`, their views pooled) read
    each line whole; the line's reading is chosen from theirs and the cut digits' (`LineModelViews.combined_reading`),
    and a line they read very surely is not cut at all (`.settles`).
    """
    score_pieces = score_pieces or confidence_scorer(classify)
    found = lines_of_ink(image)
    if found is None:
        return NumberReading(problem=NO_DIGITS)
    check_reading_cost([line for line, _ in found.lines])
    line_readings, separators = [], []
    for line, line_separators in found.lines:
        check_deadline(deadline)
        separators += [
            Separator(
                separator_kind(m, line.bottom, line.height), to_input_box(m.x, m.y, m.width, m.height, found.scale)
            )
            for m in line_separators
        ]
        views = line_model_views(read_lines, line) if read_lines else None
        best = views.best() if views else ""
        if views and views.settles(best):  # the line model's reading stands whatever the cut reader reads
            segments, digits = line_model_digits(views, best, line, unsure_threshold, found.scale)
        else:
            segments = line_segments(line, score_pieces, deadline)
            check_deadline(deadline)
            if not segments:
                continue
            probabilities = digit_probabilities(classify, found.gray, line, segments, size)
            text = views.combined_reading(best, probabilities) if views else cut_text(probabilities)
            if len(text) != len(segments):  # the line models' reading, of another length
                segments, digits = line_model_digits(views, text, line, unsure_threshold, found.scale)
            else:
                digits = cut_digits(probabilities, segments, text, found.scale, unsure_threshold)
        line_readings.append(LineReading(line_text(segments, [d.digit for d in digits], line.height), digits))
    return NumberReading(line_readings, separators, problem=None if line_readings else NO_DIGITS)
