"""Accuracy on photo-like images of MNIST test digits, per condition: our photo pipeline vs the report's naive one.

    python -m benchmarks.photos --model default --per-condition 500            # writes results/photos/table.md, .json
    python -m benchmarks.photos --write-examples examples                     # the example photos in examples/

The photos are made again from the seed each time (digitrec.synthetic.photos); only MNIST *test* digits are used.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from digitrec.data.datasets import load_split
from digitrec.errors import DigitrecError
from digitrec.evaluation.photos import evaluate_photos
from digitrec.fileio import write_json_atomic, write_text_atomic
from digitrec.inference.recognizer import Recognizer
from digitrec.synthetic.photos import CONDITIONS, write_examples


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.photos", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="a shipped model's name, a checkpoint or a run folder")
    parser.add_argument("--per-condition", type=int, default=500, help="photos per condition (default 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--conditions", help=f"comma-separated subset of: {', '.join(CONDITIONS)}")
    parser.add_argument("--data-dir", type=Path, help="MNIST folder (default $DIGITREC_DATA)")
    parser.add_argument("--out", type=Path, default=Path("results/photos"), help="table.md and table.json go here")
    parser.add_argument("--write-examples", type=Path, metavar="DIR", help="write the example photos to DIR and stop")
    return parser.parse_args(argv)


def table_markdown(report: dict) -> str:
    lines = [
        "# Photos of MNIST test digits: accuracy per condition",
        "",
        f"Model: `{report['model']}`. {report['images_per_condition']} photos per condition (seed {report['seed']}), "
        "the same test digits in every condition. *ours*: `digitrec.images.photo.photo_to_mnist`; *naive*: the "
        "report's pipeline (threshold at the mean gray, invert, squeeze to 28x28). A photo our pipeline refuses "
        "(no digit or several digits found) counts as wrong; *refused* is their share.",
        "",
        f"Command: `{report['command']}` ({report['seconds']:.0f} s)",
        "",
        "| condition | what | ours | naive | refused |",
        "|---|---|---:|---:|---:|",
    ]
    for name, row in report["rows"].items():
        if name == "mnist-original":
            lines.append(f"| {name} | the same digits as MNIST gives them (28x28) | {row['ours']:.1%} | | |")
            continue
        lines.append(
            f"| {name} | {row['description']} | {row['ours']:.1%} | {row['naive']:.1%} | {row['ours_refused']:.1%} |"
        )
    photos = [row for name, row in report["rows"].items() if name != "mnist-original"]
    mean = {key: sum(row[key] for row in photos) / len(photos) for key in ("ours", "naive", "ours_refused")}
    lines.append(f"| **all photo conditions** | mean of the {len(photos)} rows above | **{mean['ours']:.1%}** | "
                 f"{mean['naive']:.1%} | {mean['ours_refused']:.1%} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, argv: list[str]) -> int:
    test = load_split("test", args.data_dir, download=False)
    if args.write_examples:
        for path in write_examples(args.write_examples, test.images, test.labels, seed=args.seed):
            print(f"{path} ({path.stat().st_size:,} bytes)")
        return 0
    conditions = args.conditions.split(",") if args.conditions else None
    recognizer = Recognizer.load(args.model)
    started = time.perf_counter()
    report = evaluate_photos(
        recognizer, test.images, test.labels, args.per_condition, args.seed, conditions, progress=sys.stderr.isatty()
    )
    report |= {
        "model": str(args.model),
        "command": "python -m benchmarks.photos " + shlex.join(argv),
        "seconds": time.perf_counter() - started,
    }
    write_json_atomic(args.out / "table.json", report)
    write_text_atomic(args.out / "table.md", table_markdown(report))
    print(table_markdown(report), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run(parse_args(argv), argv)
    except DigitrecError as exc:
        print(f"benchmarks.photos: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
