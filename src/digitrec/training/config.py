"""The config dataclasses of training runs: TrainConfig (a classifier) and PieceTrainConfig (the piece model).

Light on purpose (no torch): the CLI builds its flags from these fields without loading the training stack.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digitrec.errors import DigitrecError
from digitrec.model_files import SHIPPED_PIECE_MODEL

SCHEDULES = ("constant", "onecycle", "cosine")
OPTIMIZERS = ("adam", "adamw", "sgd", "adadelta")
MAX_SEED = 2**32 - 1  # NumPy's and torch's generators take seeds up to this
MAX_ROTATION_DEG = 180.0
MAX_SHEAR_DEG = 60.0
# Fields that change how fast a run goes, not what it computes: a saved run differing only in these still matches
SPEED_ONLY_FIELDS = ("channels_last",)


@dataclass
class TrainConfig:
    """Everything that decides a training run; saved in every checkpoint and in run.json."""

    model: str = "paper-case1"
    dataset: str = "mnist"
    epochs: int = 20
    batch_size: int = 32
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "constant"
    step_gamma: float = 1.0  # multiply the learning rate by this after every epoch (1.0: off)
    l2_first_conv: float = 0.0  # the report's Keras l2(c): c * sum(w**2 + b**2) of the first conv, added to the loss
    rotation_deg: float = 0.0  # random rotation in [-deg, deg] of every training image
    shift_fraction: float = 0.0  # random shift up to this fraction of the image size
    scale_range: float = 0.0  # random scale in [1 - r, 1 + r]
    shear_deg: float = 0.0  # random shear in [-deg, deg]
    erase_probability: float = 0.0  # chance of blanking a random rectangle (random erasing)
    label_smoothing: float = 0.0
    normalization: str = "paper"
    seed: int = 0
    validation_size: int = 5000  # images held out of the 60k training set for validation
    train_subset: int = 0  # use only this many training images (0: all); for quick runs and tests
    test_subset: int = 0  # evaluate on only this many test images (0: all)
    channels_last: bool = False  # NHWC memory layout: about 1.3x faster for digitnet on this CPU (measured)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        from digitrec.data.datasets import dataset_spec
        from digitrec.models.registry import model_entry

        model_entry(self.model)
        spec = dataset_spec(self.dataset)
        not_finite = [f.name for f in dataclasses.fields(self) if isinstance(getattr(self, f.name), float)
                      and not math.isfinite(getattr(self, f.name))]  # fmt: skip
        if not_finite:
            raise DigitrecError(f"bad training config: {', '.join(not_finite)} must be finite numbers")
        test_size = spec.split_sizes.get("test", math.inf)
        train_size = spec.split_sizes.get("train", math.inf)
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (0 < self.step_gamma <= 1, f"step_gamma must be in (0, 1], got {self.step_gamma}"),
            (0 <= self.rotation_deg <= MAX_ROTATION_DEG, f"rotation_deg must be in [0, 180], got {self.rotation_deg}"),
            (0 <= self.shift_fraction < 1, f"shift_fraction must be in [0, 1), got {self.shift_fraction}"),
            (0 <= self.scale_range < 1, f"scale_range must be in [0, 1), got {self.scale_range}"),
            (
                0 <= self.shear_deg <= MAX_SHEAR_DEG,
                f"shear_deg must be in [0, {MAX_SHEAR_DEG:g}], got {self.shear_deg}",
            ),
            (0 <= self.erase_probability <= 1, f"erase_probability must be in [0, 1], got {self.erase_probability}"),
            (0 <= self.seed <= MAX_SEED, f"seed must be in [0, {MAX_SEED}], got {self.seed}"),
            (self.test_subset <= test_size, f"test_subset must be at most the {test_size} test images"),
            (self.train_subset <= train_size, f"train_subset must be at most the {train_size} training images"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}"),
            (self.l2_first_conv >= 0, f"l2_first_conv must be >= 0, got {self.l2_first_conv}"),
            (0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing}"),
            (self.validation_size >= 0, f"validation_size must be >= 0, got {self.validation_size}"),
            (self.train_subset >= 0 and self.test_subset >= 0, "subsets must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise DigitrecError(f"bad training config: {message}")

    @classmethod
    def for_model(cls, model: str, **overrides: Any) -> TrainConfig:
        """The model's own training defaults (from the registry), then `overrides`."""
        from digitrec.models.registry import model_entry

        return cls.from_dict({"model": model, **model_entry(model).train_defaults, **overrides})

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise DigitrecError(f"bad training config: unknown field(s) {', '.join(unknown)}")
        typed = {}
        for name, value in values.items():
            expected = type(known[name].default)
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if isinstance(value, bool) != (expected is bool) or not isinstance(value, expected):
                raise DigitrecError(f"bad training config: {name} must be {expected.__name__}, got {value!r}")
            typed[name] = value
        return cls(**typed)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """A TOML or JSON config file; its `model` brings that model's defaults, the file's values win."""
        path = Path(path)
        try:
            text = path.read_text()
            values = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (OSError, ValueError) as exc:
            raise DigitrecError(f"{path}: cannot read config ({exc})") from None
        if not isinstance(values, dict):
            raise DigitrecError(f"{path}: a config must be a table of fields, got a {type(values).__name__}")
        merged = {**values, **overrides}
        return cls.for_model(merged.pop("model", cls.model), **merged)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def matches(self, saved: dict) -> bool:
        """Whether a saved config describes this run; fields added since it was saved count at their default, and
        SPEED_ONLY_FIELDS are not compared."""
        try:
            other = TrainConfig.from_dict(saved)
        except DigitrecError:
            return False
        same_speed = {name: getattr(self, name) for name in SPEED_ONLY_FIELDS}
        return dataclasses.replace(other, **same_speed) == self

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())


