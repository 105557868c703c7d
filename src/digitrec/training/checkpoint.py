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

from digitrec.errors import DigitrecError
from digitrec.fileio import atomic_path
from digitrec.model_files import METADATA_KEY, resolve_model_path
from digitrec.models.registry import build_model

MODEL_PREFIX = "model."
OPTIMIZER_PREFIX = "optimizer."


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
    return tensors, metadata


def model_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len(MODEL_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}


def optimizer_state(tensors: dict[str, torch.Tensor], metadata: dict) -> dict | None:
    if "optimizer_state" not in metadata:
        return None
    optimizer_tensors = {k: v for k, v in tensors.items() if k.startswith(OPTIMIZER_PREFIX)}
    return unflatten_optimizer_state(optimizer_tensors, metadata["optimizer_state"])


def load_model(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Rebuild a checkpoint's model from its registry name and load its weights (eval mode)."""
    tensors, metadata = read_checkpoint(path)
    try:
        config = metadata["config"]
        model = build_model(config["model"], num_classes=metadata["num_classes"], image_size=metadata["image_size"])
        model.load_state_dict(model_state(tensors))
    except (KeyError, RuntimeError) as exc:
        raise DigitrecError(f"{path}: checkpoint does not match its model ({type(exc).__name__}: {exc})") from None
    model.eval()
    return model, metadata
