"""How well the reader reads photographed handwritten numbers: strips of MNIST digits, by length and touching.

    python -m benchmarks.read --model default --per-cell 200            # writes results/read/table.md, .json, .png
    python -m benchmarks.read --write-examples examples                # the example strips in examples/

The strips are made again from the seed each time (digitrec.synthetic.strips). Only `--split test` (MNIST test
digits, the default) is reported; `--split train` draws from the tuning digits (the last 5,000 of MNIST's training
file), for trying out changes to the reader without looking at the test digits.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from digitrec.data.datasets import LabelledImages, load_split
from digitrec.errors import DigitrecError
from digitrec.evaluation.reading import evaluate_reading, reading_of
from digitrec.fileio import save_figure_atomic, write_json_atomic, write_text_atomic
from digitrec.inference.recognizer import SHIPPED_PIECE_MODEL, Recognizer
from digitrec.model_files import SHIPPED_LINE_MODEL
from digitrec.synthetic.photos import CONDITIONS
from digitrec.synthetic.strips import (
    BASELINE_JITTER,
    DIGIT_HEIGHT_RANGE_PX,
    GAP_RANGE,
    MAX_STRIP_WIDTH_PX,
    READING_CONDITIONS,
    SCALE_JITTER,
    SLANT_JITTER_DEG,
    evaluation_strip,
    write_example_strips,
)

TUNING_INDICES = range(55_000, 60_000)  # MNIST training images kept for tuning the reader (never for training it)
TABLE_LENGTH = 4  # the per-condition table shows the cells of this many digits
EXAMPLES_SHOWN = 8  # strips in examples.png


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.read", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="a shipped model's name, a checkpoint or a run folder")
    parser.add_argument("--per-cell", type=int, default=200, help="strips per (length, touching) cell (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pieces", default=SHIPPED_PIECE_MODEL, help="piece model: shipped (default), a checkpoint, 'none'"
    )
    parser.add_argument(
        "--lines",
        default=SHIPPED_LINE_MODEL,
        help="the line model checking the cut digits, or 'none' (default %(default)s)",
    )
    parser.add_argument("--split", choices=["test", "train"], default="test", help="test digits, or tuning digits")
    parser.add_argument("--lengths", default="2,4,6,10", help="digits per number, comma-separated (default 2,4,6,10)")
    parser.add_argument("--touching", default="0,0.3", help="share of neighbours that touch, comma-separated")
    parser.add_argument("--conditions", help=f"comma-separated subset of: {', '.join(CONDITIONS)}")
    parser.add_argument("--data-dir", type=Path, help="MNIST folder (default $DIGITREC_DATA)")
    parser.add_argument("--out", type=Path, default=Path("results/read"), help="table.md, .json, examples.png go here")
    parser.add_argument("--write-examples", type=Path, metavar="DIR", help="write example strips to DIR and stop")
    return parser.parse_args(argv)


def comma_separated(text: str, kind: type, what: str) -> list:
    try:
        return [kind(item) for item in text.split(",")]
    except ValueError:
        raise DigitrecError(f"{what} must be comma-separated numbers, got {text!r}") from None


def digits_for(split: str, data_dir: Path | None) -> LabelledImages:
    if split == "test":
        return load_split("test", data_dir, download=False)
    return load_split("train", data_dir, download=False).subset(np.array(TUNING_INDICES))


def percent(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def table_markdown(report: dict) -> str:
    lines = [
        "# Photographed numbers: how well the reader reads strips of MNIST digits",
        "",
        f"Model: `{report['model']}`, piece model `{report.get('pieces', 'none')}`, "
        f"line model `{report.get('lines', 'none')}`. Digits: MNIST {report['split']} "
        f"split. {report['per_cell']} strips per cell (seed {report['seed']}), the photo conditions taking turns: "
        f"{', '.join(report['conditions'])}.",
        "",
        f"Command: `{report['command']}` ({report['seconds']:.0f} s)",
        "",
        "*whole number*: the reading equals the number (whitespace ignored). *per digit*: 1 - edit distance / number "
        "of digits, at least 0, averaged. *wrong length*: readings with too many or too few digits. *touching / apart "
        "read*: share of the true digits matched in the cheapest alignment, for digits touching a neighbour and for "
        "the others. A reader that refuses a photo read nothing.",
        "",
        "| digits | touching asked | touching pairs (mean) | whole number | per digit | wrong length "
        "| touching read | apart read |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in report["cells"]:
        lines.append(
            f"| {cell['length']} | {cell['touching_fraction']:.0%} | {cell['mean_touching_pairs']:.2f} "
            f"| {percent(cell['whole_number_accuracy'])} | {percent(cell['per_digit_accuracy'])} "
            f"| {percent(cell['length_error_rate'])} | {percent(cell['touching_digits_read'])} "
            f"| {percent(cell['separate_digits_read'])} |"
        )
    lines += condition_table(report) + ["", how_strips_are_made(report["split"])]
    return "\n".join(lines) + "\n"


def condition_table(report: dict) -> list[str]:
    """Whole-number accuracy per photo condition in the cells of TABLE_LENGTH digits."""
    cells = [cell for cell in report["cells"] if cell["length"] == TABLE_LENGTH]
    if not cells:
        return []
    header = " | ".join(f"touching {cell['touching_fraction']:.0%}" for cell in cells)
    lines = [
        "",
        f"## {TABLE_LENGTH}-digit numbers by photo condition (whole-number accuracy, strips in brackets)",
        "",
        f"| condition | what | {header} |",
        "|---|---|" + "---:|" * len(cells),
    ]
    for condition in report["conditions"]:
        scores = []
        for cell in cells:
            row = cell["by_condition"].get(condition)
            scores.append(f"{row['whole_number_accuracy']:.0%} ({row['strips']})" if row else "")
        lines.append(f"| {condition} | {CONDITIONS[condition][0]} | {' | '.join(scores)} |")
    return lines


def how_strips_are_made(split: str) -> str:
    low, high = DIGIT_HEIGHT_RANGE_PX
    return (
        f"How the strips are made (`digitrec.synthetic.strips`): random MNIST {split} digits written on one line, "
        f"{low:.0f}-"
        f"{high:.0f} px tall (less for long numbers, to keep photos under about {MAX_STRIP_WIDTH_PX:,} px wide), each "
        f"digit with its own size (±{SCALE_JITTER:.0%}), baseline (±{BASELINE_JITTER:.0%} of the height) and slant "
        f"(±{SLANT_JITTER_DEG:.0f}°). Neighbours are {GAP_RANGE[0]:.0%}-{GAP_RANGE[1]:.0%} of the digit height apart "
        "(between their inks) or, for the asked share of pairs, run into each other by up to a stroke width; "
        "*touching pairs* counts the pairs whose inks are connected in the rendered strip. Paper, ink, ruling, light "
        "and camera come from the photo condition (`digitrec.synthetic.photos`); its rotation turns the whole line."
    )


def example_figure(
    report: dict, images: np.ndarray, labels: np.ndarray, read_text: Callable[[np.ndarray], str]
) -> Figure:
    """Up to EXAMPLES_SHOWN strips with their true number and the reading: a failure of each cell (a different
    one from cell to cell, so that the conditions vary), then a strip of each cell."""
    picks = [
        (cell["length"], cell["touching_fraction"], cell["failures"][order % len(cell["failures"])]["strip_index"])
        for order, cell in enumerate(report["cells"])
        if cell["failures"]
    ]
    picks += [(cell["length"], cell["touching_fraction"], order) for order, cell in enumerate(report["cells"])]
    picks = list(dict.fromkeys(picks))[:EXAMPLES_SHOWN]
    figure = Figure(figsize=(10, 1.6 * len(picks)))
    for slot, (length, touching_fraction, index) in enumerate(picks):
        strip = evaluation_strip(images, labels, length, touching_fraction, report["conditions"], report["seed"], index)
        read = reading_of(read_text, strip.image)
        axes = figure.add_subplot(len(picks), 1, slot + 1)
        axes.imshow(strip.image)
        verdict = "right" if read == strip.text else "WRONG"
        axes.set_title(f"{strip.text} read as {read or '(nothing)'} ({verdict}; {strip.condition})", fontsize=9)
        axes.axis("off")
    return figure


def run(args: argparse.Namespace, argv: list[str]) -> int:
    digits = digits_for(args.split, args.data_dir)
    if args.write_examples:
        for path in write_example_strips(args.write_examples, digits.images, digits.labels, seed=args.seed):
            print(f"{path} ({path.stat().st_size:,} bytes)")
        return 0
    lengths = comma_separated(args.lengths, int, "--lengths")
    touching_fractions = comma_separated(args.touching, float, "--touching")
    recognizer = Recognizer.load(
        args.model,
        pieces=None if args.pieces == "none" else args.pieces,
        lines=None if args.lines == "none" else args.lines,
    )

    def read_text(image: np.ndarray) -> str:
        return recognizer.read(image).text

    started = time.perf_counter()
    report = evaluate_reading(
        read_text,
        digits.images,
        digits.labels,
        per_cell=args.per_cell,
        lengths=lengths,
        touching_fractions=touching_fractions,
        conditions=args.conditions.split(",") if args.conditions else READING_CONDITIONS,
        seed=args.seed,
        progress=sys.stderr.isatty(),
    )
    report |= {
        "model": str(args.model),
        "pieces": args.pieces,
        "lines": args.lines,
        "split": args.split,
        "command": "python -m benchmarks.read " + shlex.join(argv),
        "seconds": time.perf_counter() - started,
    }
    write_json_atomic(args.out / "table.json", report)
    write_text_atomic(args.out / "table.md", table_markdown(report))
    save_figure_atomic(example_figure(report, digits.images, digits.labels, read_text), args.out / "examples.png")
    print(table_markdown(report), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run(parse_args(argv), argv)
    except DigitrecError as exc:
        print(f"benchmarks.read: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
