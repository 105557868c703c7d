"""The training flow's commands: train, piece-model, evaluate, models, experiments, calibrate, tta-search, export.

Each imports what it runs (torch and the rest of the `[train]` extra) only when it runs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
from pathlib import Path

from digitrec.errors import DigitrecError
from digitrec.training.config import AdaptConfig, LineTrainConfig, PieceTrainConfig, TrainConfig


def use_threads(args: argparse.Namespace) -> None:
    """torch's CPU threads for this command, when --threads is given."""
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def train_config_from_args(args: argparse.Namespace):
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
    use_threads(args)
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


def command_line_model(args: argparse.Namespace) -> int:
    use_threads(args)
    from digitrec.training.lines import make_line_model

    config = LineTrainConfig(training_lines=args.lines, validation_lines=args.validation_lines, epochs=args.epochs,
                             seed=args.seed, model=args.model, styles=args.styles,
                             scanned_share=args.scanned_share, init=str(args.init or ""),
                             learning_rate=args.learning_rate, plain_lines=args.plain_lines,
                             plain_styles=args.plain_styles)  # fmt: skip
    result = make_line_model(config, args.out, args.cache, data_dir=args.data_dir, progress=sys.stderr.isatty(),
                             drawing_workers=args.drawing_workers)  # fmt: skip
    last = result["history"][-1]
    if args.json:
        print(json.dumps({"onnx": result["onnx"], **last}))
    else:
        for record in result["history"]:
            print(f"epoch {record['epoch']}: loss {record['train_loss']:.4f}, validation lines read exactly "
                  f"{record['exact']:.2%} ({record['seconds']:.0f} s)")  # fmt: skip
        print(f"line model: {result['onnx']}")
    return 0


def command_piece_model(args: argparse.Namespace) -> int:
    use_threads(args)
    from digitrec.training.pieces import make_piece_model

    config = PieceTrainConfig(
        training_strips=args.strips,
        validation_strips=args.validation_strips,
        epochs=args.epochs,
        seed=args.seed,
        flagged_ones=args.flagged_ones,
        start_from=args.start_from,
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
    use_threads(args)
    from digitrec.evaluation.report import evaluate_checkpoint
    from digitrec.model_files import WEIGHTS_DIR, resolve_model_path

    paths = [resolve_model_path(p) for p in args.checkpoint or [args.model]]
    for path in paths:
        if path.suffix == ".safetensors":
            from digitrec.training.checkpoint import check_classifier, read_checkpoint

            check_classifier(path, read_checkpoint(path)[1])
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
    use_threads(args)
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
    use_threads(args)
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
    use_threads(args)
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


def command_adapt(args: argparse.Namespace) -> int:
    use_threads(args)
    from digitrec.training.adapt import adapt, examples_from_corrections, read_labels_tsv

    if (args.labels is None) == (args.from_db is None):
        raise DigitrecError("give a labels TSV or --from DB (one of the two)")
    config = AdaptConfig(base=args.base, epochs=args.epochs, learning_rate=args.learning_rate,
                         holdout_fraction=args.holdout, seed=args.seed)  # fmt: skip
    examples = read_labels_tsv(args.labels) if args.labels else examples_from_corrections(args.from_db)
    source = str(args.labels or args.from_db)
    result = adapt(examples, args.out, config, data_dir=args.data_dir, source=source, progress=sys.stderr.isatty())
    card = result.card
    if args.json:
        print(json.dumps({"out": str(result.out_dir), **card}))
        return 0

    def shown(value) -> str:
        return "-" if value is None else f"{value:.1%}"

    print(
        f"adapted on {card['training_examples']} examples ({card['training_digits']} digits) in {card['seconds']:.0f} s"
    )
    print(f"held-out examples ({card['held_out_examples']}): {shown(card['held_out_accuracy_before'])} before, "
          f"{shown(card['held_out_accuracy_after'])} after")  # fmt: skip
    print(f"MNIST tuning digits: {shown(card['mnist_tuning_accuracy_before'])} before, "
          f"{shown(card['mnist_tuning_accuracy_after'])} after")  # fmt: skip
    print(f"model: {result.out_dir} (use it with --model {result.out_dir})")
    return 0
