"""Model registry: a name -> an `nn.Module` constructor, with the training defaults that travel with it.

Models here know nothing of files, data or training loops; shapes are computed from the input size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from digitrec.errors import DigitrecError
from digitrec.mnist import CLASSES as MNIST_CLASSES
from digitrec.mnist import IMAGE_SIZE as MNIST_IMAGE_SIZE
from digitrec.model_files import LINE_GRU_MODEL, LINE_MODEL, SHIPPED_PIECE_MODEL

# The report's CNN (annex): three Conv2D(64, 3x3) + ReLU + MaxPool(2x2), then Dense(64), Dense(32), Dense(10).
PAPER_CONV_CHANNELS = 64
PAPER_KERNEL_SIZE = 3
PAPER_POOL_SIZE = 2
PAPER_DENSE_3 = (64, 32)  # hidden widths of the "3 dense layers" head (the third dense layer is the output)
# The report does not give the width of the extra hidden layer of its "4 dense layers" head; we repeat the first
# hidden width (64), so the extra layer changes depth without changing the bottleneck.
PAPER_DENSE_4 = (64, 64, 32)
PAPER_L2 = 0.01  # Keras l2(0.01) on the first conv layer's kernel and bias
PAPER_ROTATION_DEG = 10.0  # ImageDataGenerator(rotation_range=10)


def conv_output_size(size: int, kernel: int, pool: int) -> int:
    """Spatial size after a valid (unpadded) convolution followed by a floor-mode max-pool."""
    return (size - kernel + 1) // pool


class PaperCNN(nn.Module):
    """The report's network: 3 x (conv 3x3, ReLU, max-pool 2x2), flatten, dense ReLU layers, linear output.

    Computed as 3 x (conv, max-pool, ReLU), the same function (see __init__).
    """

    def __init__(
        self,
        hidden_widths: tuple[int, ...],
        num_classes: int = MNIST_CLASSES,
        image_size: int = MNIST_IMAGE_SIZE,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        convs, channels, size = [], in_channels, image_size
        for _ in range(3):
            # max-pool before ReLU: the report's ReLU-then-pool function exactly (ReLU is monotone, so it commutes
            # with max), with ReLU on a quarter of the values (1-thread step loop, batch 32, busy machine: 1,189 ->
            # 1,749 images/s with channels-last; issue 22 exploration, not a committed benchmark). The modules
            # keep their indices, so checkpoints saved with the other order load unchanged.
            convs += [nn.Conv2d(channels, PAPER_CONV_CHANNELS, PAPER_KERNEL_SIZE), nn.MaxPool2d(2), nn.ReLU()]
            channels, size = PAPER_CONV_CHANNELS, conv_output_size(size, PAPER_KERNEL_SIZE, PAPER_POOL_SIZE)
        if size < 1:
            raise DigitrecError(f"input size {image_size} is too small for three conv+pool stages")
        self.features = nn.Sequential(*convs)
        dense, width = [], channels * size * size
        for hidden in hidden_widths:
            dense += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.classifier = nn.Sequential(nn.Flatten(), *dense, nn.Linear(width, num_classes))
        self.apply(glorot_init)

    @property
    def first_conv(self) -> nn.Conv2d:
        return self.features[0]

    def regularized_parameters(self) -> list[nn.Parameter]:
        """The parameters the report's L2 applies to: the first conv layer's kernel and bias."""
        return [self.first_conv.weight, self.first_conv.bias]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C, 28, 28) -> features (N, 64, 1, 1) -> logits (N, num_classes)
        return self.classifier(self.features(x))


def glorot_init(module: nn.Module) -> None:
    """Keras' defaults: Glorot-uniform kernels, zero biases (PyTorch's own default differs)."""
    if isinstance(module, nn.Conv2d | nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    build: Callable[..., nn.Module]
    description: str
    train_defaults: dict = field(default_factory=dict)  # TrainConfig fields this model is meant to train with
    # test-time augmentation: (rotation degrees, scale) views whose softmax is averaged; () reads the image as is
    test_time_views: tuple[tuple[float, float], ...] = ()


REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> None:
    if entry.name in REGISTRY:
        raise ValueError(f"model {entry.name!r} registered twice")
    REGISTRY[entry.name] = entry


# channels-last (NHWC) changes the speed only (config.SPEED_ONLY_FIELDS): about 1.3x for these at batch 32 (measured)
PAPER_DEFAULTS = {
    "batch_size": 32,
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "normalization": "paper",
    "channels_last": True,
}
PAPER_CASES = {  # case: (hidden widths, L2 on first conv, rotation augmentation); the report's table, section 5
    1: (PAPER_DENSE_3, False, False),
    2: (PAPER_DENSE_4, False, False),
    3: (PAPER_DENSE_3, True, False),
    4: (PAPER_DENSE_4, True, False),
    5: (PAPER_DENSE_3, False, True),
    6: (PAPER_DENSE_4, False, True),
    7: (PAPER_DENSE_3, True, True),
    # The text of case 8 says "3 dense layers", its table row says 4; we follow the table.
    8: (PAPER_DENSE_4, True, True),
}


def paper_case_name(case: int) -> str:
    return f"paper-case{case}"


def _register_paper_cases() -> None:
    for case, (widths, has_l2, has_rotation) in PAPER_CASES.items():
        parts = [f"{len(widths) + 1} dense"] + ["L2 0.01 on conv1"] * has_l2 + ["rotation ±10°"] * has_rotation
        register(
            ModelEntry(
                name=paper_case_name(case),
                build=lambda widths=widths, **kwargs: PaperCNN(widths, **kwargs),
                description=f"report case {case}: 3 conv (64, 3x3) + " + ", ".join(parts),
                train_defaults={
                    **PAPER_DEFAULTS,
                    "l2_first_conv": PAPER_L2 if has_l2 else 0.0,
                    "rotation_deg": PAPER_ROTATION_DEG if has_rotation else 0.0,
                },
            )
        )


_register_paper_cases()


DIGITNET_WIDTHS = (32, 64, 128)  # channels of the three stages; chosen to train in minutes per epoch on 2 cores
DIGITNET_DROPOUT = 0.25


def conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()]


class DigitNet(nn.Module):
    """A compact VGG-style CNN with batch norm: two 3x3 convs per stage, max-pool between stages, global pooling."""

    def __init__(
        self,
        widths: tuple[int, ...] = DIGITNET_WIDTHS,
        num_classes: int = MNIST_CLASSES,
        image_size: int = MNIST_IMAGE_SIZE,
        in_channels: int = 1,
        dropout: float = DIGITNET_DROPOUT,
    ) -> None:
        super().__init__()
        layers, channels = [], in_channels
        for stage, width in enumerate(widths):
            layers += conv_bn_relu(channels, width) + conv_bn_relu(width, width)
            if stage < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C, 28, 28) -> (N, w0, 14, 14) -> (N, w1, 7, 7) -> (N, w2, 7, 7) -> pooled (N, w2) -> (N, classes)
        return self.head(self.features(x))


DIGITNET_DEFAULTS = {
    "epochs": 15,
    "batch_size": 128,
    "optimizer": "adamw",
    "learning_rate": 3e-3,
    "weight_decay": 5e-4,
    "schedule": "onecycle",
    "label_smoothing": 0.1,
    "normalization": "standard",
    "rotation_deg": 12.0,
    "shift_fraction": 0.1,
    "scale_range": 0.1,
    "shear_deg": 8.0,
    "erase_probability": 0.25,
    "channels_last": True,
}


# Chosen on the validation splits of digitnet seeds 0-2 among six candidate sets (`digitrec tta-search`,
# results/model/test-time-augmentation.md): the identity, rotations by +-6 degrees, scales by 0.92 and 1.08.
DIGITNET_TEST_TIME_VIEWS = ((0.0, 1.0), (6.0, 1.0), (-6.0, 1.0), (0.0, 0.92), (0.0, 1.08))


register(
    ModelEntry(
        name="digitnet",
        build=lambda **kwargs: DigitNet(**kwargs),
        description="compact BN CNN (32-64-128, 6 convs), affine aug + erasing, label smoothing, one-cycle",
        train_defaults=DIGITNET_DEFAULTS,
        test_time_views=DIGITNET_TEST_TIME_VIEWS,
    )
)


register(
    ModelEntry(
        name="digitnet-small",
        build=lambda **kwargs: DigitNet(widths=(16, 32, 64), **kwargs),
        description="digitnet at half width (16-32-64): the fast preset",
        train_defaults={**DIGITNET_DEFAULTS, "epochs": 6},
    )
)


# The reader's piece model (digitrec.reading.pieces): digitnet-small over two views of a candidate piece of a line
# (the piece,
# and the piece in its line), 11 classes (the ten digits and "not one whole digit").
PIECE_MODEL = SHIPPED_PIECE_MODEL  # the piece model shipped in the package is of this architecture
PIECE_VIEWS = 2


register(
    ModelEntry(
        name=PIECE_MODEL,
        build=lambda **kwargs: DigitNet(widths=(16, 32, 64), in_channels=PIECE_VIEWS, **kwargs),
        description="the reader's piece model: is a cut piece of a line one whole digit (2 views, 11 classes)",
    )
)


# The speedrun presets (issue 22): MNIST to 99% in seconds on two CPU cores. A strided stem (conv 4x4, stride 2) takes
# the 28x28 image straight to 14x14, so no layer runs at full resolution (the 1-channel full-resolution stage, its batch
# norm and its pooling took over half the step time; the stem doubles the images/s, measured); then two stages of conv
# 3x3 + batch norm + max-pool *before* ReLU (the same function as ReLU then pool, on a quarter of the values), no
# dropout; the head is one linear layer over the last 3x3 map. Widths chosen on validation accuracy per second of
# training (benchmarks/speedrun_ablation.py, results/model/speedrun-ablation.md).
SPEEDNET_WIDTHS = (24, 48, 96)  # the stem's channels, then each stage's
SPEEDNET_STEM_KERNEL, SPEEDNET_STEM_STRIDE, SPEEDNET_STEM_PADDING = 4, 2, 1  # 28 -> 14


def conv_bn_pool_relu(in_channels: int, out_channels: int, pool_before_relu: bool = True) -> list[nn.Module]:
    conv_bn = [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels)]
    return conv_bn + ([nn.MaxPool2d(2), nn.ReLU()] if pool_before_relu else [nn.ReLU(), nn.MaxPool2d(2)])


class SpeedNet(nn.Module):
    """A small BN CNN for training speed: a strided stem, (conv 3x3, BN, max-pool 2x2, ReLU) stages, a linear head."""

    def __init__(
        self,
        widths: tuple[int, ...] = SPEEDNET_WIDTHS,
        num_classes: int = MNIST_CLASSES,
        image_size: int = MNIST_IMAGE_SIZE,
        in_channels: int = 1,
        strided_stem: bool = True,  # False: a full-resolution stage (conv 3x3, BN, pool) instead (the ablation's)
        pool_before_relu: bool = True,  # False: ReLU then pool, the same function, slower (the ablation's)
    ) -> None:
        super().__init__()
        stem_width, *stage_widths = widths
        if strided_stem:
            stem = nn.Conv2d(
                in_channels, stem_width, SPEEDNET_STEM_KERNEL, SPEEDNET_STEM_STRIDE, SPEEDNET_STEM_PADDING, bias=False
            )
            layers = [stem, nn.BatchNorm2d(stem_width), nn.ReLU()]
            size = (image_size + 2 * SPEEDNET_STEM_PADDING - SPEEDNET_STEM_KERNEL) // SPEEDNET_STEM_STRIDE + 1
        else:
            layers, size = conv_bn_pool_relu(in_channels, stem_width, pool_before_relu), image_size // 2
        channels = stem_width
        for width in stage_widths:
            layers += conv_bn_pool_relu(channels, width, pool_before_relu)
            channels, size = width, size // 2
        if size < 1:
            raise DigitrecError(f"input size {image_size} is too small for the stem and {len(stage_widths)} stages")
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * size * size, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C, 28, 28) -> stem (N, w0, 14, 14) -> (N, w1, 7, 7) -> (N, w2, 3, 3) -> (N, classes)
        return self.head(self.features(x))


# Chosen on the validation split (seed 0) by benchmarks/speedrun_ablation.py; what each choice buys is in
# results/model/speedrun-ablation.md. No augmentation: in one epoch it costs more than it gives.
SPEEDRUN_DEFAULTS = {
    "epochs": 1,
    "batch_size": 128,
    "optimizer": "adamw",
    "learning_rate": 6e-3,
    "weight_decay": 5e-4,
    "schedule": "onecycle",
    "label_smoothing": 0.1,
    "normalization": "standard",
    "channels_last": True,
}

register(
    ModelEntry(
        name="speedrun",
        build=lambda **kwargs: SpeedNet(**kwargs),
        description="speed preset: strided-stem BN CNN (24-48-96), 1 epoch, one-cycle; MNIST 99% in ~15 s on 2 cores",
        train_defaults=SPEEDRUN_DEFAULTS,
    )
)


# speedrun-long: the speedrun net wider (32-64-128), 5 epochs, with mild affine augmentation. Chosen on the mean
# validation accuracy over seeds 0-2 (2 threads, 2026-12-03), of four recipes of about 45-55 s each:
#   24-48-96, 8 epochs: 99.36%; the same with augmentation: 99.37%;
#   32-64-128, 5 epochs: 99.37%; the same with augmentation (this recipe): 99.43% (99.26, 99.48, 99.54), 45-50 s.
# The earlier recipe (24-48-96, 4 epochs, no augmentation): 99.32%. All within about 0.1 point, the noise of three
# 5,000-image splits (benchmarks/speedrun_ablation.py --preset speedrun-long --seeds 0,1,2, speedrun-long-ablation.md).
SPEEDRUN_LONG_WIDTHS = (32, 64, 128)
SPEEDRUN_LONG_AUGMENTATION = {"rotation_deg": 8.0, "shift_fraction": 0.08, "scale_range": 0.08}
register(
    ModelEntry(
        name="speedrun-long",
        build=lambda **kwargs: SpeedNet(widths=SPEEDRUN_LONG_WIDTHS, **kwargs),
        description="speedrun net 32-64-128, 5 epochs, mild augmentation: MNIST 99.5% in under a minute on 2 cores",
        train_defaults={**SPEEDRUN_DEFAULTS, "epochs": 5, **SPEEDRUN_LONG_AUGMENTATION},
    )
)


class PytorchExampleNet(nn.Module):
    """The network of PyTorch's examples/mnist: 2 conv + 2 dense with dropout (the benchmark's reference)."""

    def __init__(self, num_classes: int = MNIST_CLASSES, image_size: int = MNIST_IMAGE_SIZE) -> None:
        super().__init__()
        pooled = (image_size - 4) // 2  # two valid 3x3 convs, then a 2x2 max-pool
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * pooled * pooled, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, 1, 28, 28) -> (N, 64, 12, 12) -> (N, 9216) -> (N, classes)
        return self.classifier(self.features(x))


register(
    ModelEntry(
        name="pytorch-example",
        build=lambda **kwargs: PytorchExampleNet(**kwargs),
        description="PyTorch's examples/mnist network and recipe (Adadelta 1.0, step gamma 0.7, batch 64)",
        train_defaults={
            "epochs": 14,
            "batch_size": 64,
            "optimizer": "adadelta",
            "learning_rate": 1.0,
            "step_gamma": 0.7,
            "normalization": "standard",
        },  # fmt: skip
    )
)


def model_entry(name: str) -> ModelEntry:
    try:
        return REGISTRY[name]
    except KeyError:
        raise DigitrecError(f"unknown model {name!r}; `digitrec models` lists them") from None


def build_model(name: str, num_classes: int = MNIST_CLASSES, image_size: int = MNIST_IMAGE_SIZE) -> nn.Module:
    return model_entry(name).build(num_classes=num_classes, image_size=image_size)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# The line model (digitrec.reading.line_model): a line's ink, 40 rows high with digits 20 px tall, read column by
# column. A strided stem and a pool take the width to a quarter (one output step per 4 columns, a digit ~5 steps);
# the last convolution spans the whole height of the band, then two convolutions along the line. Receptive field ~36
# columns: a digit and half of each neighbour. Sized to train on ~100k lines in minutes per epoch on 2 cores.
LINENET_WIDTHS = (24, 48, 96, 96)
LINENET_BAND_ROWS = 5  # rows left of the 40-row band after the stem (/2), the pool (/2) and the height pool (/2)


class LineNet(nn.Module):
    """(N, 1, 40, W) -> (N, W / 4, classes) log-probabilities (CTC over the steps)."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = LINENET_WIDTHS, **_: object) -> None:
        super().__init__()
        stem, second, third, band = widths
        self.features = nn.Sequential(
            nn.Conv2d(1, stem, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            *conv_bn_relu(stem, second),
            *conv_bn_relu(second, third),
            nn.MaxPool2d((2, 1)),
            nn.Conv2d(third, band, (LINENET_BAND_ROWS, 3), padding=(0, 1), bias=False), nn.BatchNorm2d(band),
            nn.ReLU(inplace=True),
        )  # fmt: skip
        self.sequence = nn.Sequential(
            nn.Conv1d(band, band, 3, padding=1, bias=False),
            nn.BatchNorm1d(band),
            nn.ReLU(inplace=True),
            nn.Conv1d(band, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        columns = self.features(x).squeeze(2)  # (N, C, T)
        return torch.log_softmax(self.sequence(columns), dim=1).transpose(1, 2)


register(
    ModelEntry(
        name=LINE_MODEL,
        build=lambda **kwargs: LineNet(**kwargs),
        description="the reader's line model: a whole line of digits read at once (CNN + CTC, 11 classes)",
    )
)


# The line model with the whole line as context: LineNet's features, then a bidirectional GRU over the steps instead
# of LineNet's convolutions along the line (which see ~36 columns): each step's digit is read knowing the rest of the
# line (how wide its digits are, where the last one ended). 1.4x LineNet's training time per line.
LINENET_GRU_HIDDEN = 96


class LineGRUNet(LineNet):
    """(N, 1, 40, W) -> (N, W / 4, classes) log-probabilities (CTC over the steps), a BiGRU over the steps."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = LINENET_WIDTHS, **_: object) -> None:
        super().__init__(num_classes, widths)
        self.recurrent = nn.GRU(widths[-1], LINENET_GRU_HIDDEN, batch_first=True, bidirectional=True)
        self.sequence = nn.Conv1d(2 * LINENET_GRU_HIDDEN, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, _ = self.recurrent(self.features(x).squeeze(2).transpose(1, 2))  # (N, T, 2 hidden)
        return torch.log_softmax(self.sequence(steps.transpose(1, 2)), dim=1).transpose(1, 2)


register(
    ModelEntry(
        name=LINE_GRU_MODEL,
        build=lambda **kwargs: LineGRUNet(**kwargs),
        description="the line model with a bidirectional GRU over the line (CNN + BiGRU + CTC, 11 classes)",
    )
)
