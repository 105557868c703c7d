"""digitrec: train, evaluate and use handwritten-digit classifiers.

Importing the package does no work: no download, no model load.
"""

from digitrec.errors import DigitrecError

__all__ = ["DigitrecError", "Recognizer", "Prediction"]


def __getattr__(name: str):
    """`from digitrec import Recognizer` without importing torch for `import digitrec` alone."""
    if name in ("Recognizer", "Prediction"):
        from digitrec.inference import recognizer

        return getattr(recognizer, name)
    raise AttributeError(f"module 'digitrec' has no attribute {name!r}")


__version__ = "0.1.0"
