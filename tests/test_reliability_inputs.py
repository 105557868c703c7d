"""The audit's cases (issue #21) as regression tests, and bounded fuzzing of the decoders and the reader: every
input gives an answer or a one-line DigitrecError (CLI: exit code 2), never another exception, a hang or a
runaway cost. Files are built here, from real MNIST digits where a digit is needed."""

from __future__ import annotations

import ctypes
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import digitrec
from digitrec import DigitrecError, Recognizer
from digitrec.cli import EXIT_BAD_INPUT, main
from digitrec.fileio import remove_stale_temp_files, write_bytes_atomic
from digitrec.images.files import decode_picture, read_bytes, read_images
from digitrec.training.config import TrainConfig

FUZZ_EXAMPLES = 40  # per property; derandomized, so every run tries the same cases
FUZZ_DEADLINE_MS = 10_000  # "no single input past 10 s"
MAX_RSS_BYTES = 2**30  # "no single input past 1 GB"
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES, deadline=FUZZ_DEADLINE_MS, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)  # fmt: skip


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load(tta=False)


def png_of(image: np.ndarray, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=format)
    return buffer.getvalue()


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and all(line.startswith("digitrec: ") for line in err), err
    assert not any("Traceback" in line for line in err)
    return "\n".join(err)


# --- files ---------------------------------------------------------------------------------------------------------


def test_named_pipe_is_refused_without_blocking(tmp_path, capsys):
    fifo = tmp_path / "f.png"
    os.mkfifo(fifo)
    began = time.monotonic()
    assert main(["predict", str(fifo)]) == EXIT_BAD_INPUT
    assert time.monotonic() - began < 30
    assert "not a regular file" in one_line_error(capsys)


def test_device_file_is_refused(capsys):
    assert main(["predict", "/dev/zero"]) == EXIT_BAD_INPUT
    assert "not a regular file" in one_line_error(capsys)


def test_file_over_the_size_limit_is_refused_while_streaming(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + bytes(3 * 2**20))
    with pytest.raises(DigitrecError, match="over the 2 MB limit"):
        read_bytes(big, max_bytes=2 * 2**20)


PR_CAPBSET_DROP = 24  # prctl(2)
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2  # capabilities(7): what lets root read a folder of mode 000
NOBODY = 65534


def without_root_read_override() -> None:
    """preexec_fn: drop the two capabilities from the bounding set, so that the program run next starts without
    them even as root (its uid stays 0: the interpreter, wherever root installed it, still runs)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) refused")


def as_nobody() -> None:
    """preexec_fn: run as the unprivileged user 'nobody' (where root's interpreter is readable to it)."""
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def locked_out(folder: Path):
    """A preexec_fn under which a child process cannot list `folder` (mode 000): none for an ordinary user; as root,
    dropping its read-override capabilities, else becoming nobody. Skips only when neither is possible here."""
    tries = [None] if os.geteuid() != 0 else [without_root_read_override, as_nobody]
    for preexec in tries:
        try:
            probe = subprocess.run([sys.executable, "-c", "import os, sys; os.listdir(sys.argv[1])", str(folder)],
                                   preexec_fn=preexec, capture_output=True, text=True, timeout=60)  # fmt: skip
        except (OSError, subprocess.SubprocessError):  # this way cannot start the interpreter here
            continue
        if probe.returncode != 0 and "PermissionError" in probe.stderr:
            return preexec
    pytest.skip("no way to make a folder unreadable to a child process here (root without CAP_SETPCAP or setuid)")


def test_unreadable_folder_is_reported_and_the_batch_goes_on(mnist_test):
    with tempfile.TemporaryDirectory() as where:  # not tmp_path: that is root's alone (0700), closed to nobody
        folder = Path(where)
        folder.chmod(0o755)
        good = folder / "good.png"
        good.write_bytes(png_of(255 - mnist_test.images[0]))
        locked = folder / "locked"
        locked.mkdir()
        (locked / "x.png").write_bytes(good.read_bytes())
        for path in (good, locked / "x.png"):
            path.chmod(0o644)
        locked.chmod(0)
        try:
            preexec = locked_out(locked)
            source = Path(digitrec.__file__).resolve().parents[1]  # this digitrec, wherever the suite imports it from
            result = subprocess.run(
                [sys.executable, "-m", "digitrec", "predict", str(good), str(locked), str(locked / "x.png")],
                preexec_fn=preexec, capture_output=True, text=True, timeout=300, cwd=where,
                env=os.environ | {"PYTHONPATH": str(source)},
            )  # fmt: skip
        finally:
            locked.chmod(0o755)
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    rows = {Path(line.split()[0]).name: line.split()[1:] for line in result.stdout.splitlines()[1:]}
    assert rows["good.png"][0] == str(mnist_test.labels[0])  # the batch went on past the unreadable folder
    assert "Permission denied" in " ".join(rows["locked"]) and "Permission denied" in " ".join(rows["x.png"])
    assert result.stderr.count("error:") == 2 and "Traceback" not in result.stderr, result.stderr


def test_a_zero_page_pdf_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>"
                      b"endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")  # fmt: skip
    with pytest.raises(DigitrecError) as caught:
        list(read_images(empty))
    assert "Success" not in str(caught.value) and "\n" not in str(caught.value)