def piece_training_conditions() -> list[str]:
    """The photo conditions the piece model's strips are drawn under (all but "combined")."""
    from digitrec.training.pieces import TRAINING_CONDITIONS

    return list(TRAINING_CONDITIONS)


@dataclass
class PieceTrainConfig:
    """How the piece model is made; saved in its checkpoint."""

    training_strips: int = 3000
    validation_strips: int = 400
    epochs: int = 8
    batch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 5e-4
    seed: int = 0
    model: str = SHIPPED_PIECE_MODEL  # the registry name of the piece model's architecture (models.registry)
    conditions: list[str] = field(default_factory=piece_training_conditions)
    flagged_ones: float = 0.0  # share of the strips' 1s written with a long flag (synthetic.styles)
    start_from: str | None = None  # a piece model (the shipped name or a checkpoint) to fine-tune; None: from scratch

    def __post_init__(self) -> None:
        if not (math.isfinite(self.flagged_ones) and 0 <= self.flagged_ones <= 1):
            raise DigitrecError(f"flagged ones must be a share in [0, 1], got {self.flagged_ones}")
        for name in ("training_strips", "validation_strips", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise DigitrecError(f"{name.replace('_', ' ')} must be at least 1, got {getattr(self, name)}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise DigitrecError(f"learning rate must be a finite number > 0, got {self.learning_rate}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise DigitrecError(f"weight decay must be a finite number >= 0, got {self.weight_decay}")
        if not 0 <= self.seed <= MAX_SEED:
            raise DigitrecError(f"seed must be in [0, {MAX_SEED}], got {self.seed}")


# The ways of writing the line model's lines are drawn in (synthetic.line_masks.LINE_STYLES, named here so that the
# command line's parser imports no drawing code)
LINE_STYLE_NAMES = ("basic", "latin", "amounts")


@dataclass(frozen=True)
class LineTrainConfig:
    """How the line model is made; saved in its checkpoint."""

    training_lines: int = 100_000
    validation_lines: int = 2_000
    epochs: int = 4
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 5e-4
    seed: int = 0
    model: str = "linenet"
    styles: str = LINE_STYLE_NAMES[1]  # how the digits are written (synthetic.line_masks.LINE_STYLES)
    scanned_share: float = 0.0  # share of the lines scanned as cheque fields and binarized by the reader
    init: str = ""  # a line model's checkpoint to start from (fine-tuning it); "": random weights
    # lines added to the training lines, written in `plain_styles` and never scanned: clean ink on white, as digits
    # written apart or touching on a sheet look, so that a model learning cheque amounts keeps reading those too
    plain_lines: int = 0
    plain_styles: str = LINE_STYLE_NAMES[0]

    def __post_init__(self) -> None:
        for styles in (self.styles, self.plain_styles):
            if styles not in LINE_STYLE_NAMES:
                raise DigitrecError(f"unknown line styles {styles!r} (known: {', '.join(LINE_STYLE_NAMES)})")
        if self.plain_lines < 0:
            raise DigitrecError(f"plain lines must be at least 0, got {self.plain_lines}")
        if not (math.isfinite(self.scanned_share) and 0 <= self.scanned_share <= 1):
            raise DigitrecError(f"scanned share must be a share in [0, 1], got {self.scanned_share}")
        for name in ("training_lines", "validation_lines", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise DigitrecError(f"{name.replace('_', ' ')} must be at least 1, got {getattr(self, name)}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise DigitrecError(f"learning rate must be a finite number > 0, got {self.learning_rate}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise DigitrecError(f"weight decay must be a finite number >= 0, got {self.weight_decay}")
        if not 0 <= self.seed <= MAX_SEED:
            raise DigitrecError(f"seed must be in [0, {MAX_SEED}], got {self.seed}")


@dataclass(frozen=True)
class AdaptConfig:
    """How a model is adapted; saved in its card."""

    base: str = "default"  # the model to start from: a shipped name, a checkpoint or an adapted folder
    epochs: int = 4
    learning_rate: float = 3e-4
    batch_size: int = 128
    user_repeats: int = 8  # each of the user's digits is seen this many times per epoch (augmented each time)
    mnist_per_user_digit: float = 1.0  # MNIST training digits mixed in per user digit seen
    holdout_fraction: float = 0.2  # share of the examples kept out of training to measure before/after
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (0 < self.learning_rate < 1, f"learning_rate must be in (0, 1), got {self.learning_rate}"),
            (self.user_repeats >= 1, f"user_repeats must be >= 1, got {self.user_repeats}"),
            (self.mnist_per_user_digit >= 0, f"mnist_per_user_digit must be >= 0, got {self.mnist_per_user_digit}"),
            (0 <= self.holdout_fraction < 1, f"holdout_fraction must be in [0, 1), got {self.holdout_fraction}"),
        ]
        for ok, message in checks:
            if not ok:
                raise DigitrecError(f"bad adaptation config: {message}")
