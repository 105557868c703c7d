"""Training: a config dataclass per run, `fit()`, per-epoch history, checkpoints every epoch, exact resume.

Every random draw of epoch `e` comes from a generator seeded by `(seed, e)`, so a run resumed from the
checkpoint of epoch `e - 1` continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from digitrec import model_files
from digitrec.data.datasets import LabelledImages, dataset_spec, load_split, training_and_validation
from digitrec.errors import DigitrecError, one_line
from digitrec.evaluation.report import accuracy_and_loss
from digitrec.fileio import write_json_atomic
from digitrec.images.normalize import to_model_inputs
from digitrec.models.registry import build_model
from digitrec.training import augment, checkpoint
from digitrec.training.config import TrainConfig
from digitrec.training.runtime import Runtime, setup_runtime

log = logging.getLogger(__name__)


KERAS_ADAM_EPSILON = 1e-7  # Keras' Adam default (PyTorch's is 1e-8); the report trained with Keras
SGD_MOMENTUM = 0.9
EPOCH_SEED_STRIDE = 1_000_003  # a prime: seeds of (seed, epoch) pairs never collide for epoch < stride
EVAL_BATCH_SIZE = 1000
PROGRESS_EVERY_STEPS = 50  # refresh the progress bar's loss/accuracy this often (each refresh syncs a GPU)
RUN_FILE = "run.json"
ONECYCLE_WARMUP_FRACTION = 0.25  # share of steps spent rising to the peak learning rate
ONECYCLE_DIV_START = 25.0  # start at peak / 25 (torch's OneCycleLR default)
ONECYCLE_DIV_END = 1e4  # end at start / 1e4 (torch's OneCycleLR default)


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    train_accuracy: float
    validation_loss: float | None
    validation_accuracy: float | None
    learning_rate: float
    seconds: float
    images_per_second: float
    cpu_seconds: float = 0.0  # this process's CPU time over the epoch, all threads (0 in runs saved before it)


@dataclass
class TrainResult:
    config: TrainConfig
    history: list[EpochRecord]
    test_accuracy: float
    test_loss: float
    test_correct: int
    test_total: int
    checkpoint_path: Path
    summary: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedData:
    """Model-ready tensors: inputs `(N, 1, H, W)` float32, labels `(N,)` int64."""

    train_inputs: torch.Tensor
    train_labels: torch.Tensor
    validation_inputs: torch.Tensor
    validation_labels: torch.Tensor
    num_classes: int
    image_size: int

    def to(self, device: torch.device) -> PreparedData:
        move = {k: v.to(device) for k, v in vars(self).items() if isinstance(v, torch.Tensor)}
        return dataclasses.replace(self, **move)


def to_tensors(split: LabelledImages, normalization: str) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(to_model_inputs(split.images, normalization)), torch.from_numpy(
        split.labels.astype(np.int64)
    )


def prepare_training_data(config: TrainConfig, data_dir: str | Path | None = None) -> PreparedData:
    """Training split minus a seeded validation split, optionally subsampled, normalized, as tensors."""
    spec = dataset_spec(config.dataset)
    train_part, validation_part = training_and_validation(
        spec, data_dir, config.seed, config.validation_size, config.train_subset
    )
    train_inputs, train_labels = to_tensors(train_part, config.normalization)
    validation_inputs, validation_labels = to_tensors(validation_part, config.normalization)
    return PreparedData(
        train_inputs, train_labels, validation_inputs, validation_labels, spec.num_classes, spec.image_shape[0]
    )


def load_test_tensors(config: TrainConfig, data_dir: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    test_split = load_split("test", data_dir, dataset_spec(config.dataset))
    if config.test_subset:
        test_split = test_split.subset(np.arange(config.test_subset))
    return to_tensors(test_split, config.normalization)


def make_optimizer(config: TrainConfig, parameters) -> torch.optim.Optimizer:
    """The config's optimizer; Adam, AdamW and SGD use torch's fused kernels (one call per step for all parameters:
    the same update; 1,749 -> 2,135 images/s for the report's CNN, batch 32, 1 thread, in issue 22's step-loop
    exploration on a busy machine, not a committed benchmark)."""
    lr, wd = config.learning_rate, config.weight_decay
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=lr, eps=KERAS_ADAM_EPSILON, weight_decay=wd, fused=True)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=wd, fused=True)
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=SGD_MOMENTUM, nesterov=True, weight_decay=wd, fused=True)
    return torch.optim.Adadelta(parameters, lr=lr, weight_decay=wd)


def learning_rate_at(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The learning rate for global step `step`: a pure function of the config, so resuming needs no state."""
    total_steps = config.epochs * steps_per_epoch
    progress = min(step / max(total_steps, 1), 1.0)
    peak = config.learning_rate * config.step_gamma ** (step // steps_per_epoch)
    if config.schedule == "cosine":
        return peak * 0.5 * (1 + math.cos(math.pi * progress))
    if config.schedule == "onecycle":
        start, end = peak / ONECYCLE_DIV_START, peak / ONECYCLE_DIV_START / ONECYCLE_DIV_END
        if progress < ONECYCLE_WARMUP_FRACTION:
            phase = progress / ONECYCLE_WARMUP_FRACTION
            return start + (peak - start) * 0.5 * (1 - math.cos(math.pi * phase))
        phase = (progress - ONECYCLE_WARMUP_FRACTION) / (1 - ONECYCLE_WARMUP_FRACTION)
        return end + (peak - end) * 0.5 * (1 + math.cos(math.pi * phase))
    return peak


def l2_penalty(parameters: list[torch.Tensor], coefficient: float) -> torch.Tensor:
    """Keras' l2(c) regularizer summed over `parameters`: c * sum(p ** 2)."""
    return coefficient * sum(p.pow(2).sum() for p in parameters)


def augment_batch(inputs: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """The config's augmentations; rotation alone keeps the report's plain rotation (cases 5-8)."""
    if config.shift_fraction or config.scale_range or config.shear_deg:
        inputs = augment.random_affine(
            inputs, generator, config.rotation_deg, config.shift_fraction, config.scale_range, config.shear_deg
        )
    else:
        inputs = augment.random_rotation(inputs, config.rotation_deg, generator)
    return augment.random_erasing(inputs, config.erase_probability, generator)


def regularized_parameters(model: nn.Module) -> list[torch.Tensor]:
    if not hasattr(model, "regularized_parameters"):
        raise DigitrecError(f"{type(model).__name__} has no first-conv L2 parameters; set l2_first_conv = 0")
    return model.regularized_parameters()


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * EPOCH_SEED_STRIDE + epoch)


def rank_generator(seed: int, epoch: int, runtime: Runtime, shared: torch.Generator) -> torch.Generator:
    """The augmentation generator: the shared one in a single process, one per rank under torchrun."""
    if not runtime.distributed:
        return shared
    return torch.Generator().manual_seed((seed * EPOCH_SEED_STRIDE + epoch) * runtime.world_size + runtime.rank)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    data: PreparedData,
    epoch: int,
    progress: bool = True,
    runtime: Runtime | None = None,
) -> tuple[float, float, float]:
    """One pass over the training tensors; returns (mean loss, accuracy, images/s), summed over all ranks.

    Every rank draws the same permutation and takes its own stride of it, with batch_size / world_size images
    per step, so a step sees batch_size images in total, as in one process.
    """
    runtime = runtime or Runtime(torch.device("cpu"))
    model.train()
    generator = epoch_generator(config.seed, epoch)
    count = len(data.train_labels)
    order = torch.randperm(count, generator=generator)
    order = order[runtime.rank : count - count % runtime.world_size : runtime.world_size]
    augment_generator = rank_generator(config.seed, epoch, runtime, generator)
    rank_batch = config.batch_size // runtime.world_size
    steps = math.ceil(len(order) / rank_batch)
    regularized = regularized_parameters(model) if config.l2_first_conv > 0 else []
    totals = torch.zeros(3, dtype=torch.float64, device=runtime.device)  # loss sum, correct, seen
    started = time.perf_counter()
    bar = tqdm(total=count, unit="img", desc=f"epoch {epoch + 1}/{config.epochs}", leave=False, disable=not progress)
    for step in range(steps):
        batch_idx = order[step * rank_batch : (step + 1) * rank_batch].to(runtime.device)
        inputs = augment_batch(data.train_inputs[batch_idx], config, augment_generator)
        labels = data.train_labels[batch_idx]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(config, epoch * steps + step, steps)
        with torch.autocast(runtime.device.type, dtype=torch.bfloat16, enabled=runtime.mixed_precision):
            logits = model(inputs)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing)
        if regularized:
            loss = loss + l2_penalty(regularized, config.l2_first_conv)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        totals += torch.stack(
            [
                loss.detach().double() * len(labels),
                (logits.argmax(1) == labels).sum().double(),
                totals.new_tensor(len(labels)),
            ]
        )
        bar.update(len(labels) * runtime.world_size)
        if step % PROGRESS_EVERY_STEPS == 0 and progress:
            bar.set_postfix(loss=f"{totals[0] / totals[2]:.4f}", acc=f"{totals[1] / totals[2]:.4f}", refresh=False)
    bar.close()
    elapsed = time.perf_counter() - started
    loss_sum, correct, seen = runtime.sum_across_ranks(totals).tolist()
    return loss_sum / seen, correct / seen, seen / elapsed


