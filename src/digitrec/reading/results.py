"""What reading returns: digits with boxes and confidence, lines, separators."""

from __future__ import annotations

from dataclasses import dataclass, field

NO_DIGITS = "no digits found (the image looks blank, or its ink is too faint)"
Box = tuple[int, int, int, int]  # x, y, width, height in the input image's pixels


@dataclass(frozen=True)
class DigitReading:
    digit: int
    confidence: float
    box: Box
    unsure: bool

    def to_json(self) -> dict:
        return {"digit": self.digit, "confidence": self.confidence, "box": list(self.box), "unsure": self.unsure}


@dataclass(frozen=True)
class Separator:
    kind: str  # "dot", "comma", "dash" or "mark"
    box: Box

    def to_json(self) -> dict:
        return {"kind": self.kind, "box": list(self.box)}


@dataclass(frozen=True)
class LineReading:
    text: str  # the line's digits, a space between numbers written apart
    digits: list[DigitReading]

    def to_json(self) -> dict:
        return {"text": self.text, "digits": [digit.to_json() for digit in self.digits]}


@dataclass(frozen=True)
class NumberReading:
    lines: list[LineReading] = field(default_factory=list)
    separators: list[Separator] = field(default_factory=list)
    problem: str | None = None  # why nothing was read (e.g. a blank image)

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    @property
    def digits(self) -> list[DigitReading]:
        return [digit for line in self.lines for digit in line.digits]

    @property
    def unsure(self) -> bool:
        """Some digit is below the model's confidence threshold, or nothing was read."""
        return not self.digits or any(digit.unsure for digit in self.digits)

    def to_json(self) -> dict:
        return {
            "text": self.text,
            "lines": [line.text for line in self.lines],
            "digits": [digit.to_json() for digit in self.digits],
            "separators": [separator.to_json() for separator in self.separators],
            "unsure": self.unsure,
            "problem": self.problem,
        }
