"""Batch jobs over an archive of images: `digitrec predict|read INPUTS --out results.parquet [--engine ray]`.

Inputs are files, folders (searched recursively), glob patterns, or lists of paths: an input ending in `.txt`
(one path per line; blank lines and lines starting with `#` skipped) or `.csv` (its `path` column, else the first
column of every row). A listed path that is not absolute is taken from the list file's folder; listed paths may be
folders or globs too. Every path is made absolute, and a path named twice is read once.

Every image (every PDF page) gets a row; a file that cannot be read, or that fails in any other way, gets a row with
its one-line `error`, never a failed job. Rows hold answers only (no timings), so two runs over the same inputs
give identical tables.

What `--out results.parquet` writes:

    results.parquet          the final table, one row per image of this command's inputs, in input order (PDF pages
                             in page order); written atomically when the job ends
    results.parquet.parts/   the work so far, written while the job runs:
        job.json             the task and the model settings; a rerun with other settings is refused
        part-00000.parquet   rows of whole input files (all of a file's pages are in one part), each part written
        part-00001.parquet   atomically (temp file + rename) every PART_FILES files or PART_SECONDS seconds

A rerun with the same `--out` reads the parts, skips every input file already in them, does the rest and writes the
final table again, so a job killed at any moment (even `kill -9`) resumes, and ends with the same table as a run
never interrupted. Delete both to start over. One job per `--out` at a time.

The engines: "local" (this machine: one process, or `--jobs N` worker processes each with its own model; a tqdm
progress bar) and "ray" (`inference.archive_ray`: Ray Data, a pool of
actors each loading the model once; a local cluster or `--address`). Both make rows with `file_rows`.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from digitrec.errors import DigitrecError
from digitrec.fileio import atomic_path, write_json_atomic
from digitrec.images.files import expand_inputs, read_images
from digitrec.model_files import DEFAULT_BACKEND, SHIPPED_LINE_MODEL, SHIPPED_PIECE_MODEL

log = logging.getLogger(__name__)

PART_FILES = 100  # input files per part: what a killed job can lose at most ...
PART_SECONDS = 60.0  # ... or this much work, whichever comes first
LIST_SUFFIXES = (".txt", ".csv")
PARTS_SUFFIX = ".parts"
JOB_FILE = "job.json"
PART_PATTERN = "part-*.parquet"
TASKS = ("predict", "read")
ENGINES = ("local", "ray")
# one onnxruntime thread per process: on a busy machine its spinning threads cost 3x (28x28 scans, 2 cores)
JOB_THREADS = 1

# The columns of each task's table (pyarrow types, named by string so that this module imports without pyarrow).
COLUMNS = {
    "predict": {"path": "string", "page": "int32", "digit": "int8", "confidence": "float64", "unsure": "bool",
                "error": "string", "note": "string"},
    "read": {"path": "string", "page": "int32", "text": "string", "confidence": "float64", "unsure": "bool",
             "boxes": "string", "separators": "string", "error": "string", "note": "string"},
}  # fmt: skip


@dataclass(frozen=True)
class ArchiveJob:
    """What a job computes: the task and the recognizer's settings (a rerun must use the same ones)."""

    task: str  # "predict": one digit per image; "read": whole numbers
    model: str = "default"
    backend: str = DEFAULT_BACKEND
    tta: bool = True
    pieces: str | None = SHIPPED_PIECE_MODEL  # read only: the piece model, None for the classifier's confidence
    lines: str | None = SHIPPED_LINE_MODEL  # read only: the line model that checks the cut digits, None: cuts only
    threads: int = JOB_THREADS  # onnxruntime threads per model; not part of the results

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DigitrecError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")

    def settings(self) -> dict:
        """What decides the answers (a rerun must match), as JSON."""
        settings = asdict(self)
        del settings["threads"]
        if self.task == "predict":
            del settings["pieces"], settings["lines"]
        return settings

    @property
    def load_arguments(self) -> dict:
        """`Recognizer.load`'s arguments for this job's recognizer."""
        pieces, lines = (self.pieces, self.lines) if self.task == "read" else (None, None)
        return {"model": self.model, "backend": self.backend, "tta": self.tta, "pieces": pieces,
                "threads": self.threads, "lines": lines}  # fmt: skip

    def load_recognizer(self):
        from digitrec.inference.files import use_opencv_threads
        from digitrec.inference.recognizer import Recognizer

        use_opencv_threads()  # a job's worker: one process per core
        return Recognizer.load(**self.load_arguments)


@dataclass(frozen=True)
class ArchiveSummary:
    out: Path
    rows: int  # in the final table
    errors: int  # rows with an error
    files_done_now: int
    files_done_before: int  # skipped: found in the parts of an earlier run
    seconds: float  # this run's reading and writing, the engine's start (a Ray cluster's) included

    @property
    def images_per_second(self) -> float:
        return self.files_done_now / self.seconds if self.seconds > 0 else 0.0