def run_metadata(config: TrainConfig, data: PreparedData, history: list[EpochRecord], **extra: Any) -> dict:
    return {
        "format": "digitrec-checkpoint-1",
        "config": config.to_dict(),
        "num_classes": data.num_classes,
        "image_size": data.image_size,
        "epochs_done": len(history),
        "history": [dataclasses.asdict(r) for r in history],
        **extra,
    }


def restore_from_checkpoint(
    path: Path, config: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer
) -> list[EpochRecord]:
    tensors, metadata = checkpoint.read_checkpoint(path)
    saved = metadata.get("config", {})
    if not config.matches(saved):
        defaults = TrainConfig().to_dict()  # fields a saved config predates count at their default
        differing = sorted(k for k in config.to_dict() if saved.get(k, defaults[k]) != getattr(config, k))
        raise DigitrecError(f"{path}: cannot resume, its config differs in: {', '.join(differing)}")
    optimizer_state = checkpoint.optimizer_state(tensors, metadata)
    if optimizer_state is None:
        raise DigitrecError(f"{path}: cannot resume, the checkpoint holds no optimizer state")
    try:
        model.load_state_dict(checkpoint.model_state(tensors))
        optimizer.load_state_dict(optimizer_state)
        match_state_layouts(optimizer)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise DigitrecError(
            f"{path}: cannot resume, its weights or optimizer state do not fit this run ({one_line(exc)})"
        ) from None
    try:
        return [EpochRecord(**r) for r in metadata["history"]]
    except (KeyError, TypeError) as exc:
        raise DigitrecError(f"{path}: cannot resume, its history is not a digitrec run's ({one_line(exc)})") from None


