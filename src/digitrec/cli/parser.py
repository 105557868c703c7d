"""The `digitrec` command line's parser: every command and flag, built without importing any heavy library
(defaults and choices come from the library's light modules), so that `--help` answers at once."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from digitrec import __version__
from digitrec.model_files import BACKENDS, DEFAULT_BACKEND, LINE_MODELS, SHIPPED_LINE_MODEL, SHIPPED_PIECE_MODEL
from digitrec.serve import settings
from digitrec.training.config import LINE_STYLE_NAMES, AdaptConfig, LineTrainConfig, PieceTrainConfig, TrainConfig

ARCHIVE_ENGINES = ("local", "ray")  # inference.archive.ENGINES, named here so that the parser imports nothing heavy


class OneLineErrorParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line on stderr and exit code 2, as every other user-facing error
    (argparse's own prints the usage block first). Sub-commands' parsers are of this class too."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="digitrec", description="Handwritten digit recognition: train, evaluate.")
    parser.add_argument("--version", action="version", version=f"digitrec {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train_parser(commands)
    evaluate = commands.add_parser(
        "evaluate", help="test-set report of a checkpoint", description="Evaluate on the test set."
    )
    evaluate.add_argument("checkpoint", nargs="*", help="checkpoint file(s) or run folder(s); several: an ensemble")
    evaluate.add_argument("--model", default="default", help="a shipped model's name, used when no checkpoint is given")
    evaluate.add_argument(
        "--report-dir", type=Path, help="plots and JSON (default: beside the checkpoint, or reports/)"
    )
    add_tta_option(evaluate)
    add_common_options(evaluate)
    add_experiments_parser(commands)
    calibrate = commands.add_parser(
        "calibrate",
        help="fit temperature scaling and the unsure threshold on a checkpoint's validation split",
        description="Fits on the validation split, stores the result in the checkpoint, reports ECE and "
        "risk-coverage on the test set.",
    )
    calibrate.add_argument("checkpoint", help="checkpoint file or run folder")
    calibrate.add_argument("--report-dir", type=Path, help="calibration.json, reliability.png, risk-coverage.png")
    add_tta_option(calibrate)
    add_common_options(calibrate)
    tta_search = commands.add_parser(
        "tta-search",
        help="compare test-time augmentation view sets on the validation splits of checkpoints",
        description="Counts, per checkpoint and in total, the validation images each candidate set of test-time "
        "views gets right (the test set is not used); the best total is the one to put in a model's recipe.",
    )
    tta_search.add_argument("checkpoint", nargs="+", help="checkpoint files or run folders")
    tta_search.add_argument("--out", type=Path, help="write the comparison as JSON here")
    add_common_options(tta_search)
    export = commands.add_parser("export", help="write a model as ONNX or weights-only safetensors",
                                 description="Export a checkpoint (or a shipped model).")  # fmt: skip
    export.add_argument("checkpoint", help="checkpoint file, run folder or shipped model name")
    export.add_argument("--format", choices=["onnx", "safetensors"], default="onnx")
    export.add_argument("--out", type=Path, required=True, help="output file")
    add_predict_parser(commands)
    add_read_parser(commands)
    add_piece_model_parser(commands)
    add_line_model_parser(commands)
    add_adapt_parser(commands)
    models = commands.add_parser("models", help="list the registered models", description="List registered models.")
    models.add_argument("--json", action="store_true", help="print JSON")
    add_serve_parser(commands)
    return parser


def add_train_parser(commands) -> None:
    parser = commands.add_parser(
        "train",
        help="train a model on MNIST (or another IDX dataset)",
        description="Train a model. Values come from the model's defaults, then --config, then flags.",
    )
    parser.add_argument("--config", type=Path, help="TOML or JSON file with TrainConfig fields")
    parser.add_argument(
        "--out", type=Path, help="run folder for checkpoint, history, config (default runs/MODEL-seedN)"
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as TOML and exit")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="default: CUDA if present")
    add_common_options(parser)
    fields = parser.add_argument_group("training config (TrainConfig fields)")
    for field in dataclasses.fields(TrainConfig):
        kind = type(field.default)
        fields.add_argument(
            f"--{field.name.replace('_', '-')}", dest=field.name, default=None,
            type=parse_bool if kind is bool else kind, metavar=kind.__name__.upper(),
            help=f"default {field.default!r} (or the model's own)",
        )  # fmt: skip


def add_tta_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-tta", dest="tta", action="store_false",
        help="read each image once instead of through the model's test-time views (faster, less accurate)",
    )  # fmt: skip


def parse_bool(text: str) -> bool:
    if text.lower() in {"1", "true", "yes", "on"}:
        return True
    if text.lower() in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, help="folder with the IDX files (default $DIGITREC_DATA, then ~/.cache)"
    )
    parser.add_argument("--json", action="store_true", help="print one machine-readable JSON object")
    parser.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice)")


def int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def seed_list(text: str) -> list[int]:
    """`3` means seeds 0, 1, 2; `4,7` means seeds 4 and 7."""
    values = int_list(text)
    return list(range(values[0])) if len(values) == 1 and "," not in text else values


def add_adapt_parser(commands) -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(AdaptConfig)}
    parser = commands.add_parser(
        "adapt",
        help="adapt the classifier to one writer or one kind of form from labelled examples",
        description="Fine-tunes the classifier on labelled examples (a TSV with columns file and label: one digit, or "
        "the digits of a number, which the reader cuts into that many pieces), with MNIST digits mixed in so that "
        "nothing already known is forgotten, and writes a model folder that every --model accepts. A share of the "
        "examples is held out to report accuracy before and after. Nothing is written to --out unless the run "
        "completes.",
    )
    parser.add_argument("labels", nargs="?", type=Path, help="TSV of examples: file (relative to it) and label")
    parser.add_argument(
        "--from", dest="from_db", type=Path, metavar="DB", help="corrections stored by `serve --corrections DB`"
    )
    parser.add_argument("--out", type=Path, required=True, help="the adapted model's folder (must not exist)")
    parser.add_argument("--base", default=defaults["base"], help="the model to start from (default %(default)s)")
    parser.add_argument("--epochs", type=positive_int, default=defaults["epochs"], help="default %(default)s")
    parser.add_argument("--learning-rate", type=float, default=defaults["learning_rate"], help="default %(default)g")
    parser.add_argument("--holdout", type=float, default=defaults["holdout_fraction"],
                        help="share of the examples held out to measure (default %(default)g)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=defaults["seed"], help="default %(default)s")
    add_common_options(parser)


def add_piece_model_parser(commands) -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(PieceTrainConfig)}  # no instance: nothing imported
    parser = commands.add_parser(
        "piece-model",
        help="train the reader's piece model (is a cut piece of a line one whole digit?)",
        description="Cuts photo-like strips of MNIST training digits the way `digitrec read` does, labels every "
        "candidate piece from the strip's record of its digits, and trains the 11-class piece model on them "
        "(validation: strips of the tuning digits 55,000-59,999). The pieces are cached, so a rerun only trains.",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/piece-model.safetensors"), help="checkpoint to write")
    parser.add_argument("--cache", type=Path, default=Path("runs/piece-data"), help="where the pieces are cached")
    parser.add_argument(
        "--strips", type=int, default=defaults["training_strips"], help="training strips (default %(default)s)"
    )
    parser.add_argument(
        "--validation-strips", type=int, default=defaults["validation_strips"], help="default %(default)s"
    )
    parser.add_argument("--epochs", type=int, default=defaults["epochs"], help="default %(default)s")
    parser.add_argument("--seed", type=int, default=defaults["seed"], help="default %(default)s")
    parser.add_argument(
        "--flagged-ones", type=float, default=defaults["flagged_ones"],
        help="share of the strips' 1s written with a long flag, as in Europe and Latin America (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--start-from", metavar="MODEL", help="fine-tune this piece model (piece-scorer: the shipped one)"
    )
    add_common_options(parser)


def add_line_model_parser(commands) -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(LineTrainConfig)}
    parser = commands.add_parser(
        "line-model",
        help="train the reader's line model (a whole line of digits read at once, CNN + CTC)",
        description="Draws binary lines of MNIST training digits as the reader's ink stage leaves them (touching, "
        "flagged 1s, small trailing digits, dots, dashes, underlines), trains the line model with CTC, and writes "
        "OUT/line-model.safetensors after every epoch (a rerun resumes) and OUT/line-model.onnx for `read --lines`. "
        "Validation: lines of the tuning digits 55,000-59,999. The lines are cached, so a rerun only trains.",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/line-model"), help="folder to write (resumable)")
    parser.add_argument("--cache", type=Path, default=Path("runs/line-data"), help="where the lines are cached")
    parser.add_argument(
        "--lines", type=int, default=defaults["training_lines"], help="training lines (default %(default)s)"
    )
    parser.add_argument(
        "--validation-lines", type=int, default=defaults["validation_lines"], help="default %(default)s"
    )
    parser.add_argument("--epochs", type=int, default=defaults["epochs"], help="default %(default)s")
    parser.add_argument("--seed", type=int, default=defaults["seed"], help="default %(default)s")
    parser.add_argument(
        "--model", choices=LINE_MODELS, default=defaults["model"], help="architecture (default %(default)s)"
    )
    parser.add_argument(
        "--styles",
        choices=LINE_STYLE_NAMES,
        default=defaults["styles"],
        help="how the digits are written: basic (flags of moderate length, ligatures at the foot), latin (also "
        "long and flat flags, crossed 7s, curled 9s, ligatures at any height) or amounts (latin, and round sums "
        "with small zeros joined at the top, flags bowed like a cursive l); default %(default)s",
    )
    parser.add_argument(
        "--scanned-share",
        type=float,
        default=defaults["scanned_share"],
        metavar="SHARE",
        help="share of the lines scanned as cheque fields (gray ink on a security pattern) and binarized by the "
        "reader's own ink stage, as it sees real amounts (default %(default)s; drawing them is slower)",
    )
    parser.add_argument(
        "--plain-lines",
        type=int,
        default=defaults["plain_lines"],
        metavar="N",
        help="add N lines never scanned (clean ink, digits apart or touching) to the training lines, so that a "
        "model learning scanned amounts keeps reading such lines (default %(default)s)",
    )
    parser.add_argument(
        "--plain-styles",
        choices=LINE_STYLE_NAMES,
        default=defaults["plain_styles"],
        help="how the plain lines' digits are written (default %(default)s)",
    )
    parser.add_argument(
        "--init",
        type=Path,
        metavar="CHECKPOINT",
        help="start from this line model's weights (a line-model.safetensors) instead of random ones: fine-tuning",
    )
    parser.add_argument(
        "--learning-rate", type=float, default=defaults["learning_rate"], help="the peak (default %(default)g)"
    )
    parser.add_argument(
        "--drawing-workers", type=positive_int, default=1, help="processes drawing the lines (default %(default)s)"
    )
    add_common_options(parser)


def add_experiments_parser(commands) -> None:
    parser = commands.add_parser(
        "experiments",
        help="run the report's eight cases and classical baselines over seeds (cached, resumable)",
        description="Runs each (case, seed) not yet recorded under OUT/runs/, then writes table.md, table.csv, "
        "summary.json and plots in OUT. Interrupt at any time: a rerun continues where it stopped.",
    )
    parser.add_argument("grid", choices=["paper", "baselines"], help="paper: CNN cases + baselines; baselines only")
    parser.add_argument(
        "--out", type=Path, default=Path("results/paper"), help="results folder (default results/paper)"
    )
    parser.add_argument("--cache", type=Path, help="checkpoints of unfinished runs (default OUT/cache, not committed)")
    parser.add_argument("--seeds", type=seed_list, default=[0, 1, 2], help="a count (3: seeds 0-2) or a list (4,7)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per CNN run (default 20, the report's)")
    parser.add_argument("--cases", type=int_list, default=list(range(1, 9)), help="paper cases, e.g. 1,5,7")
    parser.add_argument("--baselines", default="knn,svm,random-forest,mlp", help="comma-separated, or 'none'")
    parser.add_argument("--subset", type=int, default=0, help="train on only this many training images (0: all)")
    parser.add_argument("--test-subset", type=int, default=0, help="test on only the first N test images (0: all)")
    parser.add_argument("--report-only", action="store_true", help="tables and plots from the runs recorded so far")
    add_common_options(parser)


def add_serve_parser(commands) -> None:
    parser = commands.add_parser(
        "serve",
        help="run the HTTP API (/v1/predict, /docs) and the drawing page (/)",
        description="Serve a model over HTTP with uvicorn until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    parser.add_argument("--port", type=int, default=8000, help="default 8000")
    parser.add_argument("--model", default="default", help="a shipped model's name or a checkpoint (default: default)")
    parser.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND, help="default %(default)s")
    add_tta_option(parser)
    parser.add_argument("--workers", type=int, default=1, help="server processes, each with its own model (default 1)")
    parser.add_argument("--api-key", help=f"require this key on /v1/* (default ${settings.API_KEY_ENV}; unset: open)")
    parser.add_argument(
        "--corrections", type=Path, metavar="DB",
        help="keep the corrections people send (POST /v1/corrections, the page's 'that's wrong') in this SQLite file, "
        "for `digitrec adapt --from DB`",
    )  # fmt: skip
    parser.add_argument("--max-upload-mb", type=float, default=settings.MAX_UPLOAD_MB, help="default %(default)g")
    parser.add_argument("--timeout-s", type=float, default=settings.REQUEST_TIMEOUT_S, help="default %(default)g")
    parser.add_argument("--no-batching", action="store_true", help="one forward pass per request")
    parser.add_argument("--batch-window-ms", type=float, default=settings.BATCH_WINDOW_MS, help="default %(default)g")
    parser.add_argument(
        "--threads", type=positive_int, help="CPU threads for the model (default: the runtime's choice)"
    )


def add_image_input_options(parser: argparse.ArgumentParser) -> None:
    """The options `predict` and `read` share: the images, the model and how it runs."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files, folders (searched recursively) or globs")
    parser.add_argument("--model", default="default", help="a shipped model's name or a checkpoint")
    parser.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND, help="default %(default)s")
    add_tta_option(parser)
    parser.add_argument(
        "--threads", type=positive_int, help="CPU threads for the model (default: the runtime's choice)"
    )
    parser.add_argument(
        "--jobs", type=positive_int, metavar="N",
        help="processes answering files side by side, each with its own model on one thread, also for --out with "
        "the local engine (default: one per CPU core when there are many files, else 1)",
    )  # fmt: skip


