"""The `digitrec` command: parse arguments, call the library, print. No logic of its own."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shlex
import sys
from pathlib import Path

import torch

from digitrec import __version__
from digitrec.errors import DigitrecError

EXIT_BAD_INPUT = 2


def add_train_parser(commands) -> None:
    from digitrec.training.loop import TrainConfig

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


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, help="folder with the IDX files (default $DIGITREC_DATA, then ~/.cache)"
    )
    parser.add_argument("--json", action="store_true", help="print one machine-readable JSON object")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")


def int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def seed_list(text: str) -> list[int]:
    """`3` means seeds 0, 1, 2; `4,7` means seeds 4 and 7."""
    values = int_list(text)
    return list(range(values[0])) if len(values) == 1 and "," not in text else values


def add_piece_model_parser(commands) -> None:
    from digitrec.training.pieces import PieceTrainConfig

    defaults = PieceTrainConfig()
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
        "--strips", type=int, default=defaults.training_strips, help="training strips (default %(default)s)"
    )
    parser.add_argument("--validation-strips", type=int, default=defaults.validation_strips, help="default %(default)s")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="default %(default)s")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="default %(default)s")
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
    from digitrec.serve import app as server

    parser = commands.add_parser(
        "serve",
        help="run the HTTP API (/v1/predict, /docs) and the drawing page (/)",
        description="Serve a model over HTTP with uvicorn until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    parser.add_argument("--port", type=int, default=8000, help="default 8000")
    parser.add_argument("--model", default="default", help="a shipped model's name or a checkpoint (default: default)")
    parser.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    add_tta_option(parser)
    parser.add_argument("--workers", type=int, default=1, help="server processes, each with its own model (default 1)")
    parser.add_argument("--api-key", help=f"require this key on /v1/* (default ${server.API_KEY_ENV}; unset: open)")
    parser.add_argument("--max-upload-mb", type=float, default=server.MAX_UPLOAD_MB, help="default %(default)g")
    parser.add_argument("--timeout-s", type=float, default=server.REQUEST_TIMEOUT_S, help="default %(default)g")
    parser.add_argument("--no-batching", action="store_true", help="one forward pass per request")
    parser.add_argument("--batch-window-ms", type=float, default=server.BATCH_WINDOW_MS, help="default %(default)g")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="digitrec", description="Handwritten digit recognition: train, evaluate.")
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
    models = commands.add_parser("models", help="list the registered models", description="List registered models.")
    models.add_argument("--json", action="store_true", help="print JSON")
    add_serve_parser(commands)
    return parser


def train_config_from_args(args: argparse.Namespace):
    from digitrec.training.loop import TrainConfig

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.config:
        return TrainConfig.from_file(args.config, **overrides)
    return TrainConfig.for_model(overrides.pop("model", TrainConfig.model), **overrides)


def format_epoch(record, epochs: int) -> str:
    line = f"epoch {record.epoch}/{epochs}: train loss {record.train_loss:.4f} acc {record.train_accuracy:.2%}"
    if record.validation_accuracy is not None:
        line += f" | val loss {record.validation_loss:.4f} acc {record.validation_accuracy:.2%}"
    return line + f" | {record.seconds:.1f} s/epoch, {record.images_per_second:,.0f} img/s"


def command_train(args: argparse.Namespace) -> int:
    from digitrec.training.loop import fit

    config = train_config_from_args(args)
    if args.print_config:
        print(config.to_toml(), end="")
        return 0
    out_dir = args.out or Path("runs") / f"{config.model}-seed{config.seed}"
    on_epoch = None if args.json else lambda record: print(format_epoch(record, config.epochs), flush=True)
    is_main_process = int(os.environ.get("RANK", "0")) == 0  # under torchrun, rank 0 alone reports
    result = fit(config, out_dir, data_dir=args.data_dir, resume=args.resume, progress=sys.stderr.isatty(),
                 on_epoch_end=on_epoch, device=args.device)  # fmt: skip
    if not is_main_process:
        return 0
    if args.json:
        print(json.dumps({"checkpoint": str(result.checkpoint_path), "accuracy": result.test_accuracy,
                          "correct": result.test_correct, "total": result.test_total, **result.summary}))  # fmt: skip
    else:
        print(f"test accuracy: {result.test_accuracy:.2%} ({result.test_correct}/{result.test_total})")
        speed = f"{result.summary['mean_epoch_seconds']:.1f} s/epoch, {result.summary['mean_images_per_second']:,.0f}"
        print(f"mean {speed} images/s; checkpoint: {result.checkpoint_path}")
    return 0


def command_piece_model(args: argparse.Namespace) -> int:
    from digitrec.training.pieces import PieceTrainConfig, make_piece_model

    config = PieceTrainConfig(
        training_strips=args.strips, validation_strips=args.validation_strips, epochs=args.epochs, seed=args.seed
    )
    result = make_piece_model(config, args.out, args.cache, data_dir=args.data_dir, progress=sys.stderr.isatty())
    if args.json:
        print(json.dumps({"checkpoint": str(result.checkpoint_path), **result.validation}))
    else:
        for record in result.history:
            print(f"epoch {record['epoch']}: loss {record['train_loss']:.4f}, validation accuracy "
                  f"{record['accuracy']:.2%}, whole digits kept {record['whole_digits_kept']:.2%}, "
                  f"others rejected {record['not_digits_rejected']:.2%} ({record['seconds']:.0f} s)")  # fmt: skip
        print(f"checkpoint: {result.checkpoint_path}")
    return 0


def command_evaluate(args: argparse.Namespace) -> int:
    from digitrec.evaluation.report import evaluate_checkpoint
    from digitrec.training.checkpoint import WEIGHTS_DIR, resolve_model_path

    paths = [resolve_model_path(p) for p in args.checkpoint or [args.model]]
    if len(paths) > 1 or paths[0].parent == WEIGHTS_DIR:
        default_report_dir = Path("reports") / ("ensemble" if len(paths) > 1 else paths[0].stem)
    else:
        default_report_dir = paths[0].parent / "report"
    report_dir = args.report_dir or default_report_dir
    report = evaluate_checkpoint(paths, data_dir=args.data_dir, report_dir=report_dir, tta=args.tta)
    if args.json:
        print(json.dumps(report.to_json()))
        return 0
    metrics = report.metrics
    print(f"test accuracy: {metrics['accuracy']:.2%} ({metrics['correct']}/{metrics['total']})")
    print(f"{'class':>12} {'precision':>9} {'recall':>7} {'support':>7}")
    for name, row in metrics["per_class"].items():
        print(f"{name:>12} {row['precision']:>9.4f} {row['recall']:>7.4f} {row['support']:>7d}")
    print(f"report: {report_dir} (confusion_matrix.png/.json, misclassified.png, metrics.json)")
    return 0


def command_models(args: argparse.Namespace) -> int:
    from digitrec.models.registry import REGISTRY, build_model, parameter_count

    rows = [
        {"name": e.name, "parameters": parameter_count(build_model(e.name)), "description": e.description,
         "train_defaults": e.train_defaults}
        for e in REGISTRY.values()
    ]  # fmt: skip
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        print(f"{row['name']:<16} {row['parameters']:>9,} params  {row['description']}")
    return 0


def command_experiments(args: argparse.Namespace) -> int:
    from digitrec.data.datasets import load_split
    from digitrec.evaluation.experiments import GridConfig, recorded_runs, run_grid, write_report

    baselines = [] if args.baselines == "none" else [b for b in args.baselines.split(",") if b]
    cases = [] if args.grid == "baselines" else args.cases
    grid = GridConfig(cases=cases, seeds=args.seeds, epochs=args.epochs, train_subset=args.subset,
                      test_subset=args.test_subset, baselines=baselines)  # fmt: skip
    if args.report_only:
        records, failures = recorded_runs(grid, args.out), []
    else:
        records, failures = run_grid(grid, args.out, args.cache or args.out / "cache", data_dir=args.data_dir)
    if not records:
        raise DigitrecError(f"no finished runs of this grid in {args.out / 'runs'}")
    test_labels = load_split("test", args.data_dir).labels
    command = "digitrec " + shlex.join(args.argv)
    rows = write_report(records, args.out, test_labels, command)
    if args.json:
        print(json.dumps({"rows": rows, "failures": failures, "out": str(args.out)}))
    else:
        print((args.out / "table.md").read_text(), end="")
        print(f"{len(records)} runs recorded in {args.out}; {len(failures)} failed")
    for failure in failures:
        print(f"digitrec: run failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


def command_calibrate(args: argparse.Namespace) -> int:
    from digitrec.evaluation.calibration import calibrate_checkpoint

    calibration = calibrate_checkpoint(
        args.checkpoint, data_dir=args.data_dir, report_dir=args.report_dir, tta=args.tta
    )
    if args.json:
        print(json.dumps(calibration))
        return 0
    print(
        f"temperature {calibration['temperature']:.3f}, unsure below confidence {calibration['unsure_threshold']:.3f}"
    )
    print(f"test ECE {calibration['test_ece_before']:.3%} before, {calibration['test_ece_after']:.3%} after")
    print(f"test error at 99% coverage: {calibration['test_error_at_99_coverage']:.3%}")
    return 0


def command_tta_search(args: argparse.Namespace) -> int:
    from digitrec.evaluation.calibration import compare_view_sets
    from digitrec.fileio import write_json_atomic

    comparison = compare_view_sets(args.checkpoint, data_dir=args.data_dir)
    if args.out:
        write_json_atomic(args.out, comparison)
    if args.json:
        print(json.dumps(comparison))
        return 0
    names = list(comparison["total"])
    print(f"{'views':<22}" + "".join(f"{Path(p).name[:14]:>15}" for p in comparison["correct"]) + f"{'total':>8}")
    for name in names:
        counts = "".join(f"{row[name]:>15}" for row in comparison["correct"].values())
        print(f"{name:<22}{counts}{comparison['total'][name]:>8}")
    print(f"best on validation: {comparison['best']} {comparison['views'][comparison['best']]}")
    return 0


def command_export(args: argparse.Namespace) -> int:
    from digitrec.training.export import export

    print(export(args.checkpoint, args.out, args.format))
    return 0


def add_image_input_options(parser: argparse.ArgumentParser) -> None:
    """The options `predict` and `read` share: the images, the model and how it runs."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files, folders (searched recursively) or globs")
    parser.add_argument("--model", default="default", help="a shipped model's name or a checkpoint")
    parser.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    add_tta_option(parser)
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")


