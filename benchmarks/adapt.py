"""Adapting to a form or a writer (`digitrec adapt`), measured: cheque amounts before and after, by k-fold
cross-validation over the 128 dev cheques (here they may be trained on: they are the adaptation set), a learning
curve, one USPS "writer", and the MNIST test accuracy of each adapted classifier (how much it forgot).

    python -m benchmarks.adapt                          # 4 folds, curve 10/25/50/all, USPS -> results/adapt/
    python -m benchmarks.adapt --folds 2 --curve 10     # a quick look

Every adapted model is written to a temporary folder and read through the user-facing path (`Recognizer.load(DIR)`,
`read` / `predict`), exactly as `digitrec read --model DIR` would. Examples the reader cannot cut into their
label's digit count are left out of training (and counted); every held-out cheque is read.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from digitrec.data.datasets import load_split
from digitrec.errors import DigitrecError
from digitrec.fileio import write_json_atomic, write_text_atomic
from digitrec.inference.recognizer import Recognizer
from digitrec.training.adapt import Example, adapt, example_digits, label_accuracy, read_labels_tsv
from digitrec.training.config import AdaptConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_DATA = REPO_ROOT.parent / "shared" / "data" / "dev"
USPS_ADAPT, USPS_TEST = 300, 1000  # one "writer": adapt on the first 300 USPS dev digits, test on the next 1,000


def mnist_test_accuracy(model_dir: Path, data_dir=None) -> float:
    test = load_split("test", data_dir)
    return float((Recognizer.load(model_dir).predict_proba(test.images).argmax(1) == test.labels).mean())


def alignable(recognizer: Recognizer, examples: list[Example]) -> list[Example]:
    kept = []
    for example in examples:
        try:
            example_digits(recognizer, example)
            kept.append(example)
        except DigitrecError:
            pass
    return kept


def adapted_accuracy(train: list[Example], test: list[Example], config: AdaptConfig, data_dir, mnist: bool) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "model"
        result = adapt(train, out, config, data_dir=data_dir, source="benchmarks.adapt", progress=False)
        row = {"train_examples": len(train), "test_examples": len(test),
               "after": label_accuracy(Recognizer.load(out), test),
               "mnist_tuning_after": result.card["mnist_tuning_accuracy_after"]}  # fmt: skip
        if mnist:
            row["mnist_test_after"] = mnist_test_accuracy(out, data_dir)
    return row


def cheque_folds(examples: list[Example], folds: int, config: AdaptConfig, data_dir, base: Recognizer) -> list[dict]:
    order = np.random.default_rng(config.seed).permutation(len(examples))
    rows = []
    for fold in range(folds):
        test = [examples[i] for i in order[fold::folds]]
        train = alignable(base, [examples[i] for i in np.setdiff1d(order, order[fold::folds], assume_unique=True)])
        row = adapted_accuracy(train, test, config, data_dir, mnist=fold == 0)
        rows.append({"fold": fold, "before": label_accuracy(base, test), **row})
        print(f"fold {fold}: {rows[-1]}", flush=True)
    return rows


def learning_curve(examples, sizes, config, data_dir, base) -> list[dict]:
    """Adapt on the first N of a fixed training half, test on the other half."""
    order = np.random.default_rng(config.seed + 1).permutation(len(examples))
    half = len(examples) // 2
    test = [examples[i] for i in order[half:]]
    pool = alignable(base, [examples[i] for i in order[:half]])
    before = label_accuracy(base, test)
    rows = []
    for size in sizes:
        row = adapted_accuracy(pool[:size], test, config, data_dir, mnist=False)
        rows.append({"examples": min(size, len(pool)), "before": before, **row})
        print(f"curve {size}: {rows[-1]}", flush=True)
    return rows


def usps_writer(config: AdaptConfig, data_dir, base: Recognizer) -> dict:
    data = np.load(DEV_DATA / "usps" / "usps-train.npz")
    examples = [Example(f"usps {i}", Image.fromarray(data["images"][i]), str(data["labels"][i]))
                for i in range(USPS_ADAPT + USPS_TEST)]  # fmt: skip
    train, test = examples[:USPS_ADAPT], examples[USPS_ADAPT:]
    return {"before": label_accuracy(base, test), **adapted_accuracy(train, test, config, data_dir, mnist=True)}


def markdown(report: dict) -> str:
    def pct(value) -> str:
        return "-" if value is None else f"{value:.1%}"

    folds = report["folds"]
    before = np.mean([row["before"] for row in folds])
    after = np.mean([row["after"] for row in folds])
    lines = [
        "# Adapting to cheque amounts and to one writer", "",
        f"Command: `{report['command']}` ({report['seconds']:.0f} s on the 2 CPU cores).",
        f"Config: {report['config']}.", "",
        f"## Cheque amounts, {len(folds)}-fold cross-validation over the 128 dev amounts (exact, digits only)", "",
        "| fold | trained on | tested on | zero-shot | adapted | MNIST test after |", "|---|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for row in folds:
        lines.append(f"| {row['fold']} | {row['train_examples']} | {row['test_examples']} | {pct(row['before'])} | "
                     f"{pct(row['after'])} | {pct(row.get('mnist_test_after'))} |")  # fmt: skip
    lines += [f"| **mean** | | | **{before:.1%}** | **{after:.1%}** | |", ""]
    if report.get("curve"):
        lines += ["## Learning curve (train on the first N of one half, test on the other half)", "",
                  "| examples | zero-shot | adapted |", "|---:|---:|---:|"]  # fmt: skip
        lines += [f"| {r['examples']} | {pct(r['before'])} | {pct(r['after'])} |" for r in report["curve"]]
        lines.append("")
    usps = report.get("usps")
    if usps:
        lines += [f"## One writer: USPS, adapted on {USPS_ADAPT} digits, tested on the next {USPS_TEST}", "",
                  "| zero-shot | adapted | MNIST test after |", "|---:|---:|---:|",
                  f"| {pct(usps['before'])} | {pct(usps['after'])} | {pct(usps.get('mnist_test_after'))} |",
                  ""]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.adapt", description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=4, help="cross-validation folds over the cheques (default 4)")
    parser.add_argument("--curve", default="10,25,50,64", help="learning-curve sizes, comma-separated ('' for none)")
    parser.add_argument("--no-usps", action="store_true", help="skip the USPS writer")
    parser.add_argument("--epochs", type=int, default=AdaptConfig.epochs)
    parser.add_argument("--data-dir", type=Path, help="MNIST folder (default $DIGITREC_DATA)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "adapt", help="default results/adapt")
    args = parser.parse_args(argv)
    config = AdaptConfig(epochs=args.epochs, holdout_fraction=0.0)
    started = time.perf_counter()
    base = Recognizer.load()
    examples = read_labels_tsv(DEV_DATA / "cheque-amounts" / "labels.tsv")
    report = {"command": "python -m benchmarks.adapt " + shlex.join(argv or []), "config": str(config)}
    report["folds"] = cheque_folds(examples, args.folds, config, args.data_dir, base)
    sizes = [int(s) for s in args.curve.split(",") if s.strip()]
    report["curve"] = learning_curve(examples, sizes, config, args.data_dir, base) if sizes else []
    if not args.no_usps:
        report["usps"] = usps_writer(config, args.data_dir, base)
    report["seconds"] = time.perf_counter() - started
    write_json_atomic(args.out / "table.json", report)
    write_text_atomic(args.out / "table.md", markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