def add_archive_options(parser: argparse.ArgumentParser) -> None:
    """`--out results.parquet`: a batch job over an archive (inference.archive), resumable, optionally on Ray."""
    job = parser.add_argument_group("batch jobs (a Parquet table instead of printed results)")
    job.add_argument(
        "--out", type=Path, metavar="FILE.parquet",
        help="write one row per image here, in parts as they finish (FILE.parquet.parts/); a rerun with the same "
        "--out skips what is done. Inputs may also be .txt/.csv lists of paths",
    )  # fmt: skip
    job.add_argument("--engine", choices=ARCHIVE_ENGINES, default="local", help="local: this machine, in --jobs "
                     "processes (default); ray: a Ray cluster, the model loaded once per worker (needs "
                     "digitrec[cluster])")  # fmt: skip
    job.add_argument("--address", help="ray: a running cluster (HOST:PORT or ray://...); default: a local one")
    job.add_argument("--workers", type=positive_int, help="ray: workers, one CPU each (default: the cluster's CPUs)")


def add_predict_parser(commands) -> None:
    parser = commands.add_parser(
        "predict",
        help="recognize the digit in each photo, scan or image file",
        description="One digit per image (PNG, JPEG, BMP, TIFF, WebP, GIF's first frame) or PDF page. Photos are "
        "cleaned up first: lighting, colours, ruled lines, crop and centring as in MNIST. A file that fails gets "
        "a one-line error and the others go on; the exit code is then 2.",
    )
    add_image_input_options(parser)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print a JSON array, one object per image")
    output.add_argument("--csv", action="store_true", help="print CSV with a header row")
    parser.add_argument("--debug-dir", type=Path, help="write one PNG strip of the pipeline's stages per image here")
    add_archive_options(parser)


