"""Photos of handwritten numbers (strips of real MNIST test digits) and the bookkeeping of reading them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from digitrec.errors import DigitrecError
from digitrec.evaluation.reading import evaluate_reading, levenshtein, per_digit_accuracy, true_digits_read
from digitrec.synthetic.strips import (
    GAP_RANGE,
    INK_THRESHOLD,
    MAX_STRIP_WIDTH_PX,
    READING_CONDITIONS,
    evaluation_strip,
    example_strips,
    render_strip,
    strip_generator,
    write_example_strips,
)
from digitrec.synthetic.styles import crossed_seven, flagged_one, hooked_nine, with_flagged_ones

SEED = 11
GRAY_INK_LEVEL = 128  # clean strips: paper above 225, ink below 60


def strip_of(mnist_test, length: int, touching_fraction: float, index: int, condition: str = "clean"):
    return evaluation_strip(mnist_test.images, mnist_test.labels, length, touching_fraction, [condition], SEED, index)


def dark_pieces(strip) -> np.ndarray:
    """Connected pieces (8-neighbours) of the dark pixels of the photo itself, as labels; 0 is paper."""
    dark = cv2.cvtColor(strip.image, cv2.COLOR_RGB2GRAY) < GRAY_INK_LEVEL
    return cv2.connectedComponents(dark.astype(np.uint8), connectivity=8)[1]


def ink_pieces(ink: np.ndarray) -> np.ndarray:
    return cv2.connectedComponents(ink.astype(np.uint8), connectivity=8)[1]


def connected_pairs(strip, in_photo: bool = False) -> list[bool]:
    """For each pair of neighbours: does one connected piece hold ink of both digits; pieces of the pair's ink
    alone, or of the dark pixels of the photo."""
    photo_pieces = dark_pieces(strip) if in_photo else None
    connected = []
    for ink, next_ink in zip(strip.digit_ink, strip.digit_ink[1:], strict=False):
        pieces = ink_pieces(ink | next_ink) if photo_pieces is None else photo_pieces
        connected.append(bool(set(pieces[ink].tolist()) & set(pieces[next_ink].tolist()) - {0}))
    return connected


# ---------------------------------------------------------------------------------------------------- layout


@pytest.mark.parametrize("condition", ["clean", "thick-pen", "ruled-paper"])
def test_each_box_holds_its_digits_ink_tightly_and_boxes_run_left_to_right_with_a_clear_gap(mnist_test, condition):
    for index in range(6):
        strip = strip_of(mnist_test, 6, 0.0, index, condition)
        for ink, (x, y, w, h) in zip(strip.digit_ink, strip.boxes, strict=True):
            in_box = np.zeros_like(ink)
            in_box[y : y + h, x : x + w] = True
            assert ink.any() and not (ink & ~in_box).any()
            box_ink = ink[y : y + h, x : x + w]
            assert box_ink[0].any() and box_ink[-1].any() and box_ink[:, 0].any() and box_ink[:, -1].any()  # tight
        smallest_gap_px = GAP_RANGE[0] * strip.digit_height_px - 1
        for (x, _, w, _), (next_x, _, _, _) in zip(strip.boxes, strip.boxes[1:], strict=False):
            assert next_x - (x + w) >= smallest_gap_px


def test_with_touching_fraction_zero_no_two_digits_touch(mnist_test):
    for length, index in [(4, 0), (6, 1), (10, 2), (10, 3)]:
        strip = strip_of(mnist_test, length, 0.0, index)
        assert strip.touching == (False,) * (length - 1)
        assert connected_pairs(strip) == [False] * (length - 1)
        assert connected_pairs(strip, in_photo=True) == [False] * (length - 1)  # in the photo


def test_with_touching_fraction_one_every_pair_is_recorded_touching_and_really_connected(mnist_test):
    for length, index in [(2, 0), (4, 1), (6, 2), (10, 3)]:
        strip = strip_of(mnist_test, length, 1.0, index)
        assert strip.touching == (True,) * (length - 1)
        assert connected_pairs(strip) == [True] * (length - 1)
        assert connected_pairs(strip, in_photo=True) == [True] * (length - 1)  # in the photo
        assert np.array_equal(strip.digit_ink.any(axis=0), strip.coverage > INK_THRESHOLD)


def test_touching_digits_run_into_each_other_without_being_written_over_each_other(mnist_test):
    shared_shares = []
    for index in range(8):
        strip = strip_of(mnist_test, 4, 1.0, index, ["clean", "thin-pen", "thick-pen", "pencil"][index % 4])
        for ink, next_ink in zip(strip.digit_ink, strip.digit_ink[1:], strict=False):
            shared_shares.append((ink & next_ink).sum() / min(ink.sum(), next_ink.sum()))
    assert max(shared_shares) < 0.25 and np.median(shared_shares) < 0.05, np.round(shared_shares, 3)


def test_a_strip_is_the_number_its_labels_spell_and_fits_the_size_limits(mnist_test):
    strip = strip_of(mnist_test, 10, 0.3, 0)
    picks = strip_generator(SEED, 10, 0.3, 0, 0).integers(len(mnist_test.labels), size=10)
    assert strip.text == "".join(str(label) for label in mnist_test.labels[picks])
    assert strip.image.dtype == np.uint8 and strip.image.ndim == 3 and strip.image.shape[2] == 3
    assert strip.image.shape[:2] == strip.coverage.shape
    assert strip.image.shape[1] <= MAX_STRIP_WIDTH_PX and len(strip.boxes) == 10 and len(strip.touching) == 9
    height, width = strip.coverage.shape
    assert all(x >= 0 and y >= 0 and x + w <= width and y + h <= height for x, y, w, h in strip.boxes)


def test_render_strip_writes_the_labels_it_is_given(mnist_test):
    digits, labels = mnist_test.images[:3], [4, 0, 7]  # whatever the images show, the text is the labels given
    strip = render_strip(digits, labels, "blue-ink", 0.0, np.random.default_rng(0))
    assert strip.text == "407" and strip.condition == "blue-ink"


def test_same_seed_same_strip_and_each_strip_its_own_stream(mnist_test):
    first, again = strip_of(mnist_test, 6, 0.3, 5, "combined"), strip_of(mnist_test, 6, 0.3, 5, "combined")
    assert np.array_equal(first.image, again.image) and first.boxes == again.boxes and first.text == again.text
    assert strip_of(mnist_test, 6, 0.3, 6, "combined").text != first.text
    draws = [strip_generator(0, 4, fraction, 0, 0).random() for fraction in (0.0, 0.3, 0.3)]
    assert draws[0] != draws[1] and draws[1] == draws[2]


@pytest.mark.parametrize("condition", READING_CONDITIONS)
def test_every_reading_condition_renders_a_whole_number(mnist_test, condition):
    strip = strip_of(mnist_test, 4, 0.3, 0, condition)
    height, width = strip.coverage.shape
    assert strip.image.shape == (height, width, 3) and len(strip.text) == 4
    assert all(w > 0 and h > 0 and x + w <= width and y + h <= height for x, y, w, h in strip.boxes)


def test_bad_inputs_give_a_digitrec_error(mnist_test):
    digits, labels = mnist_test.images[:3], mnist_test.labels[:3]
    with pytest.raises(DigitrecError, match="unknown photo condition 'sepia'"):
        render_strip(digits, labels, "sepia", 0.0, np.random.default_rng(0))
    with pytest.raises(DigitrecError, match="touching fraction"):
        render_strip(digits, labels, "clean", 1.5, np.random.default_rng(0))
    with pytest.raises(DigitrecError, match="2 labels"):
        render_strip(digits, labels[:2], "clean", 0.0, np.random.default_rng(0))
    with pytest.raises(DigitrecError, match="unknown photo conditions"):
        evaluate_reading(lambda image: "", mnist_test.images, mnist_test.labels, per_cell=1, conditions=["sepia"])


# ------------------------------------------------------------------------------------------------ evaluation


@pytest.mark.parametrize(
    ("read", "true", "distance"),
    [("", "", 0), ("", "407", 3), ("407", "", 3), ("4071", "4071", 0), ("4011", "4071", 1), ("471", "4071", 1),
     ("40771", "4071", 1), ("12", "21", 2), ("kitten", "sitting", 3), ("9999", "4071", 4)],
)  # fmt: skip
def test_levenshtein_on_known_pairs(read, true, distance):
    assert levenshtein(read, true) == distance == levenshtein(true, read)


def test_per_digit_accuracy_is_one_minus_edits_per_true_digit_at_least_zero():
    assert per_digit_accuracy("4071", "4071") == 1.0
    assert per_digit_accuracy("4011", "4071") == 0.75  # one digit misread
    assert per_digit_accuracy("471", "4071") == 0.75  # one digit missed (two touching digits read as one)
    assert per_digit_accuracy("", "4071") == 0.0
    assert per_digit_accuracy("123456789", "40") == 0.0  # more edits than digits: 0, not negative


def test_true_digits_read_marks_the_digits_an_alignment_matches():
    assert true_digits_read("4071", "4071") == [True] * 4
    assert true_digits_read("471", "4071") == [True, False, True, True]
    assert true_digits_read("4011", "4071") == [True, True, False, True]
    assert true_digits_read("", "40") == [False, False]


def test_a_reader_that_reads_nothing_scores_zero_everywhere(mnist_test):
    report = evaluate_reading(
        lambda image: "", mnist_test.images, mnist_test.labels, per_cell=3, lengths=(2, 4), touching_fractions=(0.0,)
    )
    assert [(cell["length"], cell["touching_fraction"]) for cell in report["cells"]] == [(2, 0.0), (4, 0.0)]
    for cell in report["cells"]:
        assert cell["strips"] == 3 and cell["whole_number_accuracy"] == 0.0 and cell["per_digit_accuracy"] == 0.0
        assert cell["length_error_rate"] == 1.0 and cell["mean_touching_pairs"] == 0.0
        assert cell["separate_digits_read"] == 0.0 and cell["touching_digits_read"] is None
        assert sum(row["strips"] for row in cell["by_condition"].values()) == 3
        assert list(cell["by_condition"]) == READING_CONDITIONS[:3]  # the conditions take turns
        assert [failure["read"] for failure in cell["failures"]] == ["", "", ""]


def test_a_refusing_reader_counts_as_empty_and_other_errors_are_not_hidden(mnist_test):
    def refuse(image: np.ndarray) -> str:
        raise DigitrecError(f"no line of digits found in a {image.shape[1]} px wide photo")

    report = evaluate_reading(
        refuse, mnist_test.images, mnist_test.labels, per_cell=2, lengths=(4,), touching_fractions=(1.0,),
        conditions=["clean"],
    )  # fmt: skip
    (cell,) = report["cells"]
    assert cell["whole_number_accuracy"] == 0.0 and cell["per_digit_accuracy"] == 0.0
    assert cell["mean_touching_pairs"] == 3.0 and cell["touching_digits_read"] == 0.0
    first_strip = evaluation_strip(mnist_test.images, mnist_test.labels, 4, 1.0, ["clean"], seed=0, strip_index=0)
    assert cell["failures"][0] == {"true": first_strip.text, "read": "", "condition": "clean", "strip_index": 0}
    with pytest.raises(TypeError):  # a bug in the reader is not a refusal
        evaluate_reading(lambda image: "".join(image), mnist_test.images, mnist_test.labels, per_cell=1, lengths=(2,))


def test_a_reader_that_reads_too_many_digits_makes_length_errors_and_spaces_are_ignored(mnist_test):
    report = evaluate_reading(
        lambda image: "12 345\n6789 0", mnist_test.images, mnist_test.labels, per_cell=2, lengths=(2,),
        touching_fractions=(0.0,), conditions=["clean"],
    )  # fmt: skip
    (cell,) = report["cells"]
    assert cell["length_error_rate"] == 1.0 and cell["per_digit_accuracy"] == 0.0  # 10 digits for 2: 8+ edits
    assert cell["failures"][0]["read"] == "1234567890"


# -------------------------------------------------------------------------------------------------- examples


def test_example_strips_name_their_true_number(mnist_test, tmp_path):
    paths = write_example_strips(tmp_path, mnist_test.images, mnist_test.labels)
    examples = example_strips(mnist_test.images, mnist_test.labels)
    assert [path.name for path in paths] == [name for name, _ in examples]
    for path, (name, strip) in zip(paths, examples, strict=True):
        assert name == f"number-{strip.text}-{strip.condition}{path.suffix}"
        assert cv2.imread(str(path)).shape == strip.image.shape


def test_flagged_ones_add_a_stroke_up_left_of_the_top_and_touch_nothing_else(mnist_test):
    digits, labels = mnist_test.images[:60], mnist_test.labels[:60]
    rng = np.random.default_rng(3)
    before = rng.bit_generator.state
    assert with_flagged_ones(digits, labels, 0.0, rng) is digits
    assert rng.bit_generator.state == before, "share 0 leaves the generator as it was (earlier data stays the same)"
    flagged = with_flagged_ones(digits, labels, 1.0, rng)
    assert (flagged[labels != 1] == digits[labels != 1]).all()
    for original, changed in zip(digits[labels == 1], flagged[labels == 1], strict=True):
        assert (changed >= original).all(), "the 1 keeps all its ink"
        added = (changed >= 128) & (original < 128)
        ys, xs = np.nonzero(added)
        ink_ys, ink_xs = np.nonzero(original >= 128)
        assert added.sum() >= 4, "a flag of a few pixels at least"
        assert ys.mean() < ink_ys.mean() and xs.mean() < ink_xs.max(), "in the upper part, towards the left"


def added_stroke(original: np.ndarray, changed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows and columns of the ink a style added to a digit, which keeps all of its own."""
    assert (changed >= original).all(), "the digit keeps all its ink"
    ys, xs = np.nonzero((changed >= 128) & (original < 128))
    assert len(ys) >= 3, "a stroke of a few pixels at least"
    return ys, xs


