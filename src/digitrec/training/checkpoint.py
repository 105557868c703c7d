"""Checkpoints: safetensors tensors with the run's JSON metadata in the file's header.

One file per checkpoint, written atomically (temp file + rename), so a crash leaves the previous one intact.
Loading never runs code: safetensors holds only tensors, the metadata is plain JSON.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from digitrec.errors import DigitrecError, one_line
from digitrec.fileio import atomic_path
from digitrec.model_files import METADATA_KEY, resolve_model_path
from digitrec.models.registry import build_model

MODEL_PREFIX = "model."
OPTIMIZER_PREFIX = "optimizer."
MAX_SCHEMA_INT = 4096  # classes and image sides: anything larger is not one of ours


def flatten_optimizer_state(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state dict into tensors (for safetensors) and the JSON-able rest."""
    tensors, plain_state = {}, {}
    for param_id, param_state in state_dict["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{OPTIMIZER_PREFIX}{param_id}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain_state.setdefault(str(param_id), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "plain_state": plain_state}


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], plain: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        param_id, key = name[len(OPTIMIZER_PREFIX) :].split(".", 1)
        state.setdefault(int(param_id), {})[key] = value
    for param_id, values in plain.get("plain_state", {}).items():
        state.setdefault(int(param_id), {}).update(values)
    return {"state": state, "param_groups": plain["param_groups"]}


def save_checkpoint(path: Path, model: nn.Module, metadata: dict, optimizer_state: dict | None = None) -> None:
    """Model weights (+ optimizer state, for resuming) and metadata in one safetensors file, atomically."""
    tensors = {MODEL_PREFIX + k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = dict(metadata)
    if optimizer_state is not None:
        optimizer_tensors, optimizer_plain = flatten_optimizer_state(optimizer_state)
        tensors.update(optimizer_tensors)
        metadata["optimizer_state"] = optimizer_plain
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(metadata)})


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) of a checkpoint file; a damaged or foreign file gives a one-line error."""
    path = resolve_model_path(path)
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
        metadata = json.loads(header[METADATA_KEY])
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError, ValueError) as exc:
        raise DigitrecError(f"{path}: not a readable digitrec checkpoint ({type(exc).__name__}: {exc})") from None
    problem = metadata_problem(metadata)
    if problem:
        raise DigitrecError(f"{path}: not a digitrec checkpoint ({problem})")
    return tensors, metadata


def metadata_problem(metadata) -> str | None:
    """What is wrong with a checkpoint's metadata against the schema every digitrec checkpoint has, or None."""
    if not isinstance(metadata, dict):
        return f"its metadata is a {type(metadata).__name__}, not an object"
    if not isinstance(metadata.get("config"), dict) or not isinstance(metadata["config"].get("model"), str):
        return "its metadata has no config with a model name"
    for key in ("num_classes", "image_size"):
        value = metadata.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SCHEMA_INT:
            return f"{key} is {value!r}, not a positive whole number"
    for key, kind in (("history", list), ("optimizer_state", dict), ("calibration", dict), ("summary", dict)):
        if key in metadata and not isinstance(metadata[key], kind):
            return f"{key} is a {type(metadata[key]).__name__}, not a {kind.__name__}"
    if any(not isinstance(record, dict) for record in metadata.get("history", [])):
        return "its history holds something other than epoch records"
    return None


def model_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len(MODEL_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}


def optimizer_state(tensors: dict[str, torch.Tensor], metadata: dict) -> dict | None:
    if "optimizer_state" not in metadata:
        return None
    optimizer_tensors = {k: v for k, v in tensors.items() if k.startswith(OPTIMIZER_PREFIX)}
    try:
        return unflatten_optimizer_state(optimizer_tensors, metadata["optimizer_state"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DigitrecError(f"the checkpoint's optimizer state is not a digitrec run's ({one_line(exc)})") from None


def check_classifier(path, metadata: dict) -> None:
    """A digit classifier's checkpoint (what evaluate, calibrate and resume need), not a piece model's or other."""
    from digitrec.training.config import TrainConfig

    missing = [key for key in ("dataset", "normalization") if key not in metadata["config"]]
    if missing or "piece_config" in metadata:
        raise DigitrecError(f"{path}: not a digit classifier's checkpoint (a piece model, or no {', '.join(missing)})")
    try:
        TrainConfig.from_dict(metadata["config"])
    except DigitrecError as exc:
        raise DigitrecError(f"{path}: not a digit classifier's checkpoint ({exc})") from None


def load_model(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Rebuild a checkpoint's model from its registry name and load its weights (eval mode)."""
    tensors, metadata = read_checkpoint(path)
    try:
        config = metadata["config"]
        model = build_model(config["model"], num_classes=metadata["num_classes"], image_size=metadata["image_size"])
        model.load_state_dict(model_state(tensors))
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise DigitrecError(f"{path}: checkpoint does not match its model ({one_line(exc)})") from None
    model.eval()
    return model, metadata
