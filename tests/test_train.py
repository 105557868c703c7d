"""Training on the real MNIST: it learns, it can overfit a batch, it resumes exactly, its config is strict."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from digitrec import model_files
from digitrec.errors import DigitrecError
from digitrec.training import checkpoint
from digitrec.training.config import TrainConfig
from digitrec.training.loop import fit, learning_rate_at, prepare_training_data, train_epoch

SMALL = {"train_subset": 4000, "validation_size": 500, "test_subset": 2000}


def test_short_run_on_real_mnist_learns(tmp_path, mnist_dir):
    config = TrainConfig.for_model("paper-case1", epochs=2, **(SMALL | {"train_subset": 8000}))
    result = fit(config, tmp_path / "run", data_dir=mnist_dir, progress=False)
    # 7,500 training images, 2 epochs, the report's network and settings: seeds 0, 1, 2 measured 92.4%, 89.9%,
    # 92.4% on the first 2,000 test images (seed 0 is used here)
    assert result.test_accuracy >= 0.90
    assert result.history[1].train_loss < result.history[0].train_loss
    assert (tmp_path / "run" / "run.json").exists()
    assert set(result.summary) >= {"min_train_accuracy", "max_train_accuracy", "max_validation_accuracy"}


def test_model_can_overfit_one_batch(mnist_dir):
    config = TrainConfig.for_model("paper-case2", epochs=60, batch_size=32, train_subset=32, validation_size=0,
                                   normalization="unit")  # fmt: skip
    data = prepare_training_data(config, mnist_dir)
    torch.manual_seed(0)
    from digitrec.models.registry import build_model
    from digitrec.training.loop import make_optimizer

    model = build_model(config.model)
    optimizer = make_optimizer(config, model.parameters())
    accuracy = 0.0
    for epoch in range(config.epochs):
        _, accuracy, _ = train_epoch(model, optimizer, config, data, epoch, progress=False)
    assert accuracy == 1.0


def test_resume_after_interruption_ends_exactly_like_an_uninterrupted_run(tmp_path, mnist_dir):
    config = TrainConfig.for_model("paper-case7", epochs=3, **SMALL)  # L2 + rotation: every random path used
    whole = fit(config, tmp_path / "whole", data_dir=mnist_dir, progress=False)

    def stop_after_first_epoch(record):
        if record.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(config, tmp_path / "cut", data_dir=mnist_dir, progress=False, on_epoch_end=stop_after_first_epoch)
    with pytest.raises(DigitrecError, match="already holds a run"):
        fit(config, tmp_path / "cut", data_dir=mnist_dir, progress=False)
    resumed = fit(config, tmp_path / "cut", data_dir=mnist_dir, progress=False, resume=True)

    assert resumed.test_accuracy == whole.test_accuracy
    assert [r.train_loss for r in resumed.history] == [r.train_loss for r in whole.history]
    a, _ = checkpoint.load_model(whole.checkpoint_path)
    b, _ = checkpoint.load_model(resumed.checkpoint_path)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_resume_refuses_a_different_config(tmp_path, mnist_dir):
    config = TrainConfig.for_model("paper-case1", epochs=1, **SMALL)
    fit(config, tmp_path / "run", data_dir=mnist_dir, progress=False)
    other = TrainConfig.for_model("paper-case1", epochs=1, **(SMALL | {"seed": 5}))
    with pytest.raises(DigitrecError, match="config differs in: seed"):
        fit(other, tmp_path / "run", data_dir=mnist_dir, progress=False, resume=True)


def test_kill_9_mid_run_then_resume_matches_uninterrupted(tmp_path, mnist_dir):
    # 2 epochs of 3,000: killed after the first checkpoint, the resumed process does the second (the in-process
    # resume test above crosses two epochs after the cut)
    args = ["--model", "paper-case5", "--epochs", "2", "--train-subset", "3000", "--validation-size", "500",
            "--test-subset", "2000", "--json"]  # fmt: skip
    env = os.environ | {"DIGITREC_DATA": str(mnist_dir)}
    command = [sys.executable, "-m", "digitrec", "train", *args]
    reference = subprocess.run([*command, "--out", str(tmp_path / "whole")], env=env, capture_output=True, text=True)
    assert reference.returncode == 0, reference.stderr

    victim = subprocess.Popen([*command, "--out", str(tmp_path / "cut")], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    ckpt = tmp_path / "cut" / model_files.CHECKPOINT_NAME
    deadline = time.monotonic() + 300
    while not ckpt.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert ckpt.exists(), "the run should have written its first checkpoint before being killed"
    _, metadata = checkpoint.read_checkpoint(ckpt)
    assert metadata["epochs_done"] == 1, "the kill should land mid-run"

    resumed = subprocess.run([*command, "--out", str(tmp_path / "cut"), "--resume"], env=env, capture_output=True,
                             text=True)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    import json

    assert json.loads(resumed.stdout)["accuracy"] == json.loads(reference.stdout)["accuracy"]


def test_config_file_and_model_defaults(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('model = "paper-case7"\nepochs = 3\nlearning_rate = 0.002\n')
    config = TrainConfig.from_file(path, seed=4)
    assert (config.epochs, config.learning_rate, config.seed) == (3, 0.002, 4)
    assert (config.l2_first_conv, config.rotation_deg, config.batch_size) == (0.01, 10.0, 32)  # case 7's own
    assert TrainConfig.from_dict(__import__("tomllib").loads(config.to_toml())) == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epochs = 0\n", "epochs must be >= 1"),
        ("epoch = 3\n", "unknown field"),
        ('epochs = "three"\n', "epochs must be int"),
        ('optimizer = "lbfgs"\n', "optimizer must be one of"),
        ("epochs = [\n", "cannot read config"),
    ],
)
def test_bad_config_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(DigitrecError, match=message) as caught:
        TrainConfig.from_file(path)
    assert "\n" not in str(caught.value)


def test_learning_rate_schedules():
    constant = TrainConfig(epochs=2, learning_rate=0.1)
    assert learning_rate_at(constant, 150, 100) == 0.1
    onecycle = TrainConfig(epochs=4, learning_rate=0.1, schedule="onecycle")
    assert learning_rate_at(onecycle, 100, 100) == pytest.approx(0.1)  # peak at 25% of 400 steps
    assert learning_rate_at(onecycle, 0, 100) == pytest.approx(0.1 / 25)
    assert learning_rate_at(onecycle, 400, 100) < 1e-6
    cosine = TrainConfig(epochs=2, learning_rate=0.1, schedule="cosine")
    assert learning_rate_at(cosine, 100, 100) == pytest.approx(0.05)
    stepped = TrainConfig(epochs=3, learning_rate=1.0, step_gamma=0.7)
    assert learning_rate_at(stepped, 250, 100) == pytest.approx(0.49)


def test_run_folder_is_not_created_when_data_is_bad(tmp_path, mnist_copy):
    (mnist_copy / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    config = TrainConfig.for_model("paper-case1", epochs=1)
    with pytest.raises(DigitrecError, match="t10k-images-idx3-ubyte.gz: corrupt or truncated gzip"):
        fit(config, tmp_path / "run", data_dir=mnist_copy, progress=False)
    assert not (tmp_path / "run").exists()


def test_configs_saved_before_a_field_existed_still_match():
    config = TrainConfig.for_model("paper-case5", epochs=20)
    saved = config.to_dict()
    del saved["channels_last"], saved["shear_deg"]  # as written by an older digitrec
    assert config.matches(saved)
    assert not TrainConfig.for_model("paper-case5", epochs=19).matches(saved)
    assert not config.matches({"model": "paper-case5", "epochs": "twenty"})
