"""The networks behind a Recognizer: an ONNX model on onnxruntime (the default; shipped in the package), or a
safetensors checkpoint on torch (the `[train]` extra). Both take float32 inputs `(N, C, H, W)` and give logits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from digitrec.errors import DigitrecError
from digitrec.inference.views import model_views
from digitrec.model_files import (
    ADAPTED_CLASSIFIER,
    BACKENDS,
    CHECKPOINT_SUFFIX,
    DEFAULT_BACKEND,
    METADATA_KEY,
    ONNX_INPUT,
    ONNX_OUTPUT,
    ONNX_SUFFIX,
    resolve_model_path,
    shipped_model,
)

ONNX_BATCH_SIZE = 1024  # inputs per onnxruntime run: large enough to be fast, small enough to stay in memory
TRAIN_EXTRA_HINT = "pip install 'digitrec[train]'"


def require_torch(what: str):
    """torch, or a one-line error saying which extra brings it."""
    try:
        import torch
    except ImportError:
        raise DigitrecError(f"{what} needs torch: {TRAIN_EXTRA_HINT}") from None
    return torch


class OnnxNetwork:
    """An onnxruntime session and the model's metadata (stored in the ONNX file, or handed over)."""

    backend = "onnx"

    def __init__(self, session, metadata: dict) -> None:
        self.session = session
        self.metadata = metadata

    @classmethod
    def from_bytes(cls, model: bytes | str, metadata: dict | None = None, threads: int = 0) -> OnnxNetwork:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a damaged or foreign file
            raise DigitrecError(f"{model if isinstance(model, str) else 'model'}: not a readable ONNX model "
                                f"({type(exc).__name__})") from None  # fmt: skip
        if metadata is None:
            stored = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
            try:
                metadata = json.loads(stored) if stored else None
            except json.JSONDecodeError:
                metadata = None
            if not isinstance(metadata, dict) or not {"config", "image_size", "num_classes"} <= metadata.keys():
                raise DigitrecError(f"{model}: an ONNX model without digitrec's metadata (not made by digitrec export)")
        return cls(session, metadata)

    def logits(self, inputs: np.ndarray) -> np.ndarray:
        """Logits of `inputs`, ONNX_BATCH_SIZE at a time (one huge run would hold every layer's activations of all
        of them at once: gigabytes for a few thousand images through five views)."""
        if len(inputs) <= ONNX_BATCH_SIZE:
            return self.run(inputs)
        return np.concatenate(
            [self.run(inputs[k : k + ONNX_BATCH_SIZE]) for k in range(0, len(inputs), ONNX_BATCH_SIZE)]
        )

    def run(self, inputs: np.ndarray) -> np.ndarray:
        return self.session.run([ONNX_OUTPUT], {ONNX_INPUT: np.ascontiguousarray(inputs, dtype=np.float32)})[0]


class TorchNetwork:
    """A checkpoint's torch model."""

    backend = "torch"
    batch_size = 1000

    def __init__(self, model, metadata: dict) -> None:
        self.model = model
        self.metadata = metadata

    def logits(self, inputs: np.ndarray) -> np.ndarray:
        torch = require_torch("the torch backend")
        with torch.inference_mode():
            batches = [
                self.model(torch.from_numpy(np.ascontiguousarray(inputs[k : k + self.batch_size], np.float32)))
                for k in range(0, len(inputs), self.batch_size)
            ]
        return torch.cat(batches).numpy() if batches else np.zeros((0, self.metadata["num_classes"]), np.float32)


def with_recipe_views(metadata: dict) -> dict:
    """A checkpoint's metadata with its test-time views: those it recorded, else its model's recipe's."""
    from digitrec.models.registry import model_entry

    recipe_views = model_entry(metadata["config"]["model"]).test_time_views
    return metadata | {"inference": {"test_time_views": model_views(metadata, recipe_views)}}


def load_network(model: str | os.PathLike, backend: str = DEFAULT_BACKEND, threads: int = 0):
    """A shipped model's name, an ONNX file, or a checkpoint / run folder, on `backend`.

    A checkpoint on the onnx backend is converted in memory (which needs torch, as any checkpoint does)."""
    if backend not in BACKENDS:
        raise DigitrecError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if backend == "onnx":
        onnx_file = shipped_model(model, ONNX_SUFFIX)
        if onnx_file is None and (str(model).endswith(ONNX_SUFFIX) or (Path(model) / ADAPTED_CLASSIFIER).is_file()):
            onnx_file = resolve_model_path(model, ONNX_SUFFIX)
        if onnx_file is not None:
            return OnnxNetwork.from_bytes(str(onnx_file), threads=threads)
    if str(model).endswith(ONNX_SUFFIX):
        raise DigitrecError(f"{model}: an ONNX model runs on the onnx backend, not {backend!r}")
    path = resolve_model_path(model, CHECKPOINT_SUFFIX)
    require_torch(f"{Path(path).name} (a safetensors checkpoint)")
    from digitrec.training.checkpoint import load_model

    torch_model, metadata = load_model(path)
    metadata = with_recipe_views(metadata)
    if backend == "torch":
        return TorchNetwork(torch_model, metadata)
    from digitrec.training.export import onnx_bytes

    return OnnxNetwork.from_bytes(onnx_bytes(torch_model, metadata), metadata, threads=threads)
