"""Where models live: the ones shipped in the package (by name) and checkpoints or run folders (by path).

Both flows use this: training writes and reads `.safetensors` checkpoints, recognition runs the shipped `.onnx`
copies. Nothing here imports torch or onnxruntime.
"""

from __future__ import annotations

import os
from pathlib import Path

from digitrec.errors import DigitrecError

WEIGHTS_DIR = Path(__file__).parent / "weights"  # models shipped inside the package
DEFAULT_MODEL = "default"  # the shipped classifier
SHIPPED_PIECE_MODEL = "piece-scorer"  # the shipped piece model the reader cuts lines with (digitrec.reading.pieces)
# The shipped line models that read lines beside the reader's cut digits (reading.line_model), their views pooled:
# all learnt lines written as amounts are (round sums, latin flags), 80% of them scanned as cheque fields and
# binarized by the reader: one also on clean drawn lines; one fine-tuned from `line-reader-amounts` on amounts and
# drawn lines; `line-reader-amounts`; one fine-tuned from a latin-style model (docs/realworld.md, docs/model-card.md)
SHIPPED_LINE_MODELS = (
    "line-reader-mixed",
    "line-reader-amounts-mixft",
    "line-reader-amounts",
    "line-reader-amounts-ft",
)
LINE_MODEL_SEPARATOR = ","  # `--lines A,B`: several line models, their views pooled
SHIPPED_LINE_MODEL = LINE_MODEL_SEPARATOR.join(SHIPPED_LINE_MODELS)  # what `read --lines` defaults to
# The line model's architectures (models.registry): LineNet, and LineNet with a bidirectional GRU over the line
LINE_MODEL = "linenet"
LINE_GRU_MODEL = "linenet-gru"
LINE_MODELS = (LINE_MODEL, LINE_GRU_MODEL)
ONNX_INPUT, ONNX_OUTPUT = "images", "logits"  # the input and output names of every ONNX model written and run here
METADATA_KEY = "digitrec"  # the JSON metadata's key, in a checkpoint's safetensors header and in an ONNX model
CHECKPOINT_SUFFIX = ".safetensors"
ONNX_SUFFIX = ".onnx"
CHECKPOINT_NAME = "checkpoint.safetensors"  # inside a run folder
# An adapted model's folder (`digitrec adapt`): the classifier as ONNX and as a checkpoint, its piece model, its card
ADAPTED_CLASSIFIER = "classifier.onnx"
ADAPTED_CHECKPOINT = "classifier.safetensors"
ADAPTED_PIECES = "pieces.onnx"
ADAPTED_CARD = "card.json"
BACKENDS = ("onnx", "torch")  # what runs a model: onnxruntime (the default, no torch needed) or torch
DEFAULT_BACKEND = BACKENDS[0]


def shipped_model(name: str | os.PathLike, suffix: str) -> Path | None:
    """The shipped file of the model named `name` in the given format, or None if `name` names none."""
    if isinstance(name, str) and name and os.sep not in name and "/" not in name:
        path = WEIGHTS_DIR / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def model_folder_file(folder: Path, suffix: str) -> Path:
    """The model file of a folder: an adapted model's classifier, or a training run's checkpoint."""
    adapted = folder / (ADAPTED_CLASSIFIER if suffix == ONNX_SUFFIX else ADAPTED_CHECKPOINT)
    if adapted.is_file():
        return adapted
    if (folder / CHECKPOINT_NAME).is_file():
        return folder / CHECKPOINT_NAME
    raise DigitrecError(
        f"{folder}: not a model folder (no {ADAPTED_CLASSIFIER}, {ADAPTED_CHECKPOINT} or {CHECKPOINT_NAME} in it)"
    )


def adapted_pieces(model: str | os.PathLike) -> Path | None:
    """The piece model inside an adapted model's folder, if `model` is one."""
    path = Path(model) / ADAPTED_PIECES
    return path if Path(model).is_dir() and path.is_file() else None


def resolve_checkpoint_path(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a folder holding one (a training run's, or an adapted model's)."""
    path = Path(path)
    if path.is_dir():
        path = model_folder_file(path, CHECKPOINT_SUFFIX)
    if not path.is_file():
        raise DigitrecError(f"{path}: no such checkpoint file")
    return path


def resolve_model_path(model: str | os.PathLike, suffix: str = CHECKPOINT_SUFFIX) -> Path:
    """A shipped model's name ("default") or a model file / run folder -> the file (shipped: in format `suffix`)."""
    shipped = shipped_model(model, suffix)
    if shipped is not None:
        return shipped
    if model in (DEFAULT_MODEL, SHIPPED_PIECE_MODEL, *SHIPPED_LINE_MODELS):
        raise DigitrecError(
            f"the shipped model {model!r} is missing from the package ({WEIGHTS_DIR}); reinstall digitrec"
        )
    if suffix == ONNX_SUFFIX and Path(model).is_dir() and (Path(model) / ADAPTED_CLASSIFIER).is_file():
        return Path(model) / ADAPTED_CLASSIFIER
    if str(model).endswith(ONNX_SUFFIX):
        if not Path(model).is_file():
            raise DigitrecError(f"{model}: no such model file")
        return Path(model)
    return resolve_checkpoint_path(model)
