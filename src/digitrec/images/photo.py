"""The photo pipeline: a photo or scan of one digit -> an MNIST-like 28x28 image, with every stage kept."""

from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from digitrec.errors import DigitrecError
from digitrec.images.arrays import image_to_array, resize_for_work
from digitrec.images.components import NO_DIGIT, select_digit
from digitrec.images.crops import crop_on_paper, is_small_crop
from digitrec.images.framing import deskew, mnist_frame, normalize_stroke, tight_crop
from digitrec.images.ink import INK_NOISE_SIGMAS, MIN_INK_SNR, find_ink, ink_dark_gray
from digitrec.images.ruled_lines import remove_ruled_lines
from digitrec.mnist import IMAGE_SIZE, WHITE

LIGHT_BACKGROUND_MEAN = 127.5  # the naive pipeline: a mean above mid-gray means a light background


@dataclass(frozen=True)
class PhotoStages:
    """Every stage of the photo pipeline, for the debug strip; `digit` is None when `problem` says why."""

    original: np.ndarray  # uint8 RGB (or gray) at working size
    gray: np.ndarray  # uint8, ink dark on light paper, lighting flattened
    binary: np.ndarray  # uint8 0/255, ink white, ruled lines removed
    cropped: np.ndarray  # uint8 0/255, the digit's components cut out tightly, deskewed, strokes normalized
    digit: np.ndarray | None  # uint8 (size, size), white on black, MNIST-like
    problem: str | None = None


@dataclass(frozen=True)
class InkStages:
    """The photo pipeline up to binarization, shared by one-digit photos and numbers (`digitrec.reading`)."""

    original: np.ndarray  # uint8 RGB (or gray) at working size
    gray: np.ndarray  # uint8, ink dark on light paper (lighting flattened when ink was found)
    binary: np.ndarray  # uint8 0/255, ink white, ruled lines removed; all 0 when no ink stands out
    has_ink: bool


def ink_stages(image, min_snr: float = MIN_INK_SNR, noise_sigmas: float = INK_NOISE_SIGMAS) -> InkStages:
    """An image (PIL or array) at working size -> its ink: best channel, lighting flattened, thresholded, ruled
    and grid lines removed."""
    original = resize_for_work(image_to_array(image))
    gray, has_ink = ink_dark_gray(original, min_snr)
    if not has_ink:
        return InkStages(original, gray, np.zeros_like(gray), False)
    flat, ink, faint = find_ink(gray, noise_sigmas)
    return InkStages(original, flat, remove_ruled_lines(ink, faint), True)


def photo_stages(image, size: int = IMAGE_SIZE) -> PhotoStages:
    """A photo or scan of one digit (PIL image or array) -> MNIST-like `(size, size)` uint8, with every stage.

    Ink is found in the channel where it stands out most, lighting is flattened, the image thresholded (Otsu, and
    clearly above the paper's noise), ruled and grid lines removed; the digit's components are kept (specks, page
    borders and far marks are not), cropped, deskewed, their strokes brought to MNIST's width, then framed as MNIST.
    A small image (`is_small_crop`: a scan of one digit, as USPS or Semeion give them) is first laid on paper and
    its contrast stretched (`crop_on_paper`); all its ink is then taken for the digit (`select_digit`).
    """
    array = image_to_array(image)
    empty = np.zeros((1, 1), np.uint8)
    crop = is_small_crop(array)
    if crop:
        page, has_ink = crop_on_paper(array)
        if not has_ink:
            gray = resize_for_work(page)
            return PhotoStages(resize_for_work(array), gray, np.zeros_like(gray), empty, None, NO_DIGIT)
    ink = ink_stages(page if crop else array)
    if not ink.has_ink:
        return PhotoStages(ink.original, ink.gray, ink.binary, empty, None, NO_DIGIT)
    digit_mask, problem = select_digit(ink.binary, crop)
    if digit_mask is None:
        return PhotoStages(ink.original, ink.gray, ink.binary, empty, None, problem)
    cropped = normalize_stroke(deskew(tight_crop(digit_mask)))
    digit = mnist_frame(cropped, size)
    if not digit.any():  # never seen; a blank answer must not reach the model
        return PhotoStages(ink.original, ink.gray, ink.binary, cropped, None, NO_DIGIT)
    return PhotoStages(ink.original, ink.gray, ink.binary, cropped, digit)


def photo_to_mnist(image, size: int = IMAGE_SIZE, source: str = "image") -> np.ndarray:
    """`photo_stages(image).digit`; an image without exactly one digit is a DigitrecError naming `source`."""
    stages = photo_stages(image, size)
    if stages.problem:
        raise DigitrecError(f"{source}: {stages.problem}")
    return stages.digit


def photo_file_to_mnist(path: str | os.PathLike, size: int = IMAGE_SIZE) -> np.ndarray:
    """The one digit in an image file (or one-page PDF) -> MNIST-like `(size, size)` uint8."""
    from digitrec.images.files import read_single_image

    source = read_single_image(path)
    return photo_to_mnist(source.image, size, source=source.name)


def naive_photo_to_mnist(image, size: int = IMAGE_SIZE) -> np.ndarray:
    """The report's own-image pipeline, for comparison: gray, threshold at the mean gray, invert if the background
    is light, squeeze to `size` x `size` (cv2.INTER_AREA). No crop, no centring, aspect ratio lost.

    (The report then also applied `normalize_paper_single_image_rows`; here the 28x28 uint8 goes to the model's own
    normalization, so only the geometry is compared.)
    """
    array = image_to_array(image)
    gray = array if array.ndim == 2 else cv2.cvtColor(array, cv2.COLOR_RGB2GRAY)
    binary = np.where(gray > gray.mean(), WHITE, 0).astype(np.uint8)
    if binary.mean() > LIGHT_BACKGROUND_MEAN:
        binary = WHITE - binary
    return cv2.resize(binary, (size, size), interpolation=cv2.INTER_AREA)
