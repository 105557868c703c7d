"""One benchmark command: training and inference throughput, end-to-end latency, and the share of the CPU's peak.

    python -m benchmarks [--quick] [--out results/bench]

Every figure is the median of repeated runs, with the spread (min-max) beside it. FLOPs are counted by forward
hooks on Conv2d/Linear layers (2 FLOPs per multiply-add); a training step counts 3x the forward FLOPs (forward,
and the two products of the backward pass). The peak FP32 rate is derived from /proc/cpuinfo (see `cpu_peak`); as
cpuinfo's clock is the base clock, not the turbo one, the rate of a large FP32 matrix product on the same threads
is measured too (`matmul_rate`), a peak that can be reached, and each figure given against both.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from digitrec.data.datasets import load_split
from digitrec.fileio import write_json_atomic, write_text_atomic
from digitrec.images.normalize import to_model_inputs
from digitrec.models.registry import build_model
from digitrec.training.config import TrainConfig
from digitrec.training.loop import PreparedData, make_optimizer, train_epoch

# (model, channels_last override or None for the model's default): each pair records the layout's effect;
# paper-case1 is the report's grid's plain case (issue 22's target), paper-case7 adds its L2 and rotation
TRAINING_RUNS = (
    ("paper-case1", False),
    ("paper-case1", True),
    ("paper-case7", None),
    ("digitnet", False),
    ("digitnet", True),
)
INFERENCE_BATCHES = (1, 32, 1024)
TRAIN_IMAGES = 4096  # images per timed training pass
TRAINING_STEP_FLOP_FACTOR = 3  # forward + backward (grad wrt inputs and wrt weights)
# sides of the square FP32 matrices of the measured peak: the best rate over them (onnxruntime, 1 thread, here:
# 213 GFLOP/s at 512, 210 at 1024, 190 at 2048, whose 16 MB matrices outgrow the caches)
MATMUL_SIZES = (512, 1024, 2048)
MATMUL_TIMING_FLOPS = 20e9  # each timing repeats the product up to this many FLOPs (about 0.1 s here)
ONNX_OPSET, ONNX_IR_VERSION = 17, 8  # of the one-node MatMul model: what the pinned onnxruntime reads


def count_forward_flops(model: nn.Module, image_size: int = 28) -> int:
    """FLOPs of one image's forward pass through Conv2d and Linear layers (2 per multiply-add)."""
    total = 0

    def conv_hook(module: nn.Conv2d, inputs, output) -> None:
        nonlocal total
        kernel = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        total += 2 * output[0].numel() * kernel

    def linear_hook(module: nn.Linear, inputs, output) -> None:
        nonlocal total
        total += 2 * module.in_features * module.out_features

    hooks = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(linear_hook) for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 1, image_size, image_size))
    for hook in hooks:
        hook.remove()
    return total


def cpu_peak(threads: int) -> dict:
    """Peak FP32 FLOP/s of `threads` cores: cores x clock x FLOPs per cycle.

    FLOPs per cycle per core assume two FMA units: AVX-512 16 floats x 2 (FMA) x 2 units = 64; AVX2+FMA: 32;
    otherwise SSE: 8. The clock is the highest "cpu MHz" /proc/cpuinfo reports (turbo may exceed it).
    """
    flags, mhz, model_name = set(), 0.0, platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "flags":
                flags = set(value.split())
            elif key == "cpu MHz":
                mhz = max(mhz, float(value))
            elif key == "model name":
                model_name = value.strip()
    except OSError:
        pass
    per_cycle = 64 if "avx512f" in flags else 32 if {"avx2", "fma"} <= flags else 8
    return {
        "cpu": model_name,
        "threads": threads,
        "ghz": mhz / 1000,
        "flops_per_cycle_per_core": per_cycle,
        "peak_gflops": threads * mhz / 1000 * per_cycle,
    }


