"""The public API: `Recognizer.load()` then `.predict(x)`, with calibrated confidence and an "unsure" flag.

from digitrec import Recognizer
recognizer = Recognizer.load()            # the model shipped in the package
result = recognizer.predict(image_28x28)  # -> Prediction(digit, confidence, probabilities, unsure)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from digitrec.errors import DigitrecError
from digitrec.evaluation.report import average_over_views, predict_logits, test_time_views
from digitrec.images.normalize import to_model_inputs
from digitrec.images.photo import photo_file_to_mnist, photo_to_mnist
from digitrec.reading.pieces import load_piece_scorer
from digitrec.reading.reader import read_number
from digitrec.reading.results import NumberReading
from digitrec.reading.segmentation import PieceScorer, confidence_scorer
from digitrec.training import checkpoint

DEFAULT_UNSURE_THRESHOLD = 0.5  # used when a checkpoint carries no calibrated threshold


SHIPPED_PIECE_MODEL = "piece-scorer"  # the reader's piece model shipped in the package (digitrec.reading.pieces)


BACKENDS = ("torch", "onnx")


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
        model: torch.nn.Module,
        metadata: dict,
        temperature: float = 1.0,
        unsure_threshold: float = DEFAULT_UNSURE_THRESHOLD,
        onnx_session=None,
        views: list[tuple[float, float]] | None = None,
        piece_scorer: PieceScorer | None = None,
    ) -> None:
        self.model = model
        self.metadata = metadata
        self.normalization = metadata["config"]["normalization"]
        self.image_size = metadata["image_size"]
        self.temperature = temperature
        self.unsure_threshold = unsure_threshold
        self.onnx_session = onnx_session
        self.views = list(views or [])  # test-time augmentation views; [] reads each image once
        # rates the candidate pieces of a line when reading numbers; None: this classifier's quick confidence
        self.piece_scorer = piece_scorer

    @classmethod
    def load(
        cls,
        model: str | os.PathLike = "default",
        backend: str = "torch",
        tta: bool = True,
        pieces: str | os.PathLike | None = SHIPPED_PIECE_MODEL,
    ) -> Recognizer:
        """A checkpoint path, a run folder, or "default" (the model shipped in the package).

        `tta=False` reads each image once instead of through the model's test-time views (faster, a little less
        accurate; the calibration was fit with the views). `pieces` is the piece model `read` cuts lines with (the
        shipped one, a checkpoint, or None: the classifier's own confidence)."""
        if backend not in BACKENDS:
            raise DigitrecError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
        path = checkpoint.resolve_model_path(model)
        torch_model, metadata = checkpoint.load_model(path)
        calibration = metadata.get("calibration", {})
        session = None
        if backend == "onnx":
            from digitrec.training.export import onnx_session_for

            session = onnx_session_for(torch_model, metadata)
        return cls(
            torch_model,
            metadata,
            temperature=calibration.get("temperature", 1.0),
            unsure_threshold=calibration.get("unsure_threshold", DEFAULT_UNSURE_THRESHOLD),
            onnx_session=session,
            views=test_time_views(metadata, tta),
            piece_scorer=load_piece_scorer(checkpoint.resolve_model_path(pieces)) if pieces else None,
        )

    @property
    def backend(self) -> str:
        return "onnx" if self.onnx_session is not None else "torch"

    def to_images(self, x) -> np.ndarray:
        """Validate the input once, at the edge: uint8 `(N, H, W)` images."""
        if isinstance(x, str | os.PathLike):  # a photo or scan of one digit: the photo pipeline (preprocess.py)
            return photo_file_to_mnist(Path(x), self.image_size)[None]
        if hasattr(x, "convert") and hasattr(x, "size"):  # a PIL image
            return photo_to_mnist(x, self.image_size)[None]
        array = np.asarray(x)
        size = self.image_size
        if array.ndim not in (2, 3) or array.shape[-2:] != (size, size):
            raise DigitrecError(
                f"expected a {size}x{size} image or a batch of shape (N, {size}, {size}), got shape {array.shape}"
            )
        if array.ndim == 2:
            array = array[None]
        if array.dtype != np.uint8:
            if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
                raise DigitrecError(f"expected numeric pixels, got dtype {array.dtype} or non-finite values")
            scale = 255.0 if array.max() <= 1.0 else 1.0  # floats in [0, 1] are taken as fractions of white
            array = np.clip(np.rint(array * scale), 0, 255).astype(np.uint8)
        return array

    def logits(self, images: np.ndarray, views: list[tuple[float, float]] | None = None) -> torch.Tensor:
        """Logits of uint8 images `(N, H, W)` through `views` (default: the model's test-time views)."""
        views = self.views if views is None else views
        return average_over_views(self.raw_logits, to_model_inputs(images, self.normalization), views)

    def raw_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """The model's logits of model-ready inputs `(N, C, H, W)`, on the chosen backend."""
        if self.onnx_session is not None:
            from digitrec.training.export import onnx_logits

            return torch.from_numpy(onnx_logits(self.onnx_session, inputs.numpy()))
        return predict_logits(self.model, inputs)

    def predict_proba(self, x) -> np.ndarray:
        """Calibrated class probabilities `(N, classes)`."""
        return self.calibrated_probabilities(self.to_images(x))

    def calibrated_probabilities(self, images: np.ndarray, views: list | None = None) -> np.ndarray:
        return torch.softmax(self.logits(images, views) / self.temperature, dim=1).numpy()

    def quick_probabilities(self, images: np.ndarray) -> np.ndarray:
        """One look per image, without the test-time views: for scoring many candidate pieces fast."""
        return self.calibrated_probabilities(images, views=[])

    def read(self, x) -> NumberReading:
        """Every digit in a photo, scan or drawing of one or more numbers (path, PIL image or array), in lines of
        writing read left to right: `.text`, `.digits` (digit, confidence, box, unsure), `.lines`, `.separators`."""
        if isinstance(x, str | os.PathLike):
            from digitrec.images.files import read_single_image

            x = read_single_image(x).image
        return read_number(
            x,
            self.calibrated_probabilities,
            self.unsure_threshold,
            self.image_size,
            score_pieces=self.piece_scorer or confidence_scorer(self.quick_probabilities),
        )

    def predict(self, x) -> Prediction | list[Prediction]:
        """One Prediction for one image (array, path or PIL image); a list for a batch `(N, H, W)`."""
        single = isinstance(x, str | os.PathLike) or hasattr(x, "convert") or np.asarray(x).ndim == 2
        probabilities = self.predict_proba(x)
        predictions = [
            Prediction(
                digit=int(row.argmax()),
                confidence=float(row.max()),
                probabilities=[float(p) for p in row],
                unsure=bool(row.max() < self.unsure_threshold),
            )
            for row in probabilities
        ]
        return predictions[0] if single else predictions
