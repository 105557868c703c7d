"""Many image files at once: the batches behind `digitrec predict` (one digit per image) and `digitrec read`
(whole numbers).

Every file (every page of a PDF) gets a row. A file that cannot be read, or (for predict) that holds no digit or
several, gets a row with its one-line error, and the batch goes on. The images go through the same pipelines as
`Recognizer.predict(path)` (`preprocess.photo_stages`, then the model) and `Recognizer.read(path)`.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from digitrec.errors import DigitrecError
from digitrec.fileio import write_bytes_atomic
from digitrec.images.arrays import image_to_array
from digitrec.images.debug import debug_strip_png
from digitrec.images.files import SourceImage, expand_inputs, read_images, source_name
from digitrec.images.photo import photo_stages
from digitrec.reading.results import NumberReading

UNSAFE_FILE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class FileResult:
    path: str
    page: int | None = None  # 1-based page of a PDF
    digit: int | None = None
    confidence: float | None = None
    unsure: bool | None = None
    error: str | None = None  # one line, naming the file
    note: str | None = None  # e.g. "GIF with 12 frames: the first frame was used"

    @property
    def name(self) -> str:
        return source_name(self.path, self.page)

    @property
    def notes(self) -> list[str]:
        return [self.note] if self.note else []

    def to_json(self) -> dict:
        return asdict(self)


def output_path(out_dir: Path, index: int, source: SourceImage) -> Path:
    """`007-photo-3.png` for the 8th input; the index keeps files of the same name in different folders apart."""
    stem = UNSAFE_FILE_NAME_CHARACTERS.sub("_", source.path.stem)
    page = f"-page{source.page}" if source.page is not None else ""
    return out_dir / f"{index:03d}-{stem}{page}.png"


def predict_source(recognizer, source: SourceImage, debug_path: Path | None = None) -> FileResult:
    """One decoded image -> its row; with `debug_path`, the strip of the pipeline's stages is written there."""
    where = {"path": str(source.path), "page": source.page, "note": source.note}
    try:
        stages = photo_stages(source.image, recognizer.image_size)
    except DigitrecError as exc:
        return FileResult(**where, error=f"{source.name}: {exc}")
    if debug_path is not None:
        write_output(debug_path, debug_strip_png(stages))
    if stages.problem:
        return FileResult(**where, error=f"{source.name}: {stages.problem}")
    prediction = recognizer.predict(stages.digit)
    return FileResult(**where, digit=prediction.digit, confidence=prediction.confidence, unsure=prediction.unsure)


def rows_for_paths(
    paths: list[Path],
    out_dir: Path | None,
    row_for_source: Callable[[SourceImage, Path | None], object],
    error_row: Callable[..., object],
) -> list:
    """Input files (folders and globs already expanded, `expand_inputs`) -> one row per image or PDF page, in order.

    `row_for_source(image, output file or None)` makes a decoded image's row (the output file, in `out_dir`, is
    where a debug strip or annotated image goes); a file that cannot be read gets `error_row(path=, error=)`."""
    if out_dir is not None:
        ensure_output_dir(out_dir)
    rows = []
    for index, path in enumerate(paths):
        rows += input_rows(index, path, out_dir, row_for_source, error_row)
    return rows


def input_rows(index: int, path: Path, out_dir: Path | None, row_for_source, error_row) -> list:
    """The rows of one input file (see `rows_for_paths`)."""
    rows = []
    try:
        for source in read_images(path):  # PDF pages are rendered one at a time, as the loop asks for them
            output = output_path(out_dir, index, source) if out_dir is not None else None
            rows.append(row_for_source(source, output))
    except DigitrecError as exc:  # the file, or one of its pages, cannot be read: a row, and the batch goes on
        rows.append(error_row(path=str(path), error=str(exc)))
    return rows


