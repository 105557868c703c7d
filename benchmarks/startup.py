"""Start-up time and install size of the recognizer: what a container, a cron job or a serverless call pays.

    python -m benchmarks.startup                                  # this venv: --help and one PNG, cold, median of 5
    python -m benchmarks.startup --light-venv /tmp/light          # also: `pip install .` (no extras) into a fresh
                                                                  # venv, its size, no torch, the same answers

Each run is a fresh process (nothing cached in memory between runs; the OS file cache is warm after the first).
Writes results/bench/startup.md and startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from digitrec.fileio import write_json_atomic, write_text_atomic

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PNG = REPO_ROOT / "examples" / "photo-4-clean.png"
EXAMPLES = REPO_ROOT / "examples"
RUNS = 5
HEAVY_MODULES = ("torch", "sklearn", "matplotlib", "scipy")


def installed_digitrec() -> str:
    """The `digitrec` command of the environment running this benchmark (beside its interpreter), else the one on
    PATH; a one-line error where there is none."""
    beside = Path(sys.executable).parent / "digitrec"
    found = str(beside) if beside.is_file() else shutil.which("digitrec")
    if found is None:
        sys.exit(f"error: no `digitrec` command beside {sys.executable} or on PATH: install the project first")
    return found


def timed_runs(command: list[str], runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=REPO_ROOT)
        seconds.append(time.perf_counter() - started)
    return seconds


def folder_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def build_light_venv(venv: Path) -> None:
    """A fresh venv with `pip install .` and no extras: what `pip install digitrec` gives."""
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(REPO_ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip


def light_venv_report(venv: Path, full_digitrec: str) -> dict:
    python = str(venv / "bin" / "python")
    probe = "import importlib.util, json; print(json.dumps({m: importlib.util.find_spec(m) is not None for m in %r}))"
    installed = json.loads(subprocess.run([python, "-c", probe % (HEAVY_MODULES,)], capture_output=True, text=True,
                                          check=True).stdout)  # fmt: skip
    answers = {}
    for name, executable in (("light", str(venv / "bin" / "digitrec")), ("full", full_digitrec)):
        predicted = subprocess.run([executable, "predict", str(EXAMPLES), "--json"], capture_output=True, text=True)
        read = subprocess.run([executable, "read", str(EXAMPLES), "--json"], capture_output=True, text=True)
        answers[name] = [(Path(row["path"]).name, row["digit"]) for row in json.loads(predicted.stdout)] + [
            (Path(row["path"]).name, row["text"], [d["box"] for d in row["digits"]]) for row in json.loads(read.stdout)
        ]
    return {
        "venv_mb": round(folder_size_mb(venv), 1),
        "heavy_modules_installed": installed,
        "same_answers_as_full_install": answers["light"] == answers["full"],
        "examples_read": len(answers["light"]) // 2,
        "help_seconds": timed_runs([str(venv / "bin" / "digitrec"), "--help"], RUNS),
        "predict_one_png_seconds": timed_runs([str(venv / "bin" / "digitrec"), "predict", str(EXAMPLE_PNG)], RUNS),
    }


def markdown(report: dict, command: str) -> str:
    lines = [
        "# Start-up and install size", "", f"Command: `{command}` (each figure: median of {RUNS} fresh processes, "
        "min-max in brackets; 2 CPU cores).", "", "| what | seconds |", "|---|---|",
    ]  # fmt: skip

    def row(label: str, values: list[float]) -> str:
        return f"| {label} | {statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f}) |"

    lines.append(row("`digitrec --help`, this venv", report["help_seconds"]))
    lines.append(row("`digitrec predict` one PNG, this venv", report["predict_one_png_seconds"]))
    light = report.get("light_venv")
    if light:
        lines.append(row("`digitrec --help`, `pip install .` venv", light["help_seconds"]))
        lines.append(row("`digitrec predict` one PNG, `pip install .` venv", light["predict_one_png_seconds"]))
        heavy = ", ".join(m for m, present in light["heavy_modules_installed"].items() if present) or "none"
        lines += [
            "", f"`pip install .` (no extras) in a fresh venv: **{light['venv_mb']:.0f} MB**; heavy libraries "
            f"installed: {heavy}; `digitrec predict examples/` and `digitrec read examples/` give the same answers "
            "(digits, texts, boxes) as the full install: "
            f"{light['same_answers_as_full_install']} ({light['examples_read']} images).",
        ]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--light-venv", type=Path, help="build a `pip install .` venv here and measure it too")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "bench", help="default results/bench")
    args = parser.parse_args(argv)
    digitrec = installed_digitrec()
    report = {
        "help_seconds": timed_runs([digitrec, "--help"], RUNS),
        "predict_one_png_seconds": timed_runs([digitrec, "predict", str(EXAMPLE_PNG)], RUNS),
        "cpu_count": os.cpu_count(),
    }
    if args.light_venv:
        build_light_venv(args.light_venv)
        report["light_venv"] = light_venv_report(args.light_venv, digitrec)
    command = "python -m benchmarks.startup" + (f" --light-venv {args.light_venv}" if args.light_venv else "")
    write_json_atomic(args.out / "startup.json", report)
    write_text_atomic(args.out / "startup.md", markdown(report, command))
    print(markdown(report, command), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
