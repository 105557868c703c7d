"""Throughput of batch jobs (`--out results.parquet`): serial vs the local engine vs Ray with 1 and 2 workers.

    python -m benchmarks.archive --dev-data /work/shared/data/dev     # all 128 cheque crops, 1,000 USPS scans
    python -m benchmarks.archive --cheques 16 --scans 300               # a quick look

Two workloads, the CLI's default settings (test-time views on, the shipped piece model):
  read     real cheque-amount crops (~150x50 px, ../shared/data/dev/cheque-amounts, never copied here)
  predict  USPS scans written as 16x16 PNG files (28x28-like: one small digit per file)
and six ways to run them, each over the same files:
  serial, default threads   `predict_files` / `read_files` as `digitrec predict|read` runs them (onnxruntime's
                            own thread count)
  serial, 1 thread          the same with one onnxruntime thread (what every job worker uses)
  local engine, 1 / 2 procs `--out`: the same work plus Parquet parts and the final table (`--jobs 1` / `--jobs 2`)
  ray, 1 / 2 workers        `--engine ray` on a local cluster of 2 CPUs (started once, its start timed apart)

Scaling: a worker's cost per image is the serial 1-thread time plus the engine's overhead per image, measured as
W x (job seconds - the job's fixed start) / images - serial seconds per image, where the fixed start (actors
starting, each loading the model) is a job over W images. C cores then read about C / (cost per image) images/s.
Writes results/bench/archive.md and archive.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.realworld import dev_data_dir
from digitrec.fileio import write_json_atomic, write_text_atomic
from digitrec.inference.archive import JOB_THREADS, ArchiveJob, EngineOptions, run_archive
from digitrec.inference.files import predict_files, read_files
from digitrec.inference.recognizer import Recognizer

REPO_ROOT = Path(__file__).resolve().parent.parent
RAY_CPUS = 2
PROJECTED_CORES = (2, 16, 64, 256)
MILLION = 1_000_000


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def serial_seconds(task: str, paths: list[str], threads: int) -> float:
    recognizer = Recognizer.load(threads=threads)  # loaded before the clock starts, as a job's actors are
    run = predict_files if task == "predict" else read_files
    return timed(lambda: run(recognizer, paths))


def job_seconds(task: str, paths: list[str], folder: Path, options: EngineOptions) -> float:
    out = Path(tempfile.mkdtemp(dir=folder)) / "out.parquet"  # a fresh --out: nothing to resume
    return timed(lambda: run_archive(ArchiveJob(task), paths, out, options))


def measure_workload(task: str, paths: list[str], folder: Path) -> dict:
    """Seconds of each way to run `task` over `paths` (Ray: a session must be running)."""
    n = len(paths)
    serial_1 = serial_seconds(task, paths, JOB_THREADS)
    figures = {
        "images": n,
        "serial_default_threads_s": serial_seconds(task, paths, 0),
        "serial_1_thread_s": serial_1,
        "local_engine_s": job_seconds(task, paths, folder, EngineOptions(processes=1, progress=False)),
        "local_engine_2_processes_s": job_seconds(task, paths, folder, EngineOptions(processes=2, progress=False)),
    }
    for workers in (1, 2):
        options = EngineOptions("ray", workers=workers, progress=False)
        fixed = job_seconds(task, paths[:workers], folder, options)  # one image per actor: starting them, mostly
        seconds = job_seconds(task, paths, folder, options)
        overhead = workers * max(seconds - fixed, 0.0) / n - serial_1 / n
        figures[f"ray_{workers}_workers"] = {
            "seconds": seconds,
            "fixed_start_s": fixed,
            "overhead_per_image_s": overhead,
        }
    return figures


def write_usps_pngs(dev_data: Path, count: int, folder: Path) -> list[str]:
    images = np.load(dev_data / "usps" / "usps-train.npz")["images"][:count]
    paths = []
    for index, image in enumerate(images):
        path = folder / f"usps-{index:05d}.png"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    return paths


def projection(figures: dict) -> dict:
    """Images/s on C cores from one worker's cost per image (serial 1 thread + the Ray overhead of 2 workers)."""
    per_image = figures["serial_1_thread_s"] / figures["images"] + max(
        figures["ray_2_workers"]["overhead_per_image_s"], 0.0
    )
    return {str(cores): cores / per_image for cores in PROJECTED_CORES} | {"cost_per_image_s": per_image}