def onnx_matmul(threads: int, size: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A @ B of two (size, size) float32 matrices on onnxruntime (its own BLAS, MLAS) with `threads` threads."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    square = [size, size]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "matmul",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, square) for name in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, square)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], ir_version=ONNX_IR_VERSION)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda a, b: session.run(None, {"a": a, "b": b})[0]


def repeated_rate(product: Callable[[], object], flops: float, repeats: int) -> float:
    """GFLOP/s of `product` (`flops` each): the best of `repeats` timings of enough calls to reach
    MATMUL_TIMING_FLOPS."""
    calls = max(1, round(MATMUL_TIMING_FLOPS / flops))
    seconds = min(timed(lambda: [product() for _ in range(calls)], repeats))
    return flops * calls / seconds / 1e9


def matmul_rate(threads: int, repeats: int) -> dict:
    """GFLOP/s of square FP32 matrix products (2 n^3 FLOPs; n in MATMUL_SIZES) on `threads` threads, by torch's
    BLAS and by onnxruntime's (which is faster differs by CPU: MKL is slow on AMD): per library, the best over the
    sizes."""
    rates: dict[str, float] = {"torch": 0.0, "onnxruntime": 0.0}
    for size in MATMUL_SIZES:
        a, b = np.random.default_rng(0).standard_normal((2, size, size), dtype=np.float32)
        products = {
            "torch": partial(torch.matmul, torch.from_numpy(a), torch.from_numpy(b)),
            "onnxruntime": partial(onnx_matmul(threads, size), a, b),
        }
        for name, product in products.items():
            rates[name] = max(rates[name], repeated_rate(product, 2 * size**3, repeats))
    best = max(rates, key=rates.get)
    return {"best_gflops": rates[best], "best_library": best, "gflops": rates, "repeats": repeats,
            "sizes": list(MATMUL_SIZES)}  # fmt: skip


def timed(function: Callable[[], object], repeats: int) -> list[float]:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def training_throughput(
    name: str, channels_last: bool | None, images: np.ndarray, labels: np.ndarray, repeats: int
) -> dict:
    overrides = {} if channels_last is None else {"channels_last": channels_last}
    config = TrainConfig.for_model(name, epochs=1, **overrides)
    inputs = torch.from_numpy(to_model_inputs(images[:TRAIN_IMAGES], config.normalization))
    data = PreparedData(
        inputs, torch.from_numpy(labels[:TRAIN_IMAGES].astype(np.int64)), inputs[:0], inputs[:0, 0, 0, 0].long(), 10, 28
    )
    model = build_model(name)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(config, model.parameters())
    rates = [train_epoch(model, optimizer, config, data, epoch, progress=False)[2] for epoch in range(repeats + 1)][1:]
    flops = count_forward_flops(build_model(name)) * TRAINING_STEP_FLOP_FACTOR
    return {
        "model": name + (" (channels-last)" if config.channels_last else ""),
        "images_per_second": spread(rates),
        "flops_per_image": flops,
        "batch_size": config.batch_size,
    }


def inference_backends(name_or_path: str, threads: int) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Callables from normalized inputs `(N, 1, 28, 28)` to logits, one per backend."""
    from digitrec.inference.backends import load_network
    from digitrec.training import checkpoint

    model, _ = checkpoint.load_model(name_or_path)
    backends = {}

    @torch.inference_mode()
    def eager(x: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(x)).numpy()

    backends["torch eager"] = eager
    backends["onnxruntime"] = load_network(name_or_path, "onnx", threads).logits
    try:
        compiled = torch.compile(model, dynamic=True)

        @torch.inference_mode()
        def compiled_call(x: np.ndarray) -> np.ndarray:
            return compiled(torch.from_numpy(x)).numpy()

        compiled_call(np.zeros((2, 1, 28, 28), np.float32))
        backends["torch.compile"] = compiled_call
    except Exception as exc:  # torch.compile needs a working C++ toolchain; report, don't fail the benchmark
        print(f"torch.compile unavailable: {type(exc).__name__}: {exc}"[:200])
    return backends


def inference_throughput(name: str, images: np.ndarray, threads: int, repeats: int) -> list[dict]:
    from digitrec.training import checkpoint

    _, metadata = checkpoint.load_model(name)
    inputs = to_model_inputs(images[: max(INFERENCE_BATCHES)], metadata["config"]["normalization"])
    flops = count_forward_flops(checkpoint.load_model(name)[0])
    rows = []
    for backend, run in inference_backends(name, threads).items():
        for batch in INFERENCE_BATCHES:
            x = np.ascontiguousarray(inputs[:batch])
            calls = max(1, 2048 // batch)
            times = timed(lambda run=run, x=x, calls=calls: [run(x) for _ in range(calls)], repeats)
            rates = [batch * calls / t for t in times]
            rows.append(
                {"backend": backend, "batch": batch, "images_per_second": spread(rates), "flops_per_image": flops}
            )
    return rows


def end_to_end_latency(name: str, images: np.ndarray, calls: int) -> dict:
    """Seconds from an image file on disk to a Prediction (decode, preprocess, model)."""
    import cv2

    from digitrec.inference.recognizer import Recognizer

    recognizer = Recognizer.load(name)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index, image in enumerate(images[:50]):
            path = Path(folder) / f"digit-{index}.png"
            cv2.imwrite(str(path), 255 - cv2.resize(image, (112, 112), interpolation=cv2.INTER_CUBIC))
            paths.append(path)
        recognizer.predict(paths[0])
        latencies = []
        for call in range(calls):
            started = time.perf_counter()
            recognizer.predict(paths[call % len(paths)])
            latencies.append(time.perf_counter() - started)
    return {"p50_ms": float(np.percentile(latencies, 50) * 1e3), "p99_ms": float(np.percentile(latencies, 99) * 1e3),
            "calls": calls}  # fmt: skip


def peak_share(images_per_second: float, flops_per_image: int, peak_gflops: float) -> float:
    return images_per_second * flops_per_image / (peak_gflops * 1e9)


def shares(images_per_second: float, flops_per_image: int, report: dict) -> str:
    """'x% | y%': of the assumed peak, and of the measured matrix-product rate (where the report has it)."""
    nominal = peak_share(images_per_second, flops_per_image, report["peak"]["peak_gflops"])
    matmul = report.get("matmul")
    reached = f"{peak_share(images_per_second, flops_per_image, matmul['best_gflops']):.1%}" if matmul else "-"
    return f"{nominal:.1%} | {reached}"


def markdown(report: dict) -> str:
    peak = report["peak"]
    lines = [
        f"<!-- generated by: {report['command']} -->",
        f"Machine: {peak['cpu']}, {peak['threads']} torch threads, torch {torch.__version__}. Assumed peak FP32: "
        f"{peak['threads']} cores x {peak['ghz']:.2f} GHz x {peak['flops_per_cycle_per_core']} FLOPs/cycle = "
        f"{peak['peak_gflops']:.0f} GFLOP/s. Figures: median (min-max) of {report['repeats']} runs."
        + (f" 1-minute load average at the end: {report['load_average']:.1f}." if "load_average" in report else ""),
    ]
    if "matmul" in report:
        matmul = report["matmul"]
        rates = ", ".join(f"{name} {rate:.0f}" for name, rate in matmul["gflops"].items())
        sizes = ", ".join(str(size) for size in matmul.get("sizes", [2048]))
        lines[-1] += (f" Measured FP32 matrix product (square, sides {sizes}, same threads, the best): {rates} "
                      "GFLOP/s.")  # fmt: skip
    lines += [
        "",
        "| what | model | backend | batch | images/s | % of assumed peak FP32 | % of measured matrix product |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["training"]:
        rate = row["images_per_second"]
        share = shares(rate["median"], row["flops_per_image"], report)
        lines.append(f"| training | {row['model']} | torch | {row['batch_size']} | {rate['median']:,.0f} "
                     f"({rate['min']:,.0f}-{rate['max']:,.0f}) | {share} |")  # fmt: skip
    for row in report["inference"]:
        rate = row["images_per_second"]
        share = shares(rate["median"], row["flops_per_image"], report)
        lines.append(f"| inference | {report['inference_model']} | {row['backend']} | {row['batch']} | "
                     f"{rate['median']:,.0f} ({rate['min']:,.0f}-{rate['max']:,.0f}) | {share} |")  # fmt: skip
    latency = report["end_to_end"]
    lines += ["", f"End to end, PNG file -> answer ({latency['calls']} calls, {report['inference_model']}, torch): "
                  f"p50 {latency['p50_ms']:.2f} ms, p99 {latency['p99_ms']:.2f} ms."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--model", default="default", help="model for inference and latency (default: shipped)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 2 if args.quick else args.repeats
    test = load_split("test", args.data_dir)
    report = {
        "command": " ".join(["python -m benchmarks", *sys.argv[1:]]),
        "repeats": repeats,
        "peak": cpu_peak(args.threads),
        "matmul": matmul_rate(args.threads, repeats),
        "inference_model": args.model,
        "training": [training_throughput(n, cl, test.images, test.labels, repeats) for n, cl in TRAINING_RUNS],
        "inference": inference_throughput(args.model, test.images, args.threads, repeats),
        "end_to_end": end_to_end_latency(args.model, test.images, 100 if args.quick else 500),
    }
    report["load_average"] = os.getloadavg()[0]  # other work on the machine lowers every figure
    write_json_atomic(args.out / "bench.json", report)
    write_text_atomic(args.out / "bench.md", markdown(report))
    print(markdown(report))