def report_file_rows(results) -> int:
    """Each row's notes and error on stderr, one line each; exit code 2 when some file failed, else 0."""
    for result in results:
        for note in result.notes:
            print(f"digitrec: note: {result.name}: {note}", file=sys.stderr)
        if result.error:
            print(f"digitrec: error: {result.error}", file=sys.stderr)
    return EXIT_BAD_INPUT if any(result.error for result in results) else 0


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


PREDICT_FIELDS = ["path", "page", "digit", "confidence", "unsure", "error", "note"]


def format_predictions_table(results) -> str:
    width = max([len("path"), *(len(result.name) for result in results)])
    lines = [f"{'path':<{width}}  digit  confidence  unsure"]
    for result in results:
        if result.error:
            reason = result.error.removeprefix(f"{result.name}: ")
            lines.append(f"{result.name:<{width}}  {'-':>5}  {'-':>10}  error: {reason}")
        else:
            unsure = "unsure" if result.unsure else ""
            lines.append(f"{result.name:<{width}}  {result.digit:>5}  {result.confidence:>10.3f}  {unsure}".rstrip())
    return "\n".join(lines)


def command_predict(args: argparse.Namespace) -> int:
    import csv

    from digitrec.inference.files import predict_files
    from digitrec.inference.recognizer import Recognizer

    recognizer = Recognizer.load(args.model, backend=args.backend, tta=args.tta)
    results = predict_files(recognizer, args.paths, debug_dir=args.debug_dir)
    if args.json:
        print(json.dumps([result.to_json() for result in results]))
    elif args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=PREDICT_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(result.to_json() for result in results)
    else:
        print(format_predictions_table(results))
    return report_file_rows(results)