def test_crossed_sevens_get_a_bar_across_the_middle_of_the_stem(mnist_test):
    rng = np.random.default_rng(4)
    for original in mnist_test.images[mnist_test.labels == 7][:20]:
        ys, xs = added_stroke(original, crossed_seven(original, rng))
        ink_ys = np.nonzero(original >= 128)[0]
        assert ink_ys.min() < ys.mean() < ink_ys.max(), "between the 7's top and foot"
        assert np.ptp(xs) > np.ptp(ys), "wider than tall: a bar"


def test_hooked_nines_curl_left_at_the_foot(mnist_test):
    rng = np.random.default_rng(5)
    for original in mnist_test.images[mnist_test.labels == 9][:20]:
        ys, xs = added_stroke(original, hooked_nine(original, rng))
        ink_ys = np.nonzero(original >= 128)[0]
        foot = np.flatnonzero(original[ink_ys.max()] >= 128).mean()
        assert ys.mean() > ink_ys.mean() and xs.mean() < foot, "in the lower part, left of the foot"


def test_a_bowed_flag_bulges_up_and_left_of_the_straight_one(mnist_test):
    """The same flag (same length and angle: generators in the same state) drawn straight and bowed: the bowed
    one's added ink lies above and to the left of the straight one's."""
    for original in mnist_test.images[mnist_test.labels == 1][:20]:
        straight = flagged_one(original, np.random.default_rng(8), (0.6, 0.6), (40.0, 40.0))
        bowed = flagged_one(original, np.random.default_rng(8), (0.6, 0.6), (40.0, 40.0), bend=0.4)
        straight_ys, straight_xs = added_stroke(original, straight)
        bowed_ys, bowed_xs = added_stroke(original, bowed)
        assert bowed_ys.mean() < straight_ys.mean() and bowed_xs.mean() < straight_xs.mean()