def ensure_output_dir(out_dir: Path) -> None:
    """The folder for debug strips or annotated images, made if missing; anything else is a one-line error."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DigitrecError(f"{out_dir}: cannot write output files there ({exc.strerror or exc})") from None
    if not out_dir.is_dir() or not os.access(out_dir, os.W_OK):
        raise DigitrecError(f"{out_dir}: cannot write output files there (not a writable folder)")


def write_output(path: Path, data: bytes) -> None:
    try:
        write_bytes_atomic(path, data)
    except OSError as exc:
        raise DigitrecError(f"{path}: cannot write ({exc.strerror or exc})") from None


def predict_files(
    recognizer, arguments: list[str], debug_dir: Path | None = None, processes: int | None = 1
) -> list[FileResult]:
    """One digit per image or PDF page; with `debug_dir`, a strip of the pipeline's stages per image there.
    `processes`: how many answer the files side by side (None: one per core when there are many files)."""
    return task_rows(recognizer, "predict", arguments, debug_dir, processes)


ANNOTATION_SURE_RGB = (0, 160, 60)
ANNOTATION_UNSURE_RGB = (230, 120, 0)
ANNOTATION_SEPARATOR_RGB = (120, 120, 120)


@dataclass(frozen=True)
class FileReading:
    path: str
    page: int | None = None
    reading: NumberReading | None = None
    error: str | None = None  # one line, naming the file
    note: str | None = None

    @property
    def name(self) -> str:
        return source_name(self.path, self.page)

    @property
    def notes(self) -> list[str]:
        """What the user should know besides an error: the file's note, and why nothing was read."""
        problem = self.reading.problem if self.reading is not None else None
        return [text for text in (self.note, problem) if text]

    def to_json(self) -> dict:
        where = {"path": self.path, "page": self.page}
        if self.reading is None:
            return where | {"text": None, "lines": [], "digits": [], "separators": [], "unsure": None,
                            "error": self.error, "note": self.note}  # fmt: skip
        return where | self.reading.to_json() | {"error": self.error, "note": self.note}