def add_read_parser(commands) -> None:
    parser = commands.add_parser(
        "read",
        help="read whole numbers (several digits, several lines) in photos, scans and drawings",
        description="Finds every handwritten digit in each image (PNG, JPEG, BMP, TIFF, WebP, GIF's first frame) or "
        "PDF page: cleans the photo up, splits touching digits, joins broken ones, reads each line left to right. "
        "Dots, commas and dashes are reported as separators, never read as digits. A file that cannot be read gets "
        "a one-line error and the others go on; the exit code is then 2. An image without digits reads as empty "
        "text, with a note.",
    )
    add_image_input_options(parser)
    parser.add_argument("--json", action="store_true", help="print a JSON array, one object per image")
    parser.add_argument("--annotate", type=Path, metavar="DIR", help="write each image with its digits boxed here")
    parser.add_argument(
        "--pieces",
        default=SHIPPED_PIECE_MODEL,
        help="the piece model that decides where lines are cut: the shipped one (default), a checkpoint, or 'none' "
        "(the classifier's own confidence)",
    )
    parser.add_argument(
        "--lines",
        default=SHIPPED_LINE_MODEL,
        help="the line models that read each line whole and overrule the cut digits where much surer, their views "
        "pooled: the shipped ones (default %(default)s), ONNX files from `digitrec line-model` separated by commas, "
        "or 'none' (cut digits only)",
    )
    add_archive_options(parser)
