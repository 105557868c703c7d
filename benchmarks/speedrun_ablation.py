"""Ablation of the speedrun presets: what each choice buys in validation accuracy and in training time.

    python -m benchmarks.speedrun_ablation [--preset speedrun] [--seeds 0] [--threads 1] [--out results/model]

Each variant trains the preset from the same seeds with one choice changed and reports its final validation accuracy
(what the choices were made on: the mean over the seeds, each seed's beside it; a seed also draws its own validation
split) and its training seconds (training plus per-epoch validation, as in
benchmarks.time_to_accuracy) with the process's CPU seconds beside them (less disturbed by other work on the
machine). The test set is not used (fit's final test evaluation runs on 1 image). Finished (variant, seed) runs are
kept in PRESET-ablation.json and skipped on a rerun. Writes PRESET-ablation.json and .md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean

import torch

from digitrec.fileio import write_json_atomic, write_text_atomic
from digitrec.models.registry import REGISTRY, ModelEntry, SpeedNet, model_entry, register
from digitrec.training.config import TrainConfig
from digitrec.training.loop import fit

# architecture variants of SpeedNet, registered under these names for the ablation only: name -> SpeedNet arguments
MODEL_VARIANTS = {
    "speedrun-ablation-full-resolution-stage": {"strided_stem": False},
    "speedrun-ablation-relu-before-pool": {"pool_before_relu": False},
    "speedrun-ablation-narrow": {"widths": (16, 32, 64)},
    "speedrun-ablation-wide": {"widths": (32, 64, 128)},
}
AUGMENTATION = {"rotation_deg": 10.0, "shift_fraction": 0.1, "scale_range": 0.1}
NO_AUGMENTATION = {"rotation_deg": 0.0, "shift_fraction": 0.0, "scale_range": 0.0}

# variant name -> TrainConfig fields it changes from the preset (a "model" field names an architecture variant)
VARIANTS: dict[str, dict[str, dict]] = {
    "speedrun": {
        "preset": {},
        "full-resolution first stage (conv 3x3 + BN + pool) instead of the strided stem": {
            "model": "speedrun-ablation-full-resolution-stage"
        },
        "ReLU before max-pool (the same function)": {"model": "speedrun-ablation-relu-before-pool"},
        "NCHW layout instead of channels-last (the same function)": {"channels_last": False},
        "narrower, 16-32-64": {"model": "speedrun-ablation-narrow"},
        "wider, 32-64-128": {"model": "speedrun-ablation-wide"},
        "no label smoothing": {"label_smoothing": 0.0},
        "peak learning rate 3e-3 instead of 6e-3": {"learning_rate": 3e-3},
        "batch 256 instead of 128": {"batch_size": 256},
        "batch 64 instead of 128": {"batch_size": 64},
        "with augmentation (rotation 10°, shift 0.1, scale 0.1)": AUGMENTATION,
        "2 epochs instead of 1": {"epochs": 2},
    },
    "speedrun-long": {
        "preset": {},
        "no augmentation": NO_AUGMENTATION,
        "speedrun's widths 24-48-96, 8 epochs": {"model": "speedrun", "epochs": 8},
        "speedrun's widths 24-48-96, 8 epochs, no augmentation": {"model": "speedrun", "epochs": 8, **NO_AUGMENTATION},
        "the earlier recipe: 24-48-96, 4 epochs, no augmentation": {
            "model": "speedrun",
            "epochs": 4,
            **NO_AUGMENTATION,
        },
    },
}


def register_model_variants() -> None:
    for name, arguments in MODEL_VARIANTS.items():
        if name not in REGISTRY:
            build = lambda arguments=arguments, **kwargs: SpeedNet(**arguments, **kwargs)  # noqa: E731
            register(ModelEntry(name=name, build=build, description=f"speedrun ablation: SpeedNet {arguments}"))


def variant_config(preset: str, changes: dict, seed: int) -> TrainConfig:
    preset_config = TrainConfig.for_model(preset, seed=seed, test_subset=1)
    return dataclasses.replace(preset_config, **changes)


def run_variant(config: TrainConfig, data_dir: Path | None) -> dict:
    started_cpu = time.process_time()
    with tempfile.TemporaryDirectory() as run_dir:
        result = fit(config, Path(run_dir), data_dir=data_dir, progress=False)
    return {
        "config": config.to_dict(),
        "validation_accuracy": [record.validation_accuracy for record in result.history],
        "seconds": sum(record.seconds for record in result.history),
        "process_cpu_seconds": time.process_time() - started_cpu,  # includes loading the data
        "load_average": os.getloadavg()[0],
    }


def seed_runs(entry: dict) -> dict[str, dict]:
    """A variant's runs by seed (a file written before --seeds holds one run, of seed 0)."""
    return entry.get("runs", {"0": entry})


