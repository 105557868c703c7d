"""Corrections people send (`POST /v1/corrections`, the drawing page's "that's wrong" control): stored in SQLite
by the service, read back by `digitrec adapt --from DB`.

One table, `corrections`: the image as PNG bytes and the right answer (a digit, or the digits of a number). The
database is in WAL mode, so concurrent requests write without blocking readers; each write is its own short
transaction. Standard library only.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from digitrec.errors import DigitrecError

SCHEMA = """
CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    label TEXT NOT NULL CHECK (length(label) BETWEEN 1 AND 64),
    image_png BLOB NOT NULL,
    source TEXT NOT NULL
)
"""
BUSY_TIMEOUT_S = 10.0  # a writer waits this long for another's transaction before giving up
MAX_LABEL_DIGITS = 64
LABEL_SPACES = " \t\r\n"  # dropped around a label (a form field's line end); the API's schema says the same


@dataclass(frozen=True)
class Correction:
    id: int
    label: str
    image_png: bytes
    source: str  # how it came: "pixels" (the drawing page) or "image" (an uploaded file)


def connect(path: str | Path) -> sqlite3.Connection:
    """The corrections database at `path` (created if missing), in WAL mode."""
    try:
        connection = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(SCHEMA)
    except sqlite3.Error as exc:
        raise DigitrecError(f"{path}: not a usable corrections database ({exc})") from None
    return connection


def check_label(label: str) -> str:
    label = label.strip(LABEL_SPACES)
    if not label or not label.isascii() or not label.isdigit() or len(label) > MAX_LABEL_DIGITS:
        raise DigitrecError(f"label must be 1 to {MAX_LABEL_DIGITS} digits, got {label[:70]!r}")
    return label


def add_correction(path: str | Path, image_png: bytes, label: str, source: str) -> int:
    """Store one correction; its id."""
    label = check_label(label)
    connection = connect(path)
    try:
        cursor = connection.execute(
            "INSERT INTO corrections (created, label, image_png, source) VALUES (?, ?, ?, ?)",
            (time.time(), label, sqlite3.Binary(image_png), source),
        )
        return int(cursor.lastrowid)
    finally:
        connection.close()


def read_corrections(path: str | Path) -> list[Correction]:
    """Every stored correction, oldest first."""
    if not Path(path).is_file():
        raise DigitrecError(f"{path}: no such corrections database")
    connection = connect(path)
    try:
        rows = connection.execute("SELECT id, label, image_png, source FROM corrections ORDER BY id").fetchall()
    except sqlite3.Error as exc:
        raise DigitrecError(f"{path}: not a corrections database ({exc})") from None
    finally:
        connection.close()
    return [Correction(int(i), str(label), bytes(png), str(source)) for i, label, png, source in rows]