def markdown(report: dict, command: str) -> str:
    lines = [
        "# Batch jobs: images per second", "",
        f"Command: `{command}`. Machine: {report['cpu_count']} CPU cores, **shared** (other jobs running; load "
        f"average {report['load_average']:.1f} at the start), so the figures are lower bounds and noisy. Default "
        "settings (test-time views on). Ray: a local cluster of 2 CPUs, started once in "
        f"{report['ray_start_s']:.1f} s (not in the job figures).", "",
        "| way to run | read: cheque crops, images/s | predict: 16x16 scans, images/s |", "|---|---|---|",
    ]  # fmt: skip
    read, predict = report["read"], report["predict"]

    def rate(figures: dict, key: str) -> str:
        value = figures[key]
        seconds = value["seconds"] if isinstance(value, dict) else value
        return f"{figures['images'] / seconds:.2f}"

    for label, key in (
        ("serial, default threads (`digitrec read`/`predict` today)", "serial_default_threads_s"),
        ("serial, 1 onnxruntime thread", "serial_1_thread_s"),
        ("`--out` local engine, `--jobs 1` (1 thread)", "local_engine_s"),
        ("`--out` local engine, `--jobs 2` (2 processes of 1 thread)", "local_engine_2_processes_s"),
        ("`--engine ray --workers 1`", "ray_1_workers"),
        ("`--engine ray --workers 2`", "ray_2_workers"),
    ):
        lines.append(f"| {label} | {rate(read, key)} | {rate(predict, key)} |")
    lines += ["", f"Images: {read['images']} cheque crops, {predict['images']} USPS scans.", "",
              "| Ray overhead | read | predict |", "|---|---|---|"]  # fmt: skip
    for workers in (1, 2):
        read_ray, predict_ray = read[f"ray_{workers}_workers"], predict[f"ray_{workers}_workers"]
        lines.append(f"| {workers} worker(s): fixed start of a job (actors, models) | "
                     f"{read_ray['fixed_start_s']:.1f} s | {predict_ray['fixed_start_s']:.1f} s |")  # fmt: skip
        lines.append(f"| {workers} worker(s): overhead per image | {read_ray['overhead_per_image_s'] * 1000:.0f} ms "
                     f"| {predict_ray['overhead_per_image_s'] * 1000:.0f} ms |")  # fmt: skip
    lines += ["", "How it would scale (cost per image = serial 1-thread time + the 2-worker overhead; C cores at one "
              "worker each, the same per-core speed as here):", "",
              "| cores | read images/s | read: 1 M crops | predict images/s | predict: 1 M scans |",
              "|---|---|---|---|---|"]  # fmt: skip
    for cores in PROJECTED_CORES:
        r, p = report["projection"]["read"][str(cores)], report["projection"]["predict"][str(cores)]
        lines.append(f"| {cores} | {r:.1f} | {MILLION / r / 3600:.1f} h | {p:.1f} | {MILLION / p / 3600:.1f} h |")
    lines += ["", "The serial \"before\" is this branch's reader; the reader's own speed-up (issue #20 part 1) is "
              "measured separately: every row here scales with it."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dev-data", type=Path, default=None, help="the dev sets' folder (default as realworld)")
    parser.add_argument("--cheques", type=int, default=128, help="cheque crops to read (default all 128)")
    parser.add_argument("--scans", type=int, default=1000, help="USPS scans to predict (default 1000)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "bench", help="default results/bench")
    args = parser.parse_args(argv)
    import ray

    dev_data = args.dev_data or dev_data_dir()
    cheques = sorted(str(p) for p in (dev_data / "cheque-amounts" / "images").glob("*.jpg"))[: args.cheques]
    report = {"cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        scans = write_usps_pngs(dev_data, args.scans, folder)
        report["ray_start_s"] = timed(lambda: ray.init(num_cpus=RAY_CPUS, include_dashboard=False))
        try:
            report["predict"] = measure_workload("predict", scans, folder)
            report["read"] = measure_workload("read", cheques, folder)
        finally:
            ray.shutdown()
    report["projection"] = {task: projection(report[task]) for task in ("read", "predict")}
    command = f"python -m benchmarks.archive --cheques {args.cheques} --scans {args.scans}"
    report["command"] = command
    write_json_atomic(args.out / "archive.json", report)
    write_text_atomic(args.out / "archive.md", markdown(report, command))
    print(markdown(report, command), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