def test_pdf_pages_are_rendered_one_at_a_time_within_the_pixel_budget(tmp_path):
    pypdfium2 = pytest.importorskip("pypdfium2")
    document = pypdfium2.PdfDocument.new()
    for _ in range(30):
        document.new_page(200 * 72, 200 * 72)  # 200-inch pages, as in the audit
    path = tmp_path / "huge.pdf"
    document.save(str(path))
    pages = read_images(path)
    assert len(pages) == 30
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    sizes = [source.image.size for source in pages]  # each page freed before the next is drawn
    assert all(width * height <= 200_000_000 / 30 * 1.01 for width, height in sizes)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before < 300 * 2**20


# --- the Python API ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [np.zeros((0, 28, 28)), [[1, 2], [3]], Image.new("L", (0, 0)), None, np.zeros((28, 28), bool),
     np.full((28, 28), "1"), np.full((28, 28), 1 + 1j)],
    ids=["empty-batch", "ragged", "0x0-pil", "none", "bool", "str", "complex"],
)  # fmt: skip
def test_bad_inputs_are_one_line_errors(recognizer, bad):
    for call in (recognizer.predict, recognizer.read):
        with pytest.raises(DigitrecError) as caught:
            call(bad)
        assert "\n" not in str(caught.value)


def test_lazily_opened_truncated_image_is_an_error(recognizer, mnist_test):
    data = png_of(np.kron(255 - mnist_test.images[0], np.ones((8, 8), np.uint8)))
    for call in (recognizer.predict, recognizer.read):
        with pytest.raises(DigitrecError, match="truncated"):
            call(Image.open(io.BytesIO(data[: len(data) // 2])))


@pytest.mark.parametrize("level", [0, 3, 255])
def test_blank_or_all_ink_input_is_never_confident(recognizer, level):
    image = np.full((28, 28), level, np.uint8)
    image[10, 10:14] = 255 - level  # a speck
    assert recognizer.predict(image).unsure


def test_mnist_digits_are_not_flagged_as_blank(recognizer, mnist_test):
    predictions = recognizer.predict(mnist_test.images[:200])
    sure = sum(not p.unsure for p in predictions)
    assert sure >= 190


def test_scattered_specks_are_refused_quickly(recognizer):
    rng = np.random.default_rng(0)
    image = np.full((800, 800), 255, np.uint8)
    for x, y in rng.integers(0, 800, (300, 2)):
        image[max(0, y - 6) : y + 6, max(0, x - 6) : x + 6] = 0  # 38 s to read before the limit
    began = time.monotonic()
    with pytest.raises(DigitrecError, match="too much ink|too many lines"):
        recognizer.read(image)
    assert time.monotonic() - began < 10


def test_reading_past_its_deadline_stops(recognizer, mnist_test):
    line = 255 - np.pad(np.hstack(list(mnist_test.images[:8])), 20)
    with pytest.raises(DigitrecError, match="time limit"):
        recognizer.read(line, deadline=time.monotonic() - 1)


# --- training configs and checkpoints ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [{"learning_rate": float("inf")}, {"learning_rate": float("nan")}, {"seed": -5}, {"seed": 10**20},
     {"weight_decay": -1.0}, {"step_gamma": -2.0}, {"erase_probability": 5.0}, {"rotation_deg": -1e308},
     {"test_subset": 20000}],
)  # fmt: skip
def test_nonsense_config_values_are_refused(overrides):
    with pytest.raises(DigitrecError, match="bad training config"):
        TrainConfig.for_model("paper-case1", **overrides)


def test_config_file_that_is_a_list_is_one_line_error(tmp_path, capsys):
    config = tmp_path / "run.json"
    config.write_text(json.dumps([1, 2]))
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == EXIT_BAD_INPUT
    assert "table of fields" in one_line_error(capsys)


def test_out_pointing_at_a_file_is_one_line_error(tmp_path, mnist_dir, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    argv = ["train", "--model", "paper-case1", "--epochs", "1", "--train-subset", "64", "--test-subset", "64",
            "--out", str(target), "--data-dir", str(mnist_dir)]  # fmt: skip
    assert main(argv) == EXIT_BAD_INPUT
    assert "must be a folder" in one_line_error(capsys)


def test_evaluate_on_the_piece_scorer_is_one_line_error(capsys):
    assert main(["evaluate", "--model", "piece-scorer"]) == EXIT_BAD_INPUT
    assert "not a digit classifier" in one_line_error(capsys)


@pytest.mark.parametrize(
    "metadata",
    [[1], {"config": {"model": 3}}, {"config": {"model": "paper-case1"}, "num_classes": "ten", "image_size": 28},
     {"config": {"model": "paper-case1"}, "num_classes": 10, "image_size": 28, "history": [1]}],
)  # fmt: skip
def test_foreign_checkpoint_metadata_is_refused(tmp_path, metadata):
    import torch
    from safetensors.torch import save_file

    from digitrec.model_files import METADATA_KEY
    from digitrec.training.checkpoint import read_checkpoint

    path = tmp_path / "foreign.safetensors"
    save_file({"model.w": torch.zeros(1)}, str(path), metadata={METADATA_KEY: json.dumps(metadata)})
    with pytest.raises(DigitrecError, match="not a digitrec checkpoint"):
        read_checkpoint(path)


# --- durable writes ------------------------------------------------------------------------------------------------


def test_temp_file_of_a_killed_writer_is_removed_on_the_next_write(tmp_path):
    target = tmp_path / "checkpoint.safetensors"
    dead_pid = 2**22 + 12345  # above Linux's pid_max default: no such process
    stale = tmp_path / f".{target.name}.{dead_pid}.abc.tmp"
    stale.write_bytes(b"")
    live = tmp_path / f".{target.name}.{os.getpid()}.xyz.tmp"  # a writer still running keeps its file
    live.write_bytes(b"")
    write_bytes_atomic(target, b"data")
    assert target.read_bytes() == b"data" and not stale.exists() and live.exists()
    assert remove_stale_temp_files(target) == []


# --- fuzzing -------------------------------------------------------------------------------------------------------


def resident_bytes(field: str) -> int:
    """VmRSS (now) or VmHWM (the peak since the last reset) of this process, from /proc/self/status."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/self/status")


def within_budget(function, *args):
    """`function(*args)`: an answer or a DigitrecError, and the memory it took at its peak (above what the test
    process held before: the peak is reset through /proc/self/clear_refs) under the budget; time: hypothesis'
    deadline. The process's lifetime peak (ru_maxrss) would count what earlier tests of the suite held."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset VmHWM to the current resident size
    before = resident_bytes("VmRSS")
    try:
        function(*args)
    except DigitrecError as exc:
        assert "\n" not in str(exc)
    assert resident_bytes("VmHWM") - before < MAX_RSS_BYTES


@pytest.fixture(scope="module")
def real_images(mnist_test) -> list[bytes]:
    digit = np.kron(255 - mnist_test.images[7], np.ones((4, 4), np.uint8))
    return [png_of(digit, kind) for kind in ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")]


@FUZZ
@given(data=st.binary(max_size=4096))
def test_fuzz_random_bytes_decode_or_fail_in_one_line(data):
    within_budget(decode_picture, data, "fuzz")


@FUZZ
@given(which=st.integers(0, 5), flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
       cut=st.integers(0, 10**6))  # fmt: skip
def test_fuzz_mutated_real_images_are_predicted_and_read_or_refused(recognizer, real_images, which, flips, cut):
    data = bytearray(real_images[which])
    for position, value in flips:
        data[position % len(data)] = value
    data = bytes(data[: max(8, cut % (len(data) + 1))])

    def decode_and_use(encoded: bytes) -> None:
        image, _ = decode_picture(encoded, "fuzz")
        recognizer.predict(image) if len(flips) % 2 else recognizer.read(image)

    within_budget(decode_and_use, data)


@FUZZ
@given(shape=st.tuples(st.integers(0, 3), st.integers(0, 40), st.integers(0, 40)),
       kind=st.sampled_from(["uint8", "float64", "int64", "bool"]),
       fill=st.sampled_from([0, 1, 255, "random", "nan"]))  # fmt: skip
def test_fuzz_random_arrays_are_predicted_or_refused(recognizer, shape, kind, fill):
    rng = np.random.default_rng(sum(shape))
    if fill == "random":
        array = rng.integers(0, 256, shape).astype(kind)
    elif fill == "nan":
        array = np.full(shape, np.nan) if kind == "float64" else np.zeros(shape, kind)
    else:
        array = np.full(shape, fill).astype(kind)
    within_budget(recognizer.predict, array)
    within_budget(recognizer.read, array[0] if array.ndim == 3 and len(array) else array)