# --- inputs -------------------------------------------------------------------------------------------------------


def listed_paths(list_file: Path) -> list[str]:
    """The paths in a `.txt` (one a line) or `.csv` (its `path` column, else the first column) list."""
    try:
        text = list_file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DigitrecError(f"{list_file}: cannot read the list of paths ({exc})") from None
    if list_file.suffix.lower() == ".csv":
        rows = [row for row in csv.reader(text.splitlines()) if row and row[0].strip()]
        header = [name.strip().lower() for name in rows[0]] if rows else []
        column = header.index("path") if "path" in header else 0
        entries = [row[column] for row in (rows[1:] if "path" in header else rows) if len(row) > column]
    else:
        entries = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    folder = list_file.parent
    return [str(Path(entry.strip()) if Path(entry.strip()).is_absolute() else folder / entry.strip())
            for entry in entries]  # fmt: skip


def expand_job_inputs(arguments: Iterable[str]) -> list[Path]:
    """Files, folders, globs and lists of paths -> the files to read, absolute, each once, in order."""
    paths: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            paths.extend(expand_inputs(listed_paths(path)))
        else:
            paths.extend(expand_inputs([argument]))
    return list(dict.fromkeys(Path(os.path.abspath(path)) for path in paths))


# --- rows ---------------------------------------------------------------------------------------------------------


def empty_row(task: str, path: str, page: int | None = None, error: str | None = None) -> dict:
    return {name: None for name in COLUMNS[task]} | {"path": path, "page": page, "error": error}


def predict_row(recognizer, source) -> dict:
    from digitrec.inference.files import predict_source

    return predict_source(recognizer, source).to_json()


def read_row(recognizer, source) -> dict:
    from digitrec.inference.files import read_source

    result = read_source(recognizer, source)
    row = empty_row("read", result.path, result.page, result.error)
    row["note"] = "; ".join(result.notes) or None
    if result.reading is not None:
        reading = result.reading.to_json()
        row["text"] = reading["text"]
        row["confidence"] = min((digit["confidence"] for digit in reading["digits"]), default=None)
        row["unsure"] = reading["unsure"]
        row["boxes"] = json.dumps(reading["digits"])
        row["separators"] = json.dumps(reading["separators"])
    return row


ROW_OF_TASK: dict[str, Callable] = {"predict": predict_row, "read": read_row}


def file_rows(recognizer, task: str, path: str | Path) -> list[dict]:
    """One input file -> its rows (one per image or PDF page), with every failure as an `error` row."""
    path = str(path)
    try:
        return [ROW_OF_TASK[task](recognizer, source) for source in read_images(path)]
    except DigitrecError as exc:
        return [empty_row(task, path, error=str(exc))]
    except Exception as exc:  # a bug or a library's surprise on one file must not end a job of a million
        log.exception("%s: unexpected error", path)
        return [empty_row(task, path, error=f"{path}: unexpected error ({type(exc).__name__}: {exc})")]


# --- parts on disk ------------------------------------------------------------------------------------------------


def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + PARTS_SUFFIX)


def schema(task: str):
    import pyarrow as pa

    return pa.schema([(name, pa.type_for_alias(kind)) for name, kind in COLUMNS[task].items()])


def prepare_parts(out: Path, job: ArchiveJob) -> Path:
    """The parts folder, made or checked against `job`; stale temp files of a killed run are removed."""
    folder = parts_dir(out)
    job_file = folder / JOB_FILE
    if job_file.exists():
        recorded = json.loads(job_file.read_text())
        if recorded != job.settings():
            raise DigitrecError(
                f"{folder} holds a job with other settings ({recorded}, now {job.settings()}); "
                f"use another --out, or delete {out} and {folder} to start over"
            )
    else:
        write_json_atomic(job_file, job.settings())
    for stale in folder.glob(".part-*.tmp"):
        stale.unlink(missing_ok=True)
    return folder


