"""Export: ONNX (checked against torch with onnxruntime) and weights-only checkpoints for shipping."""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch
from torch import nn

from digitrec.errors import DigitrecError
from digitrec.fileio import write_bytes_atomic, write_json_atomic
from digitrec.inference.views import model_views
from digitrec.model_files import METADATA_KEY, ONNX_INPUT, ONNX_OUTPUT
from digitrec.models.registry import model_entry
from digitrec.training import checkpoint

ONNX_OPSET = 17
ONNX_METADATA_KEYS = ("config", "num_classes", "image_size", "calibration")  # what recognition reads of a model


def input_channels(model: nn.Module) -> int:
    """Channels of the model's input: those of its first convolution (1 for a classifier, 2 for the piece model)."""
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels


def traced_onnx(model: nn.Module, example: torch.Tensor, dynamic_axes: dict[str, dict[int, str]]) -> bytes:
    """`model` as ONNX (TorchScript-based exporter, traced on `example`), its input and output named ONNX_INPUT and
    ONNX_OUTPUT, with `dynamic_axes` ({ONNX_INPUT or ONNX_OUTPUT: {axis: name}})."""
    model = model.eval().to(memory_format=torch.contiguous_format)
    buffer = io.BytesIO()
    torch.onnx.export(
        model, (example,), buffer, input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT], opset_version=ONNX_OPSET,
        dynamic_axes=dynamic_axes, dynamo=False,
    )  # fmt: skip
    return buffer.getvalue()


def onnx_bytes(model: nn.Module, metadata: dict) -> bytes:
    """The model as ONNX, with a dynamic batch axis."""
    size = metadata["image_size"]
    example = torch.zeros(1, input_channels(model), size, size)
    return traced_onnx(model, example, {ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}})


def recognition_metadata(metadata: dict) -> dict:
    """What an ONNX model carries: how to feed it, its calibration, its test-time views (resolved from its recipe
    when the checkpoint recorded none) and its test accuracy."""
    keep = {k: metadata[k] for k in ONNX_METADATA_KEYS if k in metadata}
    recipe_views = model_entry(metadata["config"]["model"]).test_time_views
    keep["inference"] = {"test_time_views": [list(view) for view in model_views(metadata, recipe_views)]}
    if "test_accuracy" in metadata.get("summary", {}):
        keep["summary"] = {"test_accuracy": metadata["summary"]["test_accuracy"]}
    return keep


def embedded_metadata(onnx_model_bytes: bytes, metadata: dict) -> bytes:
    """The ONNX model with `metadata` as JSON under METADATA_KEY (what recognition reads of it), checked."""
    import onnx

    proto = onnx.load_from_string(onnx_model_bytes)
    proto.metadata_props.add(key=METADATA_KEY, value=json.dumps(metadata))
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def with_metadata(onnx_model_bytes: bytes, metadata: dict) -> bytes:
    return embedded_metadata(onnx_model_bytes, recognition_metadata(metadata))


def export_onnx(model_path, out_path: Path) -> Path:
    model, metadata = checkpoint.load_model(model_path)
    write_bytes_atomic(Path(out_path), with_metadata(onnx_bytes(model, metadata), metadata))
    return Path(out_path)


CARD_KEYS = ("config", "num_classes", "image_size", "summary", "calibration", "history")


def export_weights(model_path, out_path: Path, extra_metadata: dict | None = None) -> Path:
    """A weights-only copy of a checkpoint (no optimizer state), e.g. for shipping in the package, with a JSON
    card beside it (`NAME.json`: config, history, test summary, calibration, parameter count)."""
    out_path = Path(out_path)
    model, metadata = checkpoint.load_model(model_path)
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