def match_state_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give each parameter's optimizer state its parameter's memory layout (a checkpoint stores them contiguous).

    The fused optimizers walk a parameter and its state in memory order, so a channels-last parameter with a
    contiguous state would pair the wrong elements.
    """
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            state = optimizer.state.get(parameter, {})
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.shape == parameter.shape:
                    state[key] = torch.empty_like(parameter, dtype=value.dtype).copy_(value)


def history_summary(history: list[EpochRecord]) -> dict:
    """The report's figures: min/max training and validation accuracy over epochs."""
    train = [r.train_accuracy for r in history]
    validation = [r.validation_accuracy for r in history if r.validation_accuracy is not None]
    summary = {"min_train_accuracy": min(train), "max_train_accuracy": max(train)}
    if validation:
        summary |= {"min_validation_accuracy": min(validation), "max_validation_accuracy": max(validation)}
    summary["mean_epoch_seconds"] = sum(r.seconds for r in history) / len(history)
    summary["mean_images_per_second"] = sum(r.images_per_second for r in history) / len(history)
    return summary


def fit(
    config: TrainConfig,
    out_dir: str | Path,
    data_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
    device: str = "auto",
) -> TrainResult:
    """Train `config` into `out_dir` (checkpoint.safetensors after every epoch, run.json at the end).

    Under `torchrun` every rank trains its share of each batch (DistributedDataParallel); rank 0 writes, every
    rank can resume from what it wrote, and `on_epoch_end` runs on rank 0 only.
    """
    runtime = setup_runtime(device)
    try:
        return fit_on(runtime, config, Path(out_dir), data_dir, resume, progress, on_epoch_end)
    finally:
        runtime.close()