def read_parts(folder: Path, task: str):
    """Every row written so far, as one pyarrow Table (empty when there are no parts)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(part, schema=schema(task)) for part in sorted(folder.glob(PART_PATTERN))]
    return pa.concat_tables(tables) if tables else schema(task).empty_table()


class PartWriter:
    """Collects the rows of finished files and writes them as the next part every `part_files` files or
    `part_seconds` seconds (and at `close`)."""

    def __init__(self, folder: Path, task: str, part_files: int = PART_FILES, part_seconds: float = PART_SECONDS):
        self.folder, self.task = folder, task
        self.part_files, self.part_seconds = part_files, part_seconds
        numbers = [int(part.stem.removeprefix("part-")) for part in folder.glob(PART_PATTERN)]
        self.next_number = max(numbers, default=-1) + 1
        self.rows: list[dict] = []
        self.files = 0
        self.last_write = time.monotonic()

    def add_file(self, rows: list[dict]) -> None:
        self.rows.extend(rows)
        self.files += 1
        if self.files >= self.part_files or time.monotonic() - self.last_write >= self.part_seconds:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.rows:
            table = pa.Table.from_pylist(self.rows, schema=schema(self.task))
            with atomic_path(self.folder / f"part-{self.next_number:05d}.parquet") as tmp:
                pq.write_table(table, tmp)
            self.next_number += 1
        self.rows, self.files, self.last_write = [], 0, time.monotonic()

    close = flush


def final_table(folder: Path, task: str, inputs: list[Path]):
    """The parts' rows of these inputs, in input order (then page order)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = read_parts(folder, task)
    order = pc.index_in(table["path"], value_set=pa.array([str(path) for path in inputs], pa.string()))
    table = table.append_column("_order", order).filter(pc.is_valid(order))
    return table.sort_by([("_order", "ascending"), ("page", "ascending")]).drop_columns(["_order"])


def write_final(out: Path, table) -> None:
    import pyarrow.parquet as pq

    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)


# --- engines ------------------------------------------------------------------------------------------------------


def job_worker_rows(task: str, path: Path) -> list[dict]:
    """In a worker of `inference.files.worker_pool`: the file's rows, answered by the worker's recognizer."""
    from digitrec.inference.files import worker_state

    return file_rows(worker_state["recognizer"], task, path)


def pending_rows(job: ArchiveJob, pending: list[Path], processes: int) -> Iterable[list[dict]]:
    """Each pending file's rows, in order: read here, or by `processes` worker processes (each with its own model
    on JOB_THREADS threads) when there are several files."""
    if processes <= 1 or len(pending) <= 1:
        recognizer = job.load_recognizer()
        yield from (file_rows(recognizer, job.task, path) for path in pending)
        return
    from itertools import repeat

    from digitrec.inference.files import worker_pool

    with worker_pool(processes, job.load_arguments) as pool:
        yield from pool.map(job_worker_rows, repeat(job.task), pending)


def run_local(
    job: ArchiveJob, pending: list[Path], writer: PartWriter, progress: bool = True, processes: int = 1
) -> None:
    """This machine: `processes` processes reading files side by side (their rows written in input order), with a
    progress bar in images per second."""
    from tqdm import tqdm

    rows = pending_rows(job, pending, processes)
    for file_rows_done in tqdm(rows, total=len(pending), unit="image", desc=job.task, disable=not progress or None,
                               smoothing=0.1):  # fmt: skip
        writer.add_file(file_rows_done)


@dataclass
class EngineOptions:
    engine: str = "local"  # or "ray"
    processes: int | None = None  # local: processes reading side by side; None: one per core when there are many files
    address: str | None = None  # ray: a running cluster; None: a local one
    workers: int | None = None  # ray: actors, each with its own model; None: one per CPU of the cluster
    part_files: int = PART_FILES
    part_seconds: float = PART_SECONDS
    progress: bool = True
    files_per_task: int = 8  # ray: files an actor reads per call (small: the work spreads, parts come often)


def run_archive(job: ArchiveJob, arguments: list[str], out: str | Path, options: EngineOptions | None = None):
    """Run (or resume) the job over the inputs; the final table is written to `out`. Returns an ArchiveSummary."""
    options = options or EngineOptions()
    if options.engine not in ENGINES:
        raise DigitrecError(f"engine must be one of {', '.join(ENGINES)}, got {options.engine!r}")
    out = Path(out)
    if out.is_dir():
        raise DigitrecError(f"{out}: --out is a folder; give a file name such as results.parquet")
    inputs = expand_job_inputs(arguments)
    if not inputs:
        raise DigitrecError("no input files")
    folder = prepare_parts(out, job)
    done = set(read_parts(folder, job.task)["path"].to_pylist())
    pending = [path for path in inputs if str(path) not in done]
    writer = PartWriter(folder, job.task, options.part_files, options.part_seconds)
    started = time.perf_counter()
    if pending and options.engine == "ray":
        from digitrec.inference.archive_ray import run_ray

        run_ray(job, pending, writer, options.address, options.workers, options.files_per_task, options.progress)
    elif pending:
        from digitrec.inference.files import default_processes

        processes = options.processes or default_processes(job.task, len(pending))
        run_local(job, pending, writer, progress=options.progress, processes=processes)
    writer.close()
    seconds = time.perf_counter() - started
    table = final_table(folder, job.task, inputs)
    write_final(out, table)
    errors = len(table) - table["error"].null_count
    return ArchiveSummary(out, len(table), errors, len(pending), len(inputs) - len(pending), seconds)
