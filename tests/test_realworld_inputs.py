"""Real-world scans that are not photos: small crops of one digit, as postal (USPS) and Semeion scans give them.

Every fixture is made here from real MNIST *training* digits: cropped tightly so that the digit touches the frame,
shrunk to 16x16, white ink on black (as USPS hands its digits over), faint, binarized (1-bit scans), or small on a
larger piece of paper; each is written to a PNG and read by the user-facing path, `Recognizer.predict(path)`.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from digitrec import Recognizer
from digitrec.errors import DigitrecError
from digitrec.images.components import NO_DIGIT
from digitrec.images.photo import photo_stages

SCAN_SIDE_PX = 16  # USPS and Semeion digits are 16x16
PER_CLASS = 3


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load()  # the shipped model: these tests are about the pipeline, not about training


@pytest.fixture(scope="module")
def digits(mnist_train) -> tuple[np.ndarray, np.ndarray]:
    """The first PER_CLASS training digits of each class."""
    picks = np.concatenate([np.flatnonzero(mnist_train.labels == c)[:PER_CLASS] for c in range(10)])
    return mnist_train.images[picks], mnist_train.labels[picks]


def tight_scan(digit: np.ndarray, side: int = SCAN_SIDE_PX) -> np.ndarray:
    """A digit cropped to its ink and shrunk so that its longer side fills a `side` x `side` frame: white on black,
    touching the border (top and bottom for most digits)."""
    ys, xs = np.nonzero(digit)
    ink = digit[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    scale = side / max(ink.shape)
    size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
    small = cv2.resize(ink, size, interpolation=cv2.INTER_AREA)
    frame = np.zeros((side, side), np.uint8)
    top, left = (side - small.shape[0]) // 2, (side - small.shape[1]) // 2
    frame[top : top + small.shape[0], left : left + small.shape[1]] = small
    return frame


def faint(scan: np.ndarray, paper: int = 140, ink: int = 110) -> np.ndarray:
    """Dark ink only 30 gray levels darker than gray paper."""
    return np.rint(paper + (ink - paper) * scan.astype(np.float32) / 255).astype(np.uint8)


def binarized(scan: np.ndarray) -> np.ndarray:
    """A 1-bit scan (Semeion's 16x16 digits are 0/1)."""
    return np.where(scan >= 128, 255, 0).astype(np.uint8)


def small_on_paper(scan: np.ndarray, seed: int) -> np.ndarray:
    """The digit 8 px high, dark, somewhere on a 40x40 piece of gray paper with a little noise."""
    rng = np.random.default_rng(seed)
    digit = cv2.resize(scan, (8, 8), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    page = np.full((40, 40), 210.0, np.float32)
    top, left = rng.integers(0, 32, size=2)
    page[top : top + 8, left : left + 8] -= 160 * digit
    return np.clip(page + rng.normal(0, 2, page.shape), 0, 255).astype(np.uint8)


KINDS = {
    "tight white-on-black 16x16": lambda scan, seed: scan,
    "tight dark-on-light 16x16": lambda scan, seed: 255 - scan,
    "faint (30 gray levels)": lambda scan, seed: faint(scan),
    "binarized (1-bit scan)": lambda scan, seed: binarized(scan),
    "binarized dark-on-light": lambda scan, seed: 255 - binarized(scan),
    "small on a larger paper": small_on_paper,
}


def predictions_for(recognizer, images: list[np.ndarray], tmp_path) -> tuple[list[int | None], list[str]]:
    """Each image written to a PNG and read by `Recognizer.predict(path)`: the digits (None when refused) and
    the refusals' messages."""
    read, refusals = [], []
    for index, image in enumerate(images):
        path = tmp_path / f"scan-{index}.png"
        cv2.imwrite(str(path), image)
        try:
            read.append(recognizer.predict(path).digit)
        except DigitrecError as exc:
            read.append(None)
            refusals.append(str(exc))
    return read, refusals


@pytest.mark.parametrize("kind", list(KINDS))
def test_small_scans_of_one_digit_are_read_and_never_refused(recognizer, digits, tmp_path, kind):
    images, labels = digits
    scans = [KINDS[kind](tight_scan(digit), seed) for seed, digit in enumerate(images)]
    read, refusals = predictions_for(recognizer, scans, tmp_path)
    assert refusals == []
    right = sum(digit == label for digit, label in zip(read, labels, strict=True))
    assert right >= 0.9 * len(labels), (right, list(zip(read, labels.tolist(), strict=True)))


def test_the_paper_is_read_from_the_border_even_when_the_digit_touches_it(digits):
    """Each tight scan touches the frame, but most of its border is still paper: white on black and black on white
    give the same digit (the border's spread used to send the polarity to a local test that fails when the digit
    fills the image)."""
    images, _ = digits
    for digit in images:
        scan = tight_scan(digit)
        white_on_black, dark_on_light = photo_stages(scan), photo_stages(255 - scan)
        assert white_on_black.problem is None and dark_on_light.problem is None
        assert np.array_equal(white_on_black.digit, dark_on_light.digit)


def test_a_digit_broken_into_pieces_in_a_small_crop_is_one_digit(digits):
    """A scan that lost two rows in the middle: the pieces, one above the other or side by side but close, are one
    digit, not several digits nor specks. (One open-topped 4 falls into a left arm far from the rest and a faint
    crossbar; it is still taken for two digits: at most one refusal of the 30.)"""
    images, _ = digits
    problems = []
    for digit in images:
        broken = tight_scan(digit).copy()
        broken[7:9] = 0
        problems += [problem] if (problem := photo_stages(broken).problem) else []
    assert len(problems) <= 1, problems


def test_a_lone_dash_in_a_small_crop_is_read_not_refused():
    """Whatever ink a small crop holds is its digit, however flat (a 5 whose lower part the scan lost)."""
    dash = np.zeros((16, 16), np.uint8)
    dash[7:9, 3:13] = 255
    assert photo_stages(dash).problem is None


@pytest.mark.parametrize(
    "blank",
    [
        np.zeros((16, 16), np.uint8),
        np.full((16, 16), 128, np.uint8),
        np.full((28, 28), 255, np.uint8),
        np.clip(np.random.default_rng(0).normal(200, 3, (16, 16)), 0, 255).astype(np.uint8),
        np.clip(np.random.default_rng(1).normal(60, 8, (40, 40)), 0, 255).astype(np.uint8),
        np.linspace(180, 186, 16 * 16).reshape(16, 16).astype(np.uint8),
    ],
    ids=["black", "mid-gray", "white 28x28", "paper noise 3", "dark noise 8", "faint gradient"],
)
def test_a_blank_small_image_is_still_no_digit(blank):
    stages = photo_stages(blank)
    assert stages.digit is None and stages.problem == NO_DIGIT


def test_two_digits_side_by_side_in_a_small_crop_are_still_several(digits):
    images, labels = digits
    four, two = tight_scan(images[list(labels).index(4)]), tight_scan(images[list(labels).index(2)])
    problem = photo_stages(np.hstack([four, np.zeros((16, 6), np.uint8), two])).problem
    assert problem is not None and "several digits" in problem
