"""How fast `digitrec read` reads, against the reader as it was before it was sped up (a pinned commit), same run.

    python -m benchmarks.read_speed                       # 128 dev cheque crops + 60 MNIST test strips
    python -m benchmarks.read_speed --cheques 32 --strips 20

Each way of reading runs in its own fresh process over the same image files (in ROUNDS parts, the ways taking
turns on each), through `read_files` (the code path of `digitrec read FILES...`), with the default settings
(test-time views on, the shipped piece model):
  before    the reader at BASELINE_COMMIT (exported with `git archive`), one process, onnxruntime's threads
  now, 1    today's reader, one process, onnxruntime's threads
  now       today's `digitrec read` default: one process per core for this many files (`--jobs`)
Inputs: the real cheque-amount crops of ../shared/data/dev (never copied here), and photo-like strips of MNIST test
digits (4 and 6 digits, 30% touching, every reading condition) written as PNG files. Besides images/s, the answers
are compared: the share of images read exactly as before, and each way's accuracy against the true numbers.
Writes results/bench/read_speed.md and .json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from PIL import Image

from benchmarks.realworld import DEV_DATA_ENV, dev_data_dir
from digitrec.data.datasets import load_split
from digitrec.errors import DigitrecError
from digitrec.fileio import write_json_atomic, write_text_atomic
from digitrec.synthetic.strips import READING_CONDITIONS, evaluation_strip

REPO_ROOT = Path(__file__).resolve().parent.parent
# The reader before issue 20's speed-up (the last commit before it): the baseline every figure here is against.
BASELINE_COMMIT = "cbf2655fc1c01fe022952f93bf79c38da089d8e1"
STRIP_CELLS = ((4, 0.3), (6, 0.3))  # (digits, touching fraction) of the MNIST strips
STRIP_SEED = 20
ROUNDS = 4  # the images are read in this many parts, each way in turn on each part

# Run in a fresh interpreter with the reader under test first on sys.path: reads the files listed in argv[1]
# with `processes` argv[2] (1: the old call, which had no such argument) and prints seconds and texts as JSON.
READER_PROCESS = """
import json, sys, time
from digitrec.inference import files
from digitrec.inference.files import read_files
from digitrec.inference.recognizer import Recognizer
if __name__ == "__main__":
    paths, processes = open(sys.argv[1]).read().splitlines(), int(sys.argv[2])
    if hasattr(files, "use_opencv_threads"):  # as `digitrec read` does today (the baseline did not)
        files.use_opencv_threads()
    recognizer = Recognizer.load()
    started = time.perf_counter()
    rows = read_files(recognizer, paths) if processes == 1 else read_files(recognizer, paths, processes=processes)
    seconds = time.perf_counter() - started
    texts = [row.reading.text if row.reading is not None else None for row in rows]
    print(json.dumps({"seconds": seconds, "texts": texts}))
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.read_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--cheques", type=int, default=128, help="dev cheque crops to read (default: all 128)")
    parser.add_argument("--strips", type=int, default=60, help="MNIST test strips to read (default 60)")
    parser.add_argument("--baseline", default=BASELINE_COMMIT, help="the commit to compare with (default: pinned)")
    parser.add_argument("--data-dir", type=Path, default=None, help="MNIST folder (default: $DIGITREC_DATA)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "bench")
    return parser.parse_args(argv)


def export_source(commit: str, folder: Path) -> Path:
    """The package's source at `commit` (git archive), unpacked into `folder`; returns the folder to import from."""
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", "--format=tar", commit, "src"],
                             capture_output=True, check=True).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder / "src"


def cheque_inputs(count: int) -> tuple[list[str], list[str]]:
    folder = dev_data_dir() / "cheque-amounts"
    if not (folder / "labels.tsv").is_file():
        raise DigitrecError(f"{folder / 'labels.tsv'}: no dev cheque amounts there (set ${DEV_DATA_ENV})")
    rows = [line.split("\t") for line in (folder / "labels.tsv").read_text().splitlines()[1:]][:count]
    return [str(folder / name) for name, _ in rows], [label for _, label in rows]


