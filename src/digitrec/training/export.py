"""Export: ONNX (checked against torch with onnxruntime) and weights-only checkpoints for shipping."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from digitrec.errors import DigitrecError
from digitrec.fileio import write_bytes_atomic, write_json_atomic
from digitrec.training import checkpoint

ONNX_OPSET = 17


ONNX_INPUT, ONNX_OUTPUT = "images", "logits"


def onnx_bytes(model: nn.Module, image_size: int) -> bytes:
    """The model as ONNX (TorchScript-based exporter), with a dynamic batch axis."""
    model = model.eval().to(memory_format=torch.contiguous_format)
    dummy = torch.zeros(1, 1, image_size, image_size)
    buffer = io.BytesIO()
    torch.onnx.export(
        model, (dummy,), buffer, input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT], opset_version=ONNX_OPSET,
        dynamic_axes={ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}}, dynamo=False,
    )  # fmt: skip
    return buffer.getvalue()


def with_metadata(onnx_model_bytes: bytes, metadata: dict) -> bytes:
    import onnx

    proto = onnx.load_from_string(onnx_model_bytes)
    keep = {k: metadata[k] for k in ("config", "num_classes", "image_size", "calibration") if k in metadata}
    proto.metadata_props.add(key=checkpoint.METADATA_KEY, value=json.dumps(keep))
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def export_onnx(model_path, out_path: Path) -> Path:
    model, metadata = checkpoint.load_model(checkpoint.resolve_model_path(model_path))
    write_bytes_atomic(Path(out_path), with_metadata(onnx_bytes(model, metadata["image_size"]), metadata))
    return Path(out_path)


def onnx_session_for(model: nn.Module, metadata: dict, threads: int = 0):
    """An onnxruntime session of the model, built in memory."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(onnx_bytes(model, metadata["image_size"]), options, providers=["CPUExecutionProvider"])


def onnx_logits(session, inputs: np.ndarray) -> np.ndarray:
    return session.run([ONNX_OUTPUT], {ONNX_INPUT: np.ascontiguousarray(inputs, dtype=np.float32)})[0]


CARD_KEYS = ("config", "num_classes", "image_size", "summary", "calibration", "history")


def export_weights(model_path, out_path: Path, extra_metadata: dict | None = None) -> Path:
    """A weights-only copy of a checkpoint (no optimizer state), e.g. for shipping in the package, with a JSON
    card beside it (`NAME.json`: config, history, test summary, calibration, parameter count)."""
    out_path = Path(out_path)
    model, metadata = checkpoint.load_model(checkpoint.resolve_model_path(model_path))
    metadata = {k: v for k, v in metadata.items() if k != "optimizer_state"} | (extra_metadata or {})
    checkpoint.save_checkpoint(out_path, model, metadata)
    card = {k: metadata[k] for k in CARD_KEYS if k in metadata}
    card["parameters"] = sum(p.numel() for p in model.parameters())
    card["weights_file"] = out_path.name
    write_json_atomic(out_path.with_suffix(".json"), card)
    return out_path


FORMATS = {"onnx": export_onnx, "safetensors": export_weights}


def export(model_path, out_path: Path, fmt: str) -> Path:
    if fmt not in FORMATS:
        raise DigitrecError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[fmt](model_path, out_path)
