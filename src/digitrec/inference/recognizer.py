"""The public API: `Recognizer.load()` then `.predict(x)`, with calibrated confidence and an "unsure" flag.

from digitrec import Recognizer
recognizer = Recognizer.load()            # the model shipped in the package, on onnxruntime
result = recognizer.predict(image_28x28)  # -> Prediction(digit, confidence, probabilities, unsure)
reading = recognizer.read("cheque.jpg")   # -> NumberReading(text, digits with boxes, lines, separators)

No torch here: the shipped models run on onnxruntime; a checkpoint of one's own needs the `[train]` extra.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitrec.errors import DigitrecError
from digitrec.images.files import check_dimensions, loaded_picture, read_single_image
from digitrec.images.normalize import to_model_inputs
from digitrec.images.photo import photo_file_to_mnist, photo_to_mnist
from digitrec.inference.backends import DEFAULT_BACKEND, load_network
from digitrec.inference.views import View, average_over_views, model_views
from digitrec.mnist import PIXEL_MAX, WHITE
from digitrec.model_files import (
    LINE_MODEL_SEPARATOR,
    LINE_MODELS,
    SHIPPED_LINE_MODEL,
    SHIPPED_PIECE_MODEL,
    adapted_pieces,
)
from digitrec.numeric import softmax
from digitrec.reading.line_model import LINE_CLASSES, LineModel
from digitrec.reading.pieces import PIECE_CLASSES, piece_model_scorer
from digitrec.reading.reader import read_number
from digitrec.reading.results import NumberReading
from digitrec.reading.segmentation import PieceScorer, confidence_scorer

DEFAULT_UNSURE_THRESHOLD = 0.5  # used when a model carries no calibrated threshold
# A 28x28 input with less ink than any MNIST digit, or far more, holds no digit: its answer is always `unsure`.
INK_LEVEL = 128  # a pixel at least this bright is ink (white ink on black, as in MNIST)
MIN_INK_PIXELS = 10  # the fewest ink pixels of an MNIST digit: 15 (train), 19 (test)
MAX_INK_FRACTION = 0.7  # the most ink of an MNIST digit: 40% of its pixels (train)


def without_digit(images: np.ndarray) -> np.ndarray:
    """Per image `(N, H, W)`: too little or too much ink to be a digit (blank, near-blank, or all ink)."""
    ink = (images >= INK_LEVEL).sum(axis=(1, 2))
    return (ink < MIN_INK_PIXELS) | (ink > MAX_INK_FRACTION * images[0].size)


def pixel_array(x) -> np.ndarray:
    """`x` as a numeric array: bools, strings, objects, complex numbers and ragged lists are refused."""
    try:
        array = np.asarray(x)
    except (ValueError, TypeError):
        raise DigitrecError(f"expected an image array, got a {type(x).__name__} of uneven rows") from None
    numeric = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    if array.dtype == np.bool_ or not numeric:
        raise DigitrecError(f"expected numeric pixels (integers or floats), got {type(x).__name__} of {array.dtype}")
    return array


@dataclass(frozen=True)
class Prediction:
    digit: int
    confidence: float  # calibrated probability of `digit`
    probabilities: list[float]  # one per class, summing to 1
    unsure: bool  # confidence below the model's threshold: better checked by a person

    def to_json(self) -> dict:
        return {"digit": self.digit, "confidence": self.confidence, "probabilities": self.probabilities,
                "unsure": self.unsure}  # fmt: skip


class Recognizer:
    """A trained classifier with its preprocessing and calibration: images in, predictions out."""

    def __init__(
        self,
        network,
        views: list[View] | None = None,
        piece_scorer: PieceScorer | None = None,
        line_models: list[LineModel] | None = None,
    ) -> None:
        self.network = network  # inference.backends: OnnxNetwork or TorchNetwork
        self.metadata = network.metadata
        self.normalization = self.metadata["config"]["normalization"]
        self.image_size = self.metadata["image_size"]
        calibration = self.metadata.get("calibration", {})
        self.temperature = calibration.get("temperature", 1.0)
        self.unsure_threshold = calibration.get("unsure_threshold", DEFAULT_UNSURE_THRESHOLD)
        self.views = list(views or [])  # test-time augmentation views; [] reads each image once
        # rates the candidate pieces of a line when reading numbers; None: this classifier's quick confidence
        self.piece_scorer = piece_scorer
        # read each line whole and overrule the cut digits where much surer (reading.line_model); []: cuts only
        self.line_models = list(line_models or [])
        # how `load` made it (its keyword arguments, JSON-like): another process makes the same one from these;
        # None when built from its parts
        self.load_arguments: dict | None = None

    @classmethod
    def load(
        cls,
        model: str | os.PathLike = "default",
        backend: str = DEFAULT_BACKEND,
        tta: bool = True,
        pieces: str | os.PathLike | None = SHIPPED_PIECE_MODEL,
        threads: int = 0,
        lines: str | os.PathLike | None = SHIPPED_LINE_MODEL,
    ) -> Recognizer:
        """A shipped model's name ("default"), an ONNX file, or a checkpoint file / run folder (needs torch).

        `backend`: "onnx" (onnxruntime, the default) or "torch". `tta=False` reads each image once instead of
        through the model's test-time views (faster, a little less accurate; the calibration was fit with the
        views). `pieces` is the piece model `read` cuts lines with (the shipped one, a model of one's own, or None:
        the classifier's own confidence). `threads`: onnxruntime's threads per model (0: its choice). `lines`: the
        line models that check the cut digits of each line, their views pooled (the shipped ones; an ONNX file of
        one's own, several separated by commas, or None)."""
        network = load_network(model, backend, threads)
        views = model_views(network.metadata) if tta else []
        piece_model = None if pieces is None else str(pieces)
        arguments = {"model": str(model), "backend": backend, "tta": tta, "pieces": piece_model, "threads": threads,
                     "lines": None if lines is None else str(lines)}  # fmt: skip
        if pieces == SHIPPED_PIECE_MODEL:  # an adapted model's folder brings its own piece model
            pieces = adapted_pieces(model) or pieces
        piece_scorer = load_piece_scorer(pieces, backend, threads) if pieces else None
        recognizer = cls(network, views, piece_scorer, load_line_models(lines, threads) if lines else None)
        recognizer.load_arguments = arguments
        return recognizer

    @property
    def backend(self) -> str:
        return self.network.backend

    def to_images(self, x) -> np.ndarray:
        """Validate the input once, at the edge: uint8 `(N, H, W)` images."""
        if isinstance(x, str | os.PathLike):  # a photo or scan of one digit: the photo pipeline (images.photo)
            return photo_file_to_mnist(Path(x), self.image_size)[None]
        if is_picture(x):
            return photo_to_mnist(loaded_picture(x), self.image_size)[None]
        array = pixel_array(x)
        size = self.image_size
        if array.ndim not in (2, 3) or array.shape[-2:] != (size, size):
            raise DigitrecError(
                f"expected a {size}x{size} image or a batch of shape (N, {size}, {size}), got shape {array.shape}"
            )
        if array.ndim == 2:
            array = array[None]
        if len(array) == 0:
            raise DigitrecError(f"expected at least one image, got an empty batch of shape {array.shape}")
        if array.dtype != np.uint8:
            if not np.isfinite(array).all():
                raise DigitrecError(
                    f"expected finite pixels, got non-finite values (NaN or infinity, dtype {array.dtype})"
                )
            scale = PIXEL_MAX if array.max() <= 1.0 else 1.0  # floats in [0, 1] are taken as fractions of white
            array = np.clip(np.rint(array * scale), 0, WHITE).astype(np.uint8)
        return array

    def logits(self, images: np.ndarray, views: list[View] | None = None) -> np.ndarray:
        """Logits of uint8 images `(N, H, W)` through `views` (default: the model's test-time views)."""
        views = self.views if views is None else views
        return average_over_views(self.network.logits, to_model_inputs(images, self.normalization), views)

    def predict_proba(self, x) -> np.ndarray:
        """Calibrated class probabilities `(N, classes)`."""
        return self.calibrated_probabilities(self.to_images(x))

    def calibrated_probabilities(self, images: np.ndarray, views: list | None = None) -> np.ndarray:
        return softmax(self.logits(images, views) / self.temperature)

    def quick_probabilities(self, images: np.ndarray) -> np.ndarray:
        """One look per image, without the test-time views: for scoring many candidate pieces fast."""
        return self.calibrated_probabilities(images, views=[])

    def read(self, x, deadline: float | None = None) -> NumberReading:
        """Every digit in a photo, scan or drawing of one or more numbers (path, PIL image or array), in lines of
        writing read left to right: `.text`, `.digits` (digit, confidence, box, unsure), `.lines`, `.separators`.
        `deadline` (a `time.monotonic()` value): past it the reading stops with a DigitrecError."""
        if isinstance(x, str | os.PathLike):
            x = read_single_image(x).image
        elif is_picture(x):
            x = loaded_picture(x)
        else:
            x = pixel_array(x)
            if not np.isfinite(x).all():
                raise DigitrecError("expected finite pixels, got non-finite values (NaN or infinity)")
            if x.ndim < 2:
                raise DigitrecError(f"expected an image (H, W) or (H, W, channels), got shape {x.shape}")
            check_dimensions("image", x.shape[1], x.shape[0])
        return read_number(
            x,
            self.calibrated_probabilities,
            self.unsure_threshold,
            self.image_size,
            score_pieces=self.piece_scorer_or_default(),
            deadline=deadline,
            read_lines=self.line_models,
        )

    def piece_scorer_or_default(self) -> PieceScorer:
        """How `read` rates candidate pieces: the piece model, or without one this classifier's quick confidence."""
        return self.piece_scorer or confidence_scorer(self.quick_probabilities)

    def predict(self, x) -> Prediction | list[Prediction]:
        """One Prediction for one image (array, path or PIL image); a list for a batch `(N, H, W)`."""
        images = self.to_images(x)
        single = isinstance(x, str | os.PathLike) or is_picture(x) or np.ndim(x) == 2
        probabilities = self.calibrated_probabilities(images)
        predictions = [
            Prediction(
                digit=int(row.argmax()),
                confidence=float(row.max()),
                probabilities=[float(p) for p in row],
                unsure=bool(row.max() < self.unsure_threshold or no_digit),
            )
            for row, no_digit in zip(probabilities, without_digit(images), strict=True)
        ]
        return predictions[0] if single else predictions


def is_picture(x) -> bool:
    """A PIL image (or anything like one)."""
    return hasattr(x, "convert") and hasattr(x, "size") and hasattr(x, "load")


def load_line_models(models: str | os.PathLike, threads: int = 0) -> list[LineModel]:
    """The line models named in `models` (one name or file, or several separated by LINE_MODEL_SEPARATOR)."""
    names = [name.strip() for name in str(models).split(LINE_MODEL_SEPARATOR) if name.strip()]
    if not names:
        raise DigitrecError(f"{models!r}: no line model named")
    return [load_line_model(name, threads) for name in names]


def load_line_model(model: str | os.PathLike, threads: int = 0) -> LineModel:
    """The reader's line model (shipped name or ONNX file; always on onnxruntime) as a LineModel callable."""
    network = load_network(model, DEFAULT_BACKEND, threads)
    architecture = network.metadata.get("config", {}).get("model")
    if network.metadata.get("num_classes") != LINE_CLASSES or architecture not in LINE_MODELS:
        raise DigitrecError(
            f"{model}: not a line model (expected one of {', '.join(LINE_MODELS)} with {LINE_CLASSES} classes)"
        )
    return network.logits


def load_piece_scorer(model: str | os.PathLike, backend: str = DEFAULT_BACKEND, threads: int = 0) -> PieceScorer:
    """The reader's piece scorer from a piece model (shipped name, ONNX file or checkpoint)."""
    network = load_network(model, backend, threads)
    classes = network.metadata.get("num_classes")
    if classes != PIECE_CLASSES:
        raise DigitrecError(f"{model}: not a piece model ({classes} classes, expected {PIECE_CLASSES})")
    return piece_model_scorer(network.logits)