def annotated_image(image, reading: NumberReading) -> np.ndarray:
    """The image (RGB) with a box and the digit read drawn over each digit: green when sure, orange when unsure."""
    picture = image_to_array(image)
    picture = cv2.cvtColor(picture, cv2.COLOR_GRAY2RGB) if picture.ndim == 2 else picture.copy()
    thickness = max(1, round(max(picture.shape[:2]) / 400))
    for digit in reading.digits:
        x, y, width, height = digit.box
        colour = ANNOTATION_UNSURE_RGB if digit.unsure else ANNOTATION_SURE_RGB
        cv2.rectangle(picture, (x, y), (x + width, y + height), colour, thickness)
        font_scale = max(0.4, height / 100)
        (_, text_height), _ = cv2.getTextSize(str(digit.digit), cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        # above the box when there is room, else just inside its top
        label_y = y - 3 if y >= text_height + 3 else y + text_height + 3
        cv2.putText(picture, str(digit.digit), (x + 2, label_y), cv2.FONT_HERSHEY_SIMPLEX, font_scale, colour,
                    thickness, cv2.LINE_AA)  # fmt: skip
    for separator in reading.separators:
        x, y, width, height = separator.box
        cv2.rectangle(picture, (x, y), (x + width, y + height), ANNOTATION_SEPARATOR_RGB, thickness)
    return picture


def read_source(recognizer, source: SourceImage, annotate_path: Path | None = None) -> FileReading:
    where = {"path": str(source.path), "page": source.page, "note": source.note}
    try:
        reading = recognizer.read(source.image)
    except DigitrecError as exc:
        return FileReading(**where, error=f"{source.name}: {exc}")
    if annotate_path is not None:
        ok, encoded = cv2.imencode(".png", annotated_image(source.image, reading)[:, :, ::-1])
        if ok:
            write_output(annotate_path, encoded.tobytes())
    return FileReading(**where, reading=reading)


def read_files(
    recognizer, arguments: list[str], annotate_dir: Path | None = None, processes: int | None = 1
) -> list[FileReading]:
    """Whole numbers in each image or PDF page; with `annotate_dir`, each image with its digits boxed there.
    `processes`: how many read the files side by side (None: one per core when there are many files)."""
    return task_rows(recognizer, "read", arguments, annotate_dir, processes)


# --- many files in several processes -------------------------------------------------------------------------------

# A process starts (Python, digitrec, onnxruntime, the models) in about a second here: worth it from this many
# files per process on (read: ~0.3 s a cheque-size crop; predict: ~20 ms a scan).
MIN_FILES_PER_PROCESS = {"read": 8, "predict": 200}
PROCESS_THREADS = 1  # onnxruntime threads in each process: the processes share the cores
# OpenCV's own thread pool costs more than it gives on images this small (a line's pieces are tens of pixels):
# one thread reads a dev cheque crop in 0.32-0.38 s instead of 0.49-0.57 s (2 cores, measured).
OPENCV_THREADS = 1


def use_opencv_threads() -> None:
    """Set this process's OpenCV thread count to OPENCV_THREADS (a process-wide setting: batch runs call it)."""
    cv2.setNumThreads(OPENCV_THREADS)


PARENT_CHECK_SECONDS = 1.0  # how often a worker looks whether the process that started it is still there


def exit_with_parent(parent: int) -> None:
    """In a worker process started by `parent` (its pid): end it when its parent is gone (killed with kill -9, its
    pool never shut down). The workers hold both ends of the pool's queues, so they would otherwise wait for work
    forever, each with its models in memory."""
    import threading

    if os.getppid() != parent:  # gone before this worker began
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_SECONDS)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def default_processes(task: str, files: int) -> int:
    """How many processes answer `files` files when the user does not say: one per core, when there are enough."""
    return max(1, min(os.cpu_count() or 1, files // MIN_FILES_PER_PROCESS[task]))


ROW_MAKERS = {"predict": (predict_source, FileResult), "read": (read_source, FileReading)}
worker_state: dict = {}  # in a worker process only: its recognizer, made once by `start_worker`


def start_worker(load_arguments: dict, parent: int) -> None:
    from digitrec.inference.recognizer import Recognizer

    exit_with_parent(parent)
    use_opencv_threads()
    worker_state["recognizer"] = Recognizer.load(**load_arguments)


def worker_pool(workers: int, load_arguments: dict) -> ProcessPoolExecutor:
    """`workers` fresh processes, each with its recognizer made by `Recognizer.load(**load_arguments)` (in
    `worker_state`) and ending with this process (`exit_with_parent`)."""
    context = multiprocessing.get_context("spawn")  # a clean interpreter: onnxruntime's threads do not fork well
    return ProcessPoolExecutor(workers, context, initializer=start_worker, initargs=(load_arguments, os.getpid()))


def file_rows(recognizer, task: str, out_dir: Path | None, index: int, path: Path) -> list:
    """The rows of the `index`-th input file of a batch of `task`, answered by `recognizer`."""
    row_for_source, error_row = ROW_MAKERS[task]
    return input_rows(index, path, out_dir, partial(row_for_source, recognizer), error_row)


def worker_rows(task: str, out_dir: Path | None, index: int, path: Path) -> list:
    return file_rows(worker_state["recognizer"], task, out_dir, index, path)


def recognizer_of_this_process(recognizer, load_arguments: dict):
    """The recognizer this process reads its share of a batch with: `recognizer` itself when its onnxruntime
    threads are PROCESS_THREADS already, else one made again with them (tens of milliseconds), so that it does not
    compete with the other processes for their cores."""
    from digitrec.inference.recognizer import Recognizer

    return recognizer if recognizer.load_arguments == load_arguments else Recognizer.load(**load_arguments)


def rows_in_processes(recognizer, task: str, paths: list[Path], out_dir: Path | None, processes: int) -> list:
    """`rows_for_paths` in `processes` processes: this one and `processes - 1` workers, each with a recognizer made
    as `recognizer` was (its `load_arguments`); rows in the inputs' order.

    The workers take the files from the first on; this process reads from the last one back, each file no worker
    has begun (its task cancelled), from the first moment on, while the workers start (a few tenths of a second:
    an interpreter, digitrec, the models). Where they meet, it waits for the workers' last files."""
    if out_dir is not None:
        ensure_output_dir(out_dir)
    arguments_of_worker = recognizer.load_arguments | {"threads": PROCESS_THREADS}
    with worker_pool(processes - 1, arguments_of_worker) as pool:
        tasks = [pool.submit(worker_rows, task, out_dir, index, path) for index, path in enumerate(paths)]
        here = partial(file_rows, recognizer_of_this_process(recognizer, arguments_of_worker), task, out_dir)
        rows_here = {}
        for index in range(len(paths) - 1, -1, -1):
            if not tasks[index].cancel():  # a worker has it: so have they every file before it
                break
            rows_here[index] = here(index, paths[index])
        per_file = [rows_here[index] if index in rows_here else done.result() for index, done in enumerate(tasks)]
        return [row for rows in per_file for row in rows]


def task_rows(recognizer, task: str, arguments: list[str], out_dir: Path | None, processes: int | None) -> list:
    """The rows of `task` ("predict" or "read") over the inputs: in this process, or in several (`processes`;
    None: `default_processes`) when the recognizer can be made again elsewhere."""
    paths = expand_inputs(arguments)  # folders walked once
    if processes is None:
        processes = default_processes(task, len(paths))
    if processes > 1 and recognizer.load_arguments is not None:
        return rows_in_processes(recognizer, task, paths, out_dir, processes)
    row_for_source, error_row = ROW_MAKERS[task]
    return rows_for_paths(paths, out_dir, partial(row_for_source, recognizer), error_row)
