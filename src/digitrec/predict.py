"""One digit per image file, for many files: the batch behind `digitrec predict`.

Every file (every page of a PDF) gets a row. A file that cannot be read, or that holds no digit or several, gets a
row with its one-line error, and the batch goes on. The digits go through the same pipeline as
`Recognizer.predict(path)`: `preprocess.photo_stages`, then the model.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from digitrec.errors import DigitrecError
from digitrec.fileio import write_bytes_atomic
from digitrec.imagefiles import SourceImage, expand_inputs, read_images
from digitrec.preprocess import debug_strip_png, photo_stages

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
        return f"{self.path}#page={self.page}" if self.page is not None else self.path

    def to_json(self) -> dict:
        return asdict(self)


def debug_strip_path(debug_dir: Path, index: int, source: SourceImage) -> Path:
    """`007-photo-3.png` for the 8th input; the index keeps files of the same name in different folders apart."""
    stem = UNSAFE_FILE_NAME_CHARACTERS.sub("_", source.path.stem)
    page = f"-page{source.page}" if source.page is not None else ""
    return debug_dir / f"{index:03d}-{stem}{page}.png"


def predict_source(recognizer, source: SourceImage, debug_path: Path | None = None) -> FileResult:
    """One decoded image -> its row; with `debug_path`, the strip of the pipeline's stages is written there."""
    where = {"path": str(source.path), "page": source.page, "note": source.note}
    try:
        stages = photo_stages(source.image, recognizer.image_size)
    except DigitrecError as exc:
        return FileResult(**where, error=f"{source.name}: {exc}")
    if debug_path is not None:
        write_bytes_atomic(debug_path, debug_strip_png(stages))
    if stages.problem:
        return FileResult(**where, error=f"{source.name}: {stages.problem}")
    prediction = recognizer.predict(stages.digit)
    return FileResult(**where, digit=prediction.digit, confidence=prediction.confidence, unsure=prediction.unsure)


def predict_files(recognizer, arguments: list[str], debug_dir: Path | None = None) -> list[FileResult]:
    """Files, folders (searched recursively) and glob patterns -> one row per image or PDF page, in order."""
    results = []
    for index, path in enumerate(expand_inputs(arguments)):
        try:
            sources = read_images(path)
        except DigitrecError as exc:
            results.append(FileResult(path=str(path), error=str(exc)))
            continue
        for source in sources:
            debug_path = debug_strip_path(debug_dir, index, source) if debug_dir is not None else None
            results.append(predict_source(recognizer, source, debug_path))
    return results