def strip_inputs(count: int, folder: Path, data_dir: Path | None) -> tuple[list[str], list[str]]:
    digits = load_split("test", data_dir)
    paths, labels = [], []
    for index in range(count):
        length, touching = STRIP_CELLS[index % len(STRIP_CELLS)]
        strip = evaluation_strip(digits.images, digits.labels, length, touching, list(READING_CONDITIONS),
                                 STRIP_SEED, index)  # fmt: skip
        path = folder / f"strip-{index:03d}.png"
        Image.fromarray(strip.image).save(path)
        paths.append(str(path))
        labels.append(strip.text)
    return paths, labels


def read_in_process(source: Path, paths: list[str], processes: int, folder: Path) -> dict:
    """Seconds and texts of reading `paths` with the reader in `source`, in a fresh interpreter."""
    listing = folder / "paths.txt"
    listing.write_text("\n".join(paths))
    script = folder / "reader_process.py"
    script.write_text(READER_PROCESS)
    env = os.environ | {"PYTHONPATH": str(source)}
    done = subprocess.run([sys.executable, str(script), str(listing), str(processes)], env=env, cwd=folder,
                          capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(done.stdout.splitlines()[-1])


def digits_only(text: str | None) -> str:
    return "".join(character for character in text or "" if character.isdigit())


def compare(ways: dict, labels: list[str]) -> dict:
    before = ways["before"]["texts"]
    return {
        name: {
            "images_per_second": len(labels) / way["seconds"],
            "same_as_before": sum(a == b for a, b in zip(way["texts"], before, strict=True)) / len(labels),
            "exact": sum(digits_only(text) == label for text, label in zip(way["texts"], labels, strict=True))
            / len(labels),
        }
        for name, way in ways.items()
    }


def markdown(report: dict) -> str:
    lines = [
        "<!-- generated by: " + report["command"] + " -->",
        "# `digitrec read`: images per second, today against the reader before it was sped up", "",
        f"Machine: {report['cpu_count']} CPU cores, load average {report['load_average']:.1f} at the start (above 1: "
        "other jobs were running, only the ratios within the run count). Baseline: commit "
        f"`{report['baseline'][:10]}`. Default settings (test-time views on, the shipped piece model), each way in a "
        "fresh process over the same files.", "",
        "| images | way | images/s | speed-up | read as before | exact |", "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for workload, figures in report["workloads"].items():
        base = figures["before"]["images_per_second"]
        for name, way in figures.items():
            speed_up = way["images_per_second"] / base
            lines.append(f"| {workload} | {report['ways'][name]} | {way['images_per_second']:.2f} | {speed_up:.1f}x "
                         f"| {way['same_as_before']:.1%} | {way['exact']:.1%} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run(parse_args(argv), argv)
    except DigitrecError as exc:
        print(f"benchmarks.read_speed: error: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace, argv: list[str]) -> int:
    cores = os.cpu_count() or 1
    report = {"command": "python -m benchmarks.read_speed " + shlex.join(argv), "baseline": args.baseline,
              "cpu_count": cores, "load_average": os.getloadavg()[0], "workloads": {},
              "ways": {"before": "before (baseline, serial)", "now_serial": "now, 1 process",
                       "now": f"now, `digitrec read` default ({cores} processes)"}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        baseline = export_source(args.baseline, folder / "baseline")
        today = REPO_ROOT / "src"
        workloads = {"dev cheque crops": cheque_inputs(args.cheques)}
        if args.strips:
            workloads["MNIST test strips"] = strip_inputs(args.strips, folder, args.data_dir)
        sources = {"before": (baseline, 1), "now_serial": (today, 1), "now": (today, cores)}
        for workload, (paths, labels) in workloads.items():
            started = time.perf_counter()
            ways = {name: {"seconds": 0.0, "texts": []} for name in sources}
            for part in range(ROUNDS):  # the ways take turns on each part: a change of load hits them all alike
                part_paths = paths[part::ROUNDS]
                for name, (source, processes) in sources.items():
                    result = read_in_process(source, part_paths, processes, folder)
                    ways[name]["seconds"] += result["seconds"]
                    ways[name]["texts"] += result["texts"]
            order = [k for part in range(ROUNDS) for k in range(part, len(paths), ROUNDS)]
            report["workloads"][f"{workload} ({len(paths)})"] = compare(ways, [labels[k] for k in order])
            print(f"{workload}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    write_json_atomic(args.out / "read_speed.json", report)
    write_text_atomic(args.out / "read_speed.md", markdown(report))
    print(markdown(report), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
