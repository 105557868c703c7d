"""Checkpoints: safetensors + JSON metadata round trip, optimizer state, damaged files, atomic writes."""

from pathlib import Path

import pytest
import torch

from digitrec import model_files
from digitrec.errors import DigitrecError
from digitrec.models.registry import build_model
from digitrec.training import checkpoint


def trained_a_little(model, steps=3):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        loss = model(torch.rand(4, 1, 28, 28, generator=generator)).logsumexp(1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return optimizer


def test_round_trip_restores_weights_optimizer_and_metadata(tmp_path: Path):
    model = build_model("paper-case2")
    optimizer = trained_a_little(model)
    metadata = {"config": {"model": "paper-case2"}, "num_classes": 10, "image_size": 28, "note": "ß ✓"}
    path = tmp_path / "c.safetensors"
    checkpoint.save_checkpoint(path, model, metadata, optimizer.state_dict())

    loaded, loaded_metadata = checkpoint.load_model(path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert loaded_metadata["note"] == "ß ✓" and not loaded.training

    tensors, meta = checkpoint.read_checkpoint(path)
    fresh = build_model("paper-case2")
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    fresh_optimizer.load_state_dict(checkpoint.optimizer_state(tensors, meta))
    original, restored = optimizer.state_dict(), fresh_optimizer.state_dict()
    for param_id, state in original["state"].items():
        for key, value in state.items():
            assert torch.equal(restored["state"][param_id][key], value)
    assert restored["param_groups"][0]["lr"] == original["param_groups"][0]["lr"]


def test_damaged_checkpoint_is_a_one_line_error_naming_the_file(tmp_path: Path):
    path = tmp_path / "c.safetensors"
    checkpoint.save_checkpoint(path, build_model("paper-case1"), {"config": {"model": "paper-case1"}})
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DigitrecError, match=f"{path}: not a readable digitrec checkpoint") as caught:
        checkpoint.load_model(path)
    assert "\n" not in str(caught.value)


def test_run_folder_resolves_to_its_checkpoint_and_missing_file_is_clear(tmp_path: Path):
    with pytest.raises(DigitrecError, match="no such checkpoint"):
        model_files.resolve_checkpoint_path(tmp_path / "nope.safetensors")
    (tmp_path / model_files.CHECKPOINT_NAME).write_bytes(b"x")
    assert model_files.resolve_checkpoint_path(tmp_path) == tmp_path / model_files.CHECKPOINT_NAME


def test_failed_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch):
    path = tmp_path / "c.safetensors"
    model = build_model("paper-case1")
    checkpoint.save_checkpoint(path, model, {"config": {"model": "paper-case1"}, "num_classes": 10, "image_size": 28})
    before = path.read_bytes()

    def crash_midway(tensors, filename, metadata):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", crash_midway)
    with pytest.raises(OSError):
        checkpoint.save_checkpoint(path, model, {"config": {}})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]
