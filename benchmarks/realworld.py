"""Real writing that nothing here was tuned on: USPS postal scans and real bank-cheque amounts, read through the
user-facing path (image files in, the code behind `digitrec predict` / `digitrec read`).

    python -m benchmarks.realworld                         # both dev sets -> results/realworld/
    python -m benchmarks.realworld --usps 1000 --cheques 0 # a quick look

The dev sets live in ../shared/data/dev (or $DIGITREC_DEV_DATA); they are never copied into the repository.
USPS digits are written as 16x16 PNG files, as a user would hand them over. A cheque amount counts as read when its
digits are exactly the label's (separators ignored); digit accuracy is 1 - edit distance / label length. The
reference row for USPS is the naive MNIST-style framing (min-max scale, invert if needed, crop to the ink, 20-px box,
centre of mass) fed to the same model.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from digitrec.evaluation.reading import levenshtein
from digitrec.fileio import write_bytes_atomic, write_json_atomic, write_text_atomic
from digitrec.images.framing import mnist_frame
from digitrec.inference.files import predict_files, read_files
from digitrec.inference.recognizer import Recognizer
from digitrec.mnist import WHITE
from digitrec.model_files import SHIPPED_LINE_MODEL

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_DATA_ENV = "DIGITREC_DEV_DATA"
DEFAULT_DEV_DATA = REPO_ROOT.parent / "shared" / "data" / "dev"
MISREAD_SHOWN = 60  # misread examples drawn in each picture
NAIVE_INK_THRESHOLD = 0.5  # the naive framing's ink: above half of the min-max range


def dev_data_dir() -> Path:
    import os

    return Path(os.environ.get(DEV_DATA_ENV) or DEFAULT_DEV_DATA)


def naive_framing(image: np.ndarray) -> np.ndarray:
    """The reference: min-max scale, ink bright (inverted when the border is bright), cropped to the ink, MNIST's
    20-px box and centre of mass."""
    scaled = (image.astype(np.float32) - image.min()) / max(1.0, float(image.max() - image.min()))
    border = np.concatenate([scaled[0], scaled[-1], scaled[:, 0], scaled[:, -1]])
    if border.mean() > NAIVE_INK_THRESHOLD:
        scaled = 1 - scaled
    ink = (scaled > NAIVE_INK_THRESHOLD).astype(np.uint8) * WHITE
    if not ink.any():
        return np.zeros((28, 28), np.uint8)
    rows, cols = np.nonzero(ink)
    crop = (scaled * WHITE).astype(np.uint8)[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return mnist_frame(crop)


def usps_rows(recognizer: Recognizer, images: np.ndarray, labels: np.ndarray, folder: Path) -> list[dict]:
    paths = []
    for index, image in enumerate(tqdm(images, desc="writing USPS PNGs", leave=False, disable=None)):
        path = folder / f"usps-{index:05d}-{labels[index]}.png"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    results = predict_files(recognizer, paths)
    naive = recognizer.predict_proba(np.stack([naive_framing(image) for image in images])).argmax(1)
    return [
        {"index": i, "label": int(labels[i]), "digit": r.digit, "unsure": r.unsure, "error": r.error,
         "naive": int(naive[i])}
        for i, r in enumerate(results)
    ]  # fmt: skip


def usps_summary(rows: list[dict]) -> dict:
    count = len(rows)
    refused = [row for row in rows if row["error"]]
    causes = Counter(row["error"].split(": ", 1)[-1].split(" (")[0] for row in refused)
    return {
        "images": count,
        "accuracy": sum(row["digit"] == row["label"] for row in rows) / count,
        "no_answer": len(refused),
        "no_answer_causes": dict(causes),
        "unsure": sum(bool(row["unsure"]) for row in rows) / count,
        "naive_accuracy": sum(row["naive"] == row["label"] for row in rows) / count,
    }


def cheque_rows(recognizer: Recognizer, folder: Path, limit: int) -> list[dict]:
    with (folder / "labels.tsv").open() as handle:
        labelled = list(csv.DictReader(handle, delimiter="\t"))[:limit]
    results = read_files(recognizer, [str(folder / row["file"]) for row in labelled])
    rows = []
    for row, result in zip(labelled, results, strict=True):
        digits = "".join(ch for ch in (result.reading.text if result.reading else "") if ch.isdigit())
        rows.append({"file": row["file"], "label": row["label"], "read": digits, "error": result.error,
                     "problem": result.reading.problem if result.reading else None})  # fmt: skip
    return rows


def cheque_cause(row: dict) -> str:
    if row["read"] == row["label"]:
        return "right"
    if not row["read"]:
        return "no digits found"
    if len(row["read"]) != len(row["label"]):
        return "digits missing" if len(row["read"]) < len(row["label"]) else "digits added"
    return "digits misread (right length)"


def cheque_summary(rows: list[dict]) -> dict:
    label_digits = sum(len(row["label"]) for row in rows)
    edits = sum(levenshtein(row["read"], row["label"]) for row in rows)
    return {
        "amounts": len(rows),
        "exact": sum(row["read"] == row["label"] for row in rows) / len(rows),
        "digit_accuracy": 1 - edits / label_digits,
        "no_digits": sum(not row["read"] for row in rows),
        "causes": dict(Counter(cheque_cause(row) for row in rows)),
    }


def misread_usps_picture(images: np.ndarray, rows: list[dict]) -> bytes:
    """A grid of misread or refused USPS digits (4x enlarged), each with label -> answer."""
    wrong = [row for row in rows if row["digit"] != row["label"]][:MISREAD_SHOWN]
    tile, columns = 64, 10
    canvas = Image.new("L", (columns * tile, max(1, -(-len(wrong) // columns)) * (tile + 14)), WHITE)
    draw = ImageDraw.Draw(canvas)
    for k, row in enumerate(wrong):
        x, y = (k % columns) * tile, (k // columns) * (tile + 14)
        canvas.paste(Image.fromarray(images[row["index"]]).resize((tile - 4, tile - 4), Image.NEAREST), (x, y))
        answer = "-" if row["digit"] is None else str(row["digit"])
        draw.text((x + 2, y + tile - 2), f"{row['label']}->{answer}", fill=0)
    return png_bytes(np.asarray(canvas))


def misread_cheques_picture(folder: Path, rows: list[dict]) -> bytes:
    """The misread cheque amounts, one per line, each with label and reading."""
    wrong = [row for row in rows if row["read"] != row["label"]][:MISREAD_SHOWN]
    strips = []
    for row in wrong:
        image = Image.open(folder / row["file"]).convert("L")
        image = image.resize((max(1, image.width * 60 // max(1, image.height)), 60))
        line = Image.new("L", (max(image.width, 10) + 260, 64), WHITE)
        line.paste(image, (0, 2))
        ImageDraw.Draw(line).text((image.width + 8, 24), f"{row['label']} -> {row['read'] or '(none)'}", fill=0)
        strips.append(np.asarray(line))
    if not strips:
        strips = [np.full((64, 320), WHITE, np.uint8)]
    width = max(s.shape[1] for s in strips)
    return png_bytes(np.vstack([np.pad(s, ((0, 0), (0, width - s.shape[1])), constant_values=WHITE) for s in strips]))


def png_bytes(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    return encoded.tobytes()


def table_markdown(report: dict) -> str:
    lines = ["# Real writing from outside MNIST: the dev sets", "", f"Command: `{report['command']}` "
             f"({report['seconds']:.0f} s, model `{report['model']}`, 2 CPU cores). The reader's rules were chosen on "
             "these dev sets (no model weights were trained on them); the work is judged on other, hidden images "
             "of the same kinds, so expect those figures to be lower.", ""]  # fmt: skip
    usps = report.get("usps")
    if usps:
        lines += [
            "## USPS postal scans (dev set: the USPS training split, 16x16 PNG files through `digitrec predict`)", "",
            "| reader | digits | right | no answer | unsure |", "|---|---:|---:|---:|---:|",
            f"| digitrec predict | {usps['images']:,} | **{usps['accuracy']:.2%}** | {usps['no_answer']} | "
            f"{usps['unsure']:.1%} |",
            f"| naive framing + the same model (reference) | {usps['images']:,} | {usps['naive_accuracy']:.2%} | 0 | |",
            "", "No-answer causes: " + (", ".join(f"{k}: {v}" for k, v in usps["no_answer_causes"].items()) or "none")
            + ". Misread and refused digits: `misread-usps.png` (written beside this table, not committed).", "",
        ]  # fmt: skip
    cheques = report.get("cheques")
    if cheques:
        causes = ", ".join(f"{k}: {v}" for k, v in sorted(cheques["causes"].items()))
        lines += [
            "## Real cheque courtesy amounts (dev set: 128 ORAND-CAR-A crops through `digitrec read`)", "",
            "| reader | amounts | read exactly | digits right | no digits found |", "|---|---:|---:|---:|---:|",
            f"| digitrec read | {cheques['amounts']} | **{cheques['exact']:.1%}** | {cheques['digit_accuracy']:.1%} | "
            f"{cheques['no_digits']} |",
        ]  # fmt: skip
        cut_only = report.get("cheques_cut_only")
        if cut_only:
            lines.append(
                f"| `digitrec read --lines none` (cut digits only, no line model) | {cut_only['amounts']} | "
                f"{cut_only['exact']:.1%} | {cut_only['digit_accuracy']:.1%} | {cut_only['no_digits']} |"
            )
        lines += [
            "", f"Outcomes: {causes}. Misread amounts: `misread-cheques.png` (written beside this table, not "
            "committed: the dev images stay out of the repository).", "",
        ]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.realworld", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="a shipped model's name, an ONNX file or a checkpoint")
    parser.add_argument(
        "--lines",
        default=SHIPPED_LINE_MODEL,
        help="the line models: the shipped ones (default) or ONNX files, comma-separated",
    )
    parser.add_argument("--usps", type=int, default=7291, help="USPS digits to read (default all 7,291; 0: none)")
    parser.add_argument("--cheques", type=int, default=128, help="cheque amounts to read (default all 128; 0: none)")
    parser.add_argument("--dev-data", type=Path, help=f"the dev sets' folder (default ${DEV_DATA_ENV} or ../shared)")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "results" / "realworld", help="default results/realworld"
    )
    args = parser.parse_args(argv)
    dev = args.dev_data or dev_data_dir()
    recognizer = Recognizer.load(args.model, lines=args.lines)
    started = time.perf_counter()
    report: dict = {"model": str(args.model), "command": "python -m benchmarks.realworld " + shlex.join(argv or [])}
    if args.usps:
        data = np.load(dev / "usps" / "usps-train.npz")
        images, labels = data["images"][: args.usps], data["labels"][: args.usps]
        with tempfile.TemporaryDirectory() as folder:
            rows = usps_rows(recognizer, images, labels, Path(folder))
        report["usps"] = usps_summary(rows)
        write_bytes_atomic(args.out / "misread-usps.png", misread_usps_picture(images, rows))
    if args.cheques:
        rows = cheque_rows(recognizer, dev / "cheque-amounts", args.cheques)
        report["cheques"] = cheque_summary(rows)
        report["cheque_readings"] = rows
        cut_only = Recognizer.load(args.model, lines=None)
        report["cheques_cut_only"] = cheque_summary(cheque_rows(cut_only, dev / "cheque-amounts", args.cheques))
        write_bytes_atomic(args.out / "misread-cheques.png", misread_cheques_picture(dev / "cheque-amounts", rows))
    report["seconds"] = time.perf_counter() - started
    write_json_atomic(args.out / "table.json", report)
    write_text_atomic(args.out / "table.md", table_markdown(report))
    print(table_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