def add_read_parser(commands) -> None:
    from digitrec.inference.recognizer import SHIPPED_PIECE_MODEL

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


def format_readings_table(results) -> str:
    width = max([len("path"), *(len(result.name) for result in results)])
    lines = [f"{'path':<{width}}  {'text':<12}  min confidence  unsure"]
    for result in results:
        if result.error:
            reason = result.error.removeprefix(f"{result.name}: ")
            lines.append(f"{result.name:<{width}}  {'-':<12}  {'-':>14}  error: {reason}")
            continue
        reading = result.reading
        text = " | ".join(line.text for line in reading.lines) or "(none)"
        confidence = f"{min(d.confidence for d in reading.digits):.3f}" if reading.digits else "-"
        unsure = "unsure" if reading.unsure else ""
        lines.append(f"{result.name:<{width}}  {text:<12}  {confidence:>14}  {unsure}".rstrip())
    return "\n".join(lines)


def command_read(args: argparse.Namespace) -> int:
    from digitrec.inference.files import read_files
    from digitrec.inference.recognizer import Recognizer

    pieces = None if args.pieces == "none" else args.pieces
    recognizer = Recognizer.load(args.model, backend=args.backend, tta=args.tta, pieces=pieces)
    results = read_files(recognizer, args.paths, annotate_dir=args.annotate)
    if args.json:
        print(json.dumps([result.to_json() for result in results]))
    else:
        print(format_readings_table(results))
    return report_file_rows(results)


def command_serve(args: argparse.Namespace) -> int:
    from digitrec.serve.app import API_KEY_ENV, ServerSettings, run_server
    from digitrec.training.checkpoint import resolve_model_path

    if args.workers < 1:
        raise DigitrecError(f"--workers must be at least 1, got {args.workers}")
    resolve_model_path(args.model)  # a missing model is a one-line error here, not a traceback at startup
    settings = ServerSettings(
        model=args.model, backend=args.backend, tta=args.tta,
        api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        max_upload_mb=args.max_upload_mb, request_timeout_s=args.timeout_s, batching=not args.no_batching,
        batch_window_ms=args.batch_window_ms, threads=args.threads,
    )  # fmt: skip
    run_server(settings, host=args.host, port=args.port, workers=args.workers)
    return 0


COMMANDS = {
    "train": command_train,
    "evaluate": command_evaluate,
    "models": command_models,
    "experiments": command_experiments,
    "calibrate": command_calibrate,
    "tta-search": command_tta_search,
    "export": command_export,
    "predict": command_predict,
    "read": command_read,
    "piece-model": command_piece_model,
    "serve": command_serve,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    try:
        return COMMANDS[args.command](args)
    except DigitrecError as exc:
        print(f"digitrec: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("digitrec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
