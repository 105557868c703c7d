"""Batch jobs over archives (`inference.archive`): Parquet rows, errors as rows, resume, the Ray engine.

The images are real MNIST test digits saved as PNG scans (dark ink on white), with unreadable files among them.
The Ray tests share one local cluster of 2 CPUs (`ray.init(num_cpus=2)`), shut down at the end of the module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pq = pytest.importorskip("pyarrow.parquet")

from digitrec.errors import DigitrecError  # noqa: E402
from digitrec.inference.archive import (  # noqa: E402
    PART_FILES,
    ArchiveJob,
    EngineOptions,
    expand_job_inputs,
    parts_dir,
    run_archive,
)
from digitrec.mnist import WHITE  # noqa: E402

PREDICT_QUICK = ArchiveJob("predict", tta=False)  # one look per digit: the job's logic is under test, not the model


def write_scans(folder: Path, images: np.ndarray, bad_every: int = 0) -> tuple[list[Path], list[Path]]:
    """Each digit as a PNG scan (dark ink on white); with `bad_every`, every n-th file unreadable instead (random
    bytes, an empty file, a truncated PNG, in turn). Returns (good files, bad files)."""
    folder.mkdir(parents=True, exist_ok=True)
    good, bad = [], []
    for index, image in enumerate(images):
        path = folder / f"scan-{index:04d}.png"
        Image.fromarray(WHITE - image).save(path)
        if bad_every and index % bad_every == bad_every - 1:
            kind = (index // bad_every) % 3
            data = path.read_bytes()
            path.write_bytes([os.urandom(200), b"", data[: len(data) // 2]][kind])
            bad.append(path)
        else:
            good.append(path)
    return good, bad


@pytest.fixture(scope="module")
def scans_with_bad_files(mnist_test, tmp_path_factory) -> tuple[Path, list[Path], list[Path], np.ndarray]:
    """40 scans, 10% of them unreadable: (folder, good files, bad files, labels of all 40)."""
    folder = tmp_path_factory.mktemp("scans")
    good, bad = write_scans(folder, mnist_test.images[:40], bad_every=10)
    return folder, good, bad, mnist_test.labels[:40]


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


def test_lists_of_paths_are_read_from_txt_and_csv_relative_to_the_list(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("1.png", "2.png", "3.png"):
        (tmp_path / "a" / name).write_bytes(b"x")
    (tmp_path / "list.txt").write_text("a/1.png\n# a comment\n\na/2.png\n")
    (tmp_path / "list.csv").write_text("id,path\n7,a/3.png\n8,a/1.png\n")
    (tmp_path / "bare.csv").write_text(f"{tmp_path / 'a' / '2.png'},extra\n")
    paths = expand_job_inputs([str(tmp_path / "list.txt"), str(tmp_path / "list.csv"), str(tmp_path / "bare.csv")])
    assert paths == [tmp_path / "a" / "1.png", tmp_path / "a" / "2.png", tmp_path / "a" / "3.png"]  # each once


def test_local_job_answers_every_good_image_and_gives_each_unreadable_file_an_error_row(scans_with_bad_files, tmp_path):
    folder, good, bad, labels = scans_with_bad_files
    summary = run_archive(PREDICT_QUICK, [str(folder)], tmp_path / "out.parquet", EngineOptions(progress=False))
    table = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [row["path"] for row in table] == [str(path) for path in sorted(good + bad)]
    failed = {row["path"]: row["error"] for row in table if row["error"]}
    assert sorted(failed) == [str(path) for path in bad]
    assert all(error.startswith(path) for path, error in failed.items())  # a one-line error naming the file
    answered = [row for row in table if not row["error"]]
    assert all(row["digit"] is not None and 0 < row["confidence"] <= 1 for row in answered)
    expected = [int(label) for path, label in zip(sorted(good + bad), labels, strict=True) if path in good]
    assert np.mean([row["digit"] == label for row, label in zip(answered, expected, strict=True)]) >= 0.9
    assert (summary.rows, summary.errors, summary.files_done_now) == (40, 4, 40)


def test_rerun_after_the_last_part_is_lost_redoes_only_its_files_and_gives_the_same_table(
    scans_with_bad_files, tmp_path
):
    folder = scans_with_bad_files[0]
    out = tmp_path / "out.parquet"
    options = EngineOptions(part_files=10, progress=False)
    run_archive(PREDICT_QUICK, [str(folder)], out, options)
    uninterrupted = pq.read_table(out)
    parts = sorted(parts_dir(out).glob("part-*.parquet"))
    assert len(parts) == 4
    parts[-1].unlink()  # as if killed before the last part was written
    out.unlink()
    summary = run_archive(PREDICT_QUICK, [str(folder)], out, options)
    assert (summary.files_done_before, summary.files_done_now) == (30, 10)
    assert pq.read_table(out).equals(uninterrupted)
    assert run_archive(PREDICT_QUICK, [str(folder)], out, options).files_done_now == 0  # all done: nothing redone


def test_local_job_in_two_processes_writes_the_table_and_parts_of_one_process(scans_with_bad_files, tmp_path):
    folder = scans_with_bad_files[0]
    one = run_archive(
        PREDICT_QUICK, [str(folder)], tmp_path / "one.parquet", EngineOptions(processes=1, progress=False)
    )
    options = EngineOptions(processes=2, part_files=10, progress=False)
    two = run_archive(PREDICT_QUICK, [str(folder)], tmp_path / "two.parquet", options)
    assert pq.read_table(tmp_path / "two.parquet").equals(pq.read_table(tmp_path / "one.parquet"))
    assert (two.rows, two.errors) == (one.rows, one.errors) == (40, 4)
    assert len(list(parts_dir(tmp_path / "two.parquet").glob("part-*.parquet"))) == 4  # written as files came in


def test_rerun_with_other_settings_into_the_same_out_is_refused(scans_with_bad_files, tmp_path):
    folder, good = scans_with_bad_files[:2]
    run_archive(PREDICT_QUICK, [str(good[0])], tmp_path / "out.parquet", EngineOptions(progress=False))
    with pytest.raises(DigitrecError, match="other settings"):
        run_archive(ArchiveJob("predict", tta=True), [str(folder)], tmp_path / "out.parquet")


def test_read_job_rows_hold_the_text_and_each_digits_box_as_json(mnist_test, tmp_path):
    import json

    strips = [np.hstack(list(mnist_test.images[start : start + 3])) for start in (0, 3)]  # 3 digits apart: 28x84
    for index, strip in enumerate(strips):
        Image.fromarray(np.pad(WHITE - strip, 10, constant_values=WHITE)).save(tmp_path / f"n{index}.png")
    run_archive(ArchiveJob("read", tta=False), [str(tmp_path / "n*.png")], tmp_path / "out.parquet")
    rows = pq.read_table(tmp_path / "out.parquet").to_pylist()
    expected = ["".join(str(label) for label in mnist_test.labels[start : start + 3]) for start in (0, 3)]
    assert [row["text"] for row in rows] == expected
    for row in rows:
        boxes = json.loads(row["boxes"])
        assert [str(box["digit"]) for box in boxes] == list(row["text"])
        assert all(len(box["box"]) == 4 for box in boxes)
        assert row["confidence"] == min(box["confidence"] for box in boxes)


def test_ray_engine_on_a_two_cpu_cluster_gives_the_same_table_as_the_local_engine(
    ray_cluster, scans_with_bad_files, tmp_path
):
    folder = scans_with_bad_files[0]
    run_archive(PREDICT_QUICK, [str(folder)], tmp_path / "local.parquet", EngineOptions(progress=False))
    options = EngineOptions("ray", workers=2, part_files=10, progress=False)
    summary = run_archive(PREDICT_QUICK, [str(folder)], tmp_path / "ray.parquet", options)
    assert summary.files_done_now == 40
    assert pq.read_table(tmp_path / "ray.parquet").equals(pq.read_table(tmp_path / "local.parquet"))


def wait_for_parts(folder: Path, count: int, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while len(list(folder.glob("part-*.parquet"))) < count:
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"no {count} parts in {timeout_s} s"
        time.sleep(0.2)


KILLED_JOB_IMAGES = 1000  # the size: ten parts of PART_FILES (100), the job killed once two are written


@pytest.mark.slow  # about a minute on 2 busy cores: 1,000 images read twice (the reference and the Ray job)
def test_ray_job_killed_with_kill_9_resumes_to_exactly_the_table_of_an_uninterrupted_run(
    ray_cluster, mnist_test, tmp_path
):
    folder = tmp_path / "scans"
    good, bad = write_scans(folder, mnist_test.images[:KILLED_JOB_IMAGES], bad_every=10)
    reference = run_archive(PREDICT_QUICK, [str(folder)], tmp_path / "reference.parquet", EngineOptions(progress=False))
    assert (reference.rows, reference.errors) == (KILLED_JOB_IMAGES, KILLED_JOB_IMAGES // 10)

    out = tmp_path / "killed.parquet"
    command = [sys.executable, "-m", "digitrec", "predict", str(folder), "--no-tta", "--out", str(out),
               "--engine", "ray", "--address", ray_cluster.get_runtime_context().gcs_address]  # fmt: skip
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_parts(parts_dir(out), 2, job, timeout_s=240)
    finally:
        job.send_signal(signal.SIGKILL)
        job.communicate()
    assert not out.exists()  # killed mid-way: no final table yet

    summary = run_archive(PREDICT_QUICK, [str(folder)], out, EngineOptions("ray", workers=2, progress=False))
    assert 2 * PART_FILES <= summary.files_done_before < KILLED_JOB_IMAGES
    assert summary.files_done_before + summary.files_done_now == KILLED_JOB_IMAGES
    resumed = pq.read_table(out)
    assert len(set(resumed["path"].to_pylist())) == len(resumed) == KILLED_JOB_IMAGES  # one row per image
    assert resumed.equals(pq.read_table(tmp_path / "reference.parquet"))


def worker_pids(parent: int) -> set[int]:
    """The processes `parent` started for its pool (Linux /proc)."""
    pids = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:  # the process ended meanwhile
            continue
        if int(fields.get("PPid", "0")) == parent:
            pids.add(int(status.parent.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_workers_of_a_local_job_killed_with_kill_9_end_with_it(mnist_test, tmp_path):
    """The pool's workers hold both ends of its queues: with their parent killed they waited forever, each with its
    models in memory, until they watched for it (`inference.files.exit_with_parent`)."""
    folder = tmp_path / "scans"
    write_scans(folder, mnist_test.images[:400])
    out = tmp_path / "out.parquet"
    command = [sys.executable, "-m", "digitrec", "predict", str(folder), "--no-tta", "--out", str(out), "--jobs", "2"]
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(workers := worker_pids(job.pid)) < 2 and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        job.send_signal(signal.SIGKILL)
        job.wait()
    assert len(workers) >= 2, "the job never started its workers"
    deadline = time.monotonic() + 20
    while (alive := [pid for pid in workers if Path(f"/proc/{pid}").exists() and not zombie(pid)]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert not alive


def zombie(pid: int) -> bool:
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


def test_cli_out_writes_the_table_and_says_so_in_one_line(scans_with_bad_files, tmp_path, capsys):
    from digitrec.cli import main

    folder = scans_with_bad_files[0]
    assert main(["predict", str(folder), "--no-tta", "--out", str(tmp_path / "out.parquet")]) == 0  # bad files: rows
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'out.parquet'}: 40 rows, 4 with an error; 40 files read")
    assert main(["read", str(folder), "--engine", "ray"]) == 2
    assert capsys.readouterr().err == "digitrec: error: --engine ray needs --out FILE.parquet\n"


def test_plain_predict_imports_neither_ray_nor_pyarrow(scans_with_bad_files):
    probe = (
        "import sys; from digitrec.cli import main; main(['predict', sys.argv[1]]); "
        "print(sorted(m for m in ('ray', 'pyarrow') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(scans_with_bad_files[1][0])], capture_output=True,
                            text=True, check=True)  # fmt: skip
    assert result.stdout.splitlines()[-1] == "[]"
