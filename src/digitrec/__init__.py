"""digitrec: train, evaluate and use handwritten-digit classifiers.

Importing the package does no work: no download, no model load.
"""

from digitrec.errors import DigitrecError

__all__ = ["DigitrecError"]
__version__ = "0.1.0"
