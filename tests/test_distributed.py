"""DistributedDataParallel through torchrun: 2 processes on loopback (gloo), against one process."""

import json
import os
import socket
import subprocess
import sys

from digitrec.cli import main
from digitrec.training.checkpoint import read_checkpoint

ARGS = ["--model", "paper-case1", "--epochs", "2", "--train-subset", "6000", "--validation-size", "500",
        "--test-subset", "2000", "--batch-size", "64", "--normalization", "unit", "--json"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_training_matches_one_process_and_loads_in_single_process_tools(tmp_path, mnist_dir, capsys):
    env = os.environ | {"DIGITREC_DATA": str(mnist_dir), "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
                "--master-port", str(free_port())]  # fmt: skip
    ddp_dir, single_dir = tmp_path / "ddp", tmp_path / "single"
    ddp = subprocess.run([*torchrun, "-m", "digitrec", "train", *ARGS, "--out", str(ddp_dir)], env=env,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    reports = [json.loads(line) for line in ddp.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1, "rank 0 alone reports"
    _, metadata = read_checkpoint(ddp_dir / "checkpoint.safetensors")
    assert metadata["world_size"] == 2 and metadata["epochs_done"] == 2

    single = subprocess.run([sys.executable, "-m", "digitrec", "train", *ARGS, "--out", str(single_dir)], env=env,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert single.returncode == 0, single.stderr[-2000:]
    ddp_accuracy, single_accuracy = reports[0]["accuracy"], json.loads(single.stdout)["accuracy"]
    # same total batch (64 = 2 x 32), same data and schedule: seeds 0 measured 90.50% vs 90.85% on 2,000 images
    assert ddp_accuracy > 0.85 and abs(ddp_accuracy - single_accuracy) < 0.02

    assert main(["evaluate", str(ddp_dir), "--data-dir", str(mnist_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == ddp_accuracy