def fit_on(
    runtime: Runtime,
    config: TrainConfig,
    out_dir: Path,
    data_dir: str | Path | None,
    resume: bool,
    progress: bool,
    on_epoch_end: Callable[[EpochRecord], None] | None,
) -> TrainResult:
    checkpoint_path = out_dir / model_files.CHECKPOINT_NAME
    if out_dir.exists() and not out_dir.is_dir():
        raise DigitrecError(f"{out_dir}: --out must be a folder, and this is a file")
    if checkpoint_path.exists() and not resume:
        raise DigitrecError(f"{out_dir} already holds a run: pass --resume to continue it, or choose another --out")
    if config.batch_size % runtime.world_size:
        raise DigitrecError(f"batch_size {config.batch_size} must divide evenly over {runtime.world_size} processes")
    data = prepare_training_data(config, data_dir).to(runtime.device)  # fails on bad data before anything is written
    test_inputs, test_labels = load_test_tensors(config, data_dir)

    torch.manual_seed(config.seed)
    model = build_model(config.model, num_classes=data.num_classes, image_size=data.image_size).to(runtime.device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(config, model.parameters())
    history: list[EpochRecord] = []
    if resume and checkpoint_path.exists():
        history = restore_from_checkpoint(checkpoint_path, config, model, optimizer)
        log.info("resuming %s after epoch %d", out_dir, len(history))
    trained = DistributedDataParallel(model) if runtime.distributed else model

    for epoch in range(len(history), config.epochs):
        started, started_cpu = time.perf_counter(), time.process_time()
        train_loss, train_accuracy, images_per_second = train_epoch(
            trained, optimizer, config, data, epoch, progress and runtime.is_main, runtime
        )
        validation_accuracy = validation_loss = None
        if len(data.validation_labels):
            validation_accuracy, validation_loss = accuracy_and_loss(
                model, data.validation_inputs, data.validation_labels, EVAL_BATCH_SIZE
            )
        record = EpochRecord(
            epoch=epoch + 1,
            train_loss=train_loss,
            train_accuracy=train_accuracy,
            validation_loss=validation_loss,
            validation_accuracy=validation_accuracy,
            learning_rate=optimizer.param_groups[0]["lr"],
            seconds=time.perf_counter() - started,
            images_per_second=images_per_second,
            cpu_seconds=time.process_time() - started_cpu,
        )
        history.append(record)
        if runtime.is_main:
            metadata = run_metadata(config, data, history, world_size=runtime.world_size)
            checkpoint.save_checkpoint(checkpoint_path, model, metadata, optimizer.state_dict())
            if on_epoch_end:
                on_epoch_end(record)
        runtime.barrier()

    test_accuracy, test_loss = accuracy_and_loss(model, test_inputs, test_labels, EVAL_BATCH_SIZE)
    test_correct = round(test_accuracy * len(test_labels))
    summary = history_summary(history) | {"test_accuracy": test_accuracy, "test_loss": test_loss}
    metadata = run_metadata(config, data, history, finished=True, summary=summary, world_size=runtime.world_size)
    if runtime.is_main:
        checkpoint.save_checkpoint(checkpoint_path, model, metadata, optimizer.state_dict())
        write_json_atomic(out_dir / RUN_FILE, {k: v for k, v in metadata.items() if k != "optimizer_state"})
    runtime.barrier()
    return TrainResult(
        config, history, test_accuracy, test_loss, test_correct, len(test_labels), checkpoint_path, summary
    )
