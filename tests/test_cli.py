"""The `digitrec` command: help, exit codes, one-line errors, train -> evaluate agreement."""

import json
import os
import subprocess
import sys

import pytest

from digitrec.cli import main

SMALL_ARGS = ["--train-subset", "3000", "--validation-size", "500", "--epochs", "1"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["models"]])
def test_help_exits_zero(capsys, command):
    with pytest.raises(SystemExit) as caught:
        main([*command, "--help"])
    assert caught.value.code == 0
    assert "usage: digitrec" in capsys.readouterr().out


def test_models_lists_the_paper_cases_as_json(capsys):
    code, out, _ = run_cli(capsys, "models", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert code == 0 and {f"paper-case{i}" for i in range(1, 9)} <= set(rows)
    assert rows["paper-case1"]["parameters"] == 81_066


def test_train_then_evaluate_agree_to_the_last_digit(capsys, tmp_path, mnist_dir):
    out_dir = tmp_path / "run"
    code, out, _ = run_cli(capsys, "train", *SMALL_ARGS, "--data-dir", str(mnist_dir), "--out", str(out_dir))
    assert code == 0
    assert "s/epoch" in out and "img/s" in out
    trained_line = next(line for line in out.splitlines() if line.startswith("test accuracy:"))

    code, out, _ = run_cli(capsys, "evaluate", str(out_dir), "--data-dir", str(mnist_dir))
    assert code == 0 and out.splitlines()[0] == trained_line
    assert (out_dir / "report" / "confusion_matrix.png").stat().st_size > 1000
    assert (out_dir / "report" / "misclassified.png").exists()

    code, out, _ = run_cli(capsys, "evaluate", str(out_dir), "--data-dir", str(mnist_dir), "--json")
    report = json.loads(out)
    trained = json.loads((out_dir / "run.json").read_text())["summary"]["test_accuracy"]
    assert report["accuracy"] == trained and report["total"] == 10_000
    assert sum(map(sum, report["confusion_matrix"])) == 10_000
    assert set(report["per_class"]) == {str(d) for d in range(10)}


def test_truncated_data_file_exits_2_names_the_file_and_writes_nothing(mnist_copy, tmp_path):
    victim = mnist_copy / "train-images-idx3-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    out_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "digitrec", "train", "--model", "paper-case1", "--epochs", "1", "--out", str(out_dir)],
        env=os.environ | {"DIGITREC_DATA": str(mnist_copy)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(victim) in lines[0] and "truncated" in lines[0]
    assert not out_dir.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "no/such/checkpoint.safetensors"], "no such checkpoint file"),
        (["train", "--model", "lenet-9000"], "unknown model 'lenet-9000'"),
        (["train", "--epochs", "0"], "epochs must be >= 1"),
        (["train", "--config", "missing.toml"], "cannot read config"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(capsys, argv, message):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and message in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["predict", "--threads", "-3"], "predict: error: argument --threads: expected a number of at least 1, got -3"),
        (["predict", "--threads", "many"], "predict: error: argument --threads: expected a whole number, got 'many'"),
        (["predict", "--no-such-flag"], "digitrec: error: unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_flags_are_one_line_errors_with_exit_2(tmp_path, mnist_test, argv, message):
    from PIL import Image

    digit = tmp_path / "x.png"
    Image.fromarray(mnist_test.images[0]).save(digit)
    result = subprocess.run([sys.executable, "-m", "digitrec", *argv, str(digit)], capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("digitrec") and message in lines[0], lines


def test_garbage_checkpoint_exits_2(capsys, tmp_path):
    bogus = tmp_path / "model.safetensors"
    bogus.write_bytes(b"\x00" * 64)
    code, _, err = run_cli(capsys, "evaluate", str(bogus))
    assert code == 2 and "not a readable digitrec checkpoint" in err


def test_print_config_shows_the_models_defaults_as_toml(capsys):
    code, out, _ = run_cli(capsys, "train", "--model", "paper-case8", "--epochs", "3", "--print-config")
    assert code == 0
    assert 'model = "paper-case8"' in out and "epochs = 3" in out and "l2_first_conv = 0.01" in out


def test_evaluate_several_checkpoints_as_an_ensemble(capsys, tiny_checkpoint, mnist_dir, tmp_path):
    single_code, single_out, _ = run_cli(capsys, "evaluate", str(tiny_checkpoint), "--data-dir", str(mnist_dir),
                                         "--json", "--report-dir", str(tmp_path / "one"))  # fmt: skip
    pair_code, pair_out, _ = run_cli(capsys, "evaluate", str(tiny_checkpoint), str(tiny_checkpoint), "--data-dir",
                                     str(mnist_dir), "--json", "--report-dir", str(tmp_path / "two"))  # fmt: skip
    single, pair = json.loads(single_out), json.loads(pair_out)
    assert single_code == pair_code == 0
    assert pair["model"].startswith("ensemble of 2") and pair["accuracy"] == single["accuracy"]


def test_output_folders_that_cannot_be_written_are_one_line_errors(tmp_path, capsys):
    """--debug-dir / --annotate naming a file, or a place nothing can be written: one line, exit 2, nothing read."""
    from tests.conftest import REPO_ROOT

    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    example = str(REPO_ROOT / "examples" / "photo-4-clean.png")
    for argv in (
        ["predict", example, "--debug-dir", str(a_file)],
        ["read", example, "--annotate", str(a_file)],
        ["predict", example, "--debug-dir", "/proc/digitrec-nowhere"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "cannot write output files there" in err, err


def test_a_file_name_with_a_newline_stays_one_table_row(tmp_path, capsys):
    from tests.conftest import REPO_ROOT

    odd = tmp_path / "line\nbreak.png"
    odd.write_bytes((REPO_ROOT / "examples" / "photo-4-clean.png").read_bytes())
    assert main(["predict", str(odd)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 2 and "line\\nbreak.png" in out  # the header and one row
