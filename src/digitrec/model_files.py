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
METADATA_KEY = "digitrec"  # the JSON metadata's key, in a checkpoint's safetensors header and in an ONNX model
CHECKPOINT_SUFFIX = ".safetensors"
ONNX_SUFFIX = ".onnx"
CHECKPOINT_NAME = "checkpoint.safetensors"  # inside a run folder
BACKENDS = ("onnx", "torch")  # what runs a model: onnxruntime (the default, no torch needed) or torch
DEFAULT_BACKEND = BACKENDS[0]


def shipped_model(name: str | os.PathLike, suffix: str) -> Path | None:
    """The shipped file of the model named `name` in the given format, or None if `name` names none."""
    if isinstance(name, str) and name and os.sep not in name and "/" not in name:
        path = WEIGHTS_DIR / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def resolve_checkpoint_path(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run folder holding `checkpoint.safetensors`."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise DigitrecError(f"{path}: no such checkpoint file")
    return path


def resolve_model_path(model: str | os.PathLike, suffix: str = CHECKPOINT_SUFFIX) -> Path:
    """A shipped model's name ("default") or a model file / run folder -> the file (shipped: in format `suffix`)."""
    shipped = shipped_model(model, suffix)
    if shipped is not None:
        return shipped
    if model in (DEFAULT_MODEL, SHIPPED_PIECE_MODEL):
        raise DigitrecError(
            f"the shipped model {model!r} is missing from the package ({WEIGHTS_DIR}); reinstall digitrec"
        )
    if str(model).endswith(ONNX_SUFFIX):
        if not Path(model).is_file():
            raise DigitrecError(f"{model}: no such model file")
        return Path(model)
    return resolve_checkpoint_path(model)
