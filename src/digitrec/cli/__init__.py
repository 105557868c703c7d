"""The `digitrec` command: parse arguments, call the library, print. No logic of its own.

The parser imports nothing heavy; each command imports what it runs when it runs, so `--help` answers at once and
`predict` / `read` start without torch. A command whose optional dependencies are not installed says which extra
brings them, in one line, with exit code 2."""

from __future__ import annotations

import importlib
import logging
import sys

from digitrec.errors import DigitrecError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
COMMAND_MODULES = {  # command -> (module, function) that runs it
    "train": ("training_commands", "command_train"),
    "evaluate": ("training_commands", "command_evaluate"),
    "models": ("training_commands", "command_models"),
    "experiments": ("training_commands", "command_experiments"),
    "calibrate": ("training_commands", "command_calibrate"),
    "tta-search": ("training_commands", "command_tta_search"),
    "export": ("training_commands", "command_export"),
    "piece-model": ("training_commands", "command_piece_model"),
    "line-model": ("training_commands", "command_line_model"),
    "adapt": ("training_commands", "command_adapt"),
    "predict": ("recognition_commands", "command_predict"),
    "read": ("recognition_commands", "command_read"),
    "serve": ("recognition_commands", "command_serve"),
}
EXTRA_OF_MODULE = {  # a missing module -> the extra of pyproject.toml that installs it
    "torch": "train", "safetensors": "train", "sklearn": "train", "matplotlib": "train", "scipy": "train",
    "onnx": "train", "tomli_w": "train",
    "fastapi": "serve", "fastapi_offline": "serve", "uvicorn": "serve", "multipart": "serve", "pydantic": "serve",
    "pypdfium2": "pdf",
    "ray": "cluster", "pyarrow": "cluster",
}  # fmt: skip


def missing_extra_message(command: str, error: ModuleNotFoundError) -> str | None:
    """`digitrec train needs torch: pip install 'digitrec[train]'`, or None for a module no extra provides."""
    module = (error.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    return f"digitrec {command} needs {module}: pip install 'digitrec[{extra}]'" if extra else None


def run_command(args) -> int:
    module_name, function_name = COMMAND_MODULES[args.command]
    module = importlib.import_module(f"digitrec.cli.{module_name}")
    return getattr(module, function_name)(args)


def main(argv: list[str] | None = None) -> int:
    from digitrec.cli.parser import build_parser

    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return run_command(args)
    except DigitrecError as exc:
        print(f"digitrec: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ModuleNotFoundError as exc:
        message = missing_extra_message(args.command, exc)
        if message is None:
            raise
        print(f"digitrec: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("digitrec: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