def seed_list(text: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; anything else is argparse's one-line error."""
    try:
        return [int(seed) for seed in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integer seeds") from None


def table_markdown(preset: str, results: dict, command: str, threads: int, seeds: list[int]) -> str:
    def runs_of(name: str) -> list[dict]:
        runs = seed_runs(results[name])
        return [runs[str(seed)] for seed in seeds]

    def final_validation(runs: list[dict]) -> list[float]:
        return [run["validation_accuracy"][-1] * 100 for run in runs]

    base = mean(final_validation(runs_of("preset")))
    noise = "One seed: differences under about 0.1 point are noise." if len(seeds) == 1 else (
        f"Mean over {len(seeds)} seeds: differences under about 0.1 point are still noise.")  # fmt: skip
    lines = [
        f"<!-- generated by: {command} -->",
        f"# Ablation of the {preset} preset",
        "",
        f"`{command}`: {preset} ({model_entry(preset).description}), seed(s) {', '.join(map(str, seeds))}, "
        f"{threads} torch thread(s), one choice changed per row; validation accuracy on the 5,000 held-out "
        f"training images (the test set is not used). {noise} Seconds: training plus its per-epoch validation "
        "(wall clock; other work on the machine inflates it, the load average is beside it), and the process's CPU "
        "seconds, which include loading the data; means over the seeds.",
        "",
        "| variant | final validation % | per seed | Δ vs preset | train s | CPU s | load |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for name in results:
        runs = runs_of(name)
        validation = final_validation(runs)
        per_seed = ", ".join(f"{value:.2f}" for value in validation)
        seconds, cpu = mean([r["seconds"] for r in runs]), mean([r["process_cpu_seconds"] for r in runs])
        lines.append(f"| {name} | {mean(validation):.2f} | {per_seed} | {mean(validation) - base:+.2f} | "
                     f"{seconds:.1f} | {cpu:.1f} | {mean([r['load_average'] for r in runs]):.1f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speedrun_ablation", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="speedrun", choices=sorted(VARIANTS))
    parser.add_argument(
        "--seeds", type=seed_list, default=[0], help="comma-separated seeds, each variant trained from each (default 0)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("results/model"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    register_model_variants()
    json_path = args.out / f"{args.preset}-ablation.json"
    results = json.loads(json_path.read_text()) if json_path.exists() else {}
    seeds = args.seeds
    for name, changes in VARIANTS[args.preset].items():
        runs = seed_runs(results[name]) if name in results else {}
        for seed in seeds:
            config = variant_config(args.preset, changes, seed)
            done = runs.get(str(seed))
            if done is not None and config.matches(done["config"]) and done.get("threads") == args.threads:
                continue
            runs[str(seed)] = run_variant(config, args.data_dir) | {"threads": args.threads}
            results[name] = {"runs": runs}
            write_json_atomic(json_path, results)  # resumable: each finished run is kept
            row = runs[str(seed)]
            print(f"{name}, seed {seed}: validation {row['validation_accuracy'][-1]:.2%}, {row['seconds']:.1f} s",
                  flush=True)  # fmt: skip
    command = "python -m benchmarks.speedrun_ablation " + shlex.join(argv)
    table = {k: results[k] for k in VARIANTS[args.preset]}
    markdown = table_markdown(args.preset, table, command, args.threads, seeds)
    write_text_atomic(args.out / f"{args.preset}-ablation.md", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
