"""The recognition flow's commands: predict, read, serve (no torch: the shipped models run on onnxruntime)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from digitrec.errors import DigitrecError

EXIT_BAD_INPUT = 2


def shown_name(name: str) -> str:
    """A file name as one table cell: control characters (a newline in a name) escaped, not printed."""
    return name if name.isprintable() else name.encode("unicode_escape").decode("ascii")


def report_file_rows(results) -> int:
    """Each row's notes and error on stderr, one line each; exit code 2 when some file failed, else 0."""
    for result in results:
        for note in result.notes:
            print(f"digitrec: note: {shown_name(result.name)}: {shown_name(note)}", file=sys.stderr)
        if result.error:
            print(f"digitrec: error: {shown_name(result.error)}", file=sys.stderr)
    return EXIT_BAD_INPUT if any(result.error for result in results) else 0


PREDICT_FIELDS = ["path", "page", "digit", "confidence", "unsure", "error", "note"]


def format_predictions_table(results) -> str:
    width = max([len("path"), *(len(shown_name(result.name)) for result in results)])
    lines = [f"{'path':<{width}}  digit  confidence  unsure"]
    for result in results:
        if result.error:
            reason = result.error.removeprefix(f"{result.name}: ")
            lines.append(f"{shown_name(result.name):<{width}}  {'-':>5}  {'-':>10}  error: {reason}")
        else:
            unsure = "unsure" if result.unsure else ""
            lines.append(
                f"{shown_name(result.name):<{width}}  {result.digit:>5}  {result.confidence:>10.3f}  {unsure}".rstrip()
            )
    return "\n".join(lines)


def command_predict(args: argparse.Namespace) -> int:
    import csv

    if args.out is not None or args.engine != "local":
        return command_archive(args, "predict")

    from digitrec.inference.files import predict_files, use_opencv_threads
    from digitrec.inference.recognizer import Recognizer

    use_opencv_threads()
    # single digits: the reader's piece and line models are not loaded (as the archive engines' predict does)
    recognizer = Recognizer.load(
        args.model, backend=args.backend, tta=args.tta, threads=args.threads or 0, pieces=None, lines=None
    )
    results = predict_files(recognizer, args.paths, debug_dir=args.debug_dir, processes=args.jobs)
    if args.json:
        print(json.dumps([result.to_json() for result in results]))
    elif args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=PREDICT_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(result.to_json() for result in results)
    else:
        print(format_predictions_table(results))
    return report_file_rows(results)


def format_readings_table(results) -> str:
    width = max([len("path"), *(len(shown_name(result.name)) for result in results)])
    lines = [f"{'path':<{width}}  {'text':<12}  min confidence  unsure"]
    for result in results:
        if result.error:
            reason = result.error.removeprefix(f"{result.name}: ")
            lines.append(f"{shown_name(result.name):<{width}}  {'-':<12}  {'-':>14}  error: {reason}")
            continue
        reading = result.reading
        text = " | ".join(line.text for line in reading.lines) or "(none)"
        confidence = f"{min(d.confidence for d in reading.digits):.3f}" if reading.digits else "-"
        unsure = "unsure" if reading.unsure else ""
        lines.append(f"{shown_name(result.name):<{width}}  {text:<12}  {confidence:>14}  {unsure}".rstrip())
    return "\n".join(lines)


def command_read(args: argparse.Namespace) -> int:
    from digitrec.inference.files import read_files, use_opencv_threads
    from digitrec.inference.recognizer import Recognizer

    if args.out is not None or args.engine != "local":
        return command_archive(args, "read")
    use_opencv_threads()
    pieces = None if args.pieces == "none" else args.pieces
    lines = None if args.lines == "none" else args.lines
    recognizer = Recognizer.load(
        args.model, backend=args.backend, tta=args.tta, pieces=pieces, threads=args.threads or 0, lines=lines
    )
    results = read_files(recognizer, args.paths, annotate_dir=args.annotate, processes=args.jobs)
    if args.json:
        print(json.dumps([result.to_json() for result in results]))
    else:
        print(format_readings_table(results))
    return report_file_rows(results)


def check_archive_options(args: argparse.Namespace) -> None:
    if args.out is None:
        raise DigitrecError(f"--engine {args.engine} needs --out FILE.parquet")
    printing = {"--json": "json", "--csv": "csv", "--debug-dir": "debug_dir", "--annotate": "annotate"}
    printed = [flag for flag, name in printing.items() if getattr(args, name, None)]
    if printed:
        raise DigitrecError(f"--out writes a Parquet table; it does not go with {', '.join(printed)}")
    if args.engine == "local" and (args.address or args.workers):
        raise DigitrecError("--address and --workers need --engine ray")


def format_archive_summary(summary) -> str:
    if not summary.files_done_now:
        return f"{summary.out}: {summary.rows:,} rows, {summary.errors:,} with an error; all done by an earlier run"
    before = f", {summary.files_done_before:,} done by an earlier run" if summary.files_done_before else ""
    return (f"{summary.out}: {summary.rows:,} rows, {summary.errors:,} with an error; {summary.files_done_now:,} "
            f"files read in {summary.seconds:.1f} s ({summary.images_per_second:.1f} images/s){before}")  # fmt: skip


def command_archive(args: argparse.Namespace, task: str) -> int:
    """A batch job: one Parquet row per image, written in parts, resumable; bad files are rows, exit code 0."""
    from digitrec.inference.archive import JOB_THREADS, ArchiveJob, EngineOptions, run_archive

    check_archive_options(args)
    pieces, lines = getattr(args, "pieces", None), getattr(args, "lines", None)
    job = ArchiveJob(task, args.model, args.backend, args.tta, None if pieces == "none" else pieces,
                     None if lines == "none" else lines, threads=args.threads or JOB_THREADS)  # fmt: skip
    options = EngineOptions(args.engine, args.jobs, args.address, args.workers, progress=sys.stderr.isatty())
    summary = run_archive(job, args.paths, args.out, options)
    print(format_archive_summary(summary))
    return 0


def command_serve(args: argparse.Namespace) -> int:
    from digitrec.model_files import resolve_model_path
    from digitrec.serve.app import run_server
    from digitrec.serve.settings import API_KEY_ENV, ServerSettings

    if args.workers < 1:
        raise DigitrecError(f"--workers must be at least 1, got {args.workers}")
    resolve_model_path(args.model)  # a missing model is a one-line error here, not a traceback at startup
    settings = ServerSettings(
        model=args.model, backend=args.backend, tta=args.tta,
        api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        max_upload_mb=args.max_upload_mb, request_timeout_s=args.timeout_s, batching=not args.no_batching,
        batch_window_ms=args.batch_window_ms, threads=args.threads,
        corrections_db=str(args.corrections) if args.corrections else None,
    )  # fmt: skip
    run_server(settings, host=args.host, port=args.port, workers=args.workers)
    return 0
