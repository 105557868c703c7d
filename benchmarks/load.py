"""Load test of `digitrec serve` on this machine: throughput, latency percentiles and errors, batching on and off.

    python benchmarks/load.py --model CHECKPOINT                       # 5000 requests at concurrency 32
    python benchmarks/load.py --model CHECKPOINT --requests 1000 --configs unbatched,batch:2

For each server configuration it starts `python -m digitrec serve` on a free port of 127.0.0.1, then runs
  load:  N uploads of real MNIST test digits (112x112 PNGs, as the drawing page sends them);
  mixed: N requests of which 10% are malformed (bad bytes, wrong types, bad JSON, oversized headers), checking
         that none gets a 5xx and that every good one gets the answer it got alone (the reference pass).
Bounded: a fixed number of requests, to 127.0.0.1 only; each server is stopped afterwards.
Writes OUT/load-PAYLOAD.json and .md (default results/serve/load-png.*).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import platform
import shlex
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import numpy as np
from PIL import Image

from digitrec.data.datasets import load_split

HOST = "127.0.0.1"  # the only target: a server this script starts on this machine
DISTINCT_DIGITS = 200  # different MNIST test images cycled through as payloads
UPLOAD_SIDE_PX = 112  # what the drawing page sends (4 x 28)
MALFORMED_EVERY = 10  # in mixed mode, every 10th request is malformed (10%)
SERVER_START_TIMEOUT_S = 120
REQUEST_TIMEOUT_S = 60.0
PROBABILITY_TOLERANCE = 1e-4  # batched and single forward passes differ in float rounding only
PERCENTILES = (50, 95, 99)
PAYLOAD_DESCRIPTIONS = {
    "png": f"{UPLOAD_SIDE_PX}x{UPLOAD_SIDE_PX} PNG uploads of MNIST test digits (the photo pipeline runs on each)",
    "pixels": "28x28 JSON pixel arrays of MNIST test digits (no image decoding or photo pipeline)",
}
DEFAULT_CONFIGS = "unbatched,batch:0,batch:2"  # batch:W = micro-batching with a W ms window


@dataclass
class Payload:
    kind: str  # "good" or the kind of malformation
    files: dict | None = None
    json: object = None
    content: bytes | None = None
    headers: dict = field(default_factory=dict)
    digit_index: int | None = None  # for good payloads: which distinct digit


@dataclass
class Outcome:
    payload: Payload
    status: int | None  # None: a transport error (connection refused, reset, timeout)
    seconds: float
    answer: dict | None


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).resize((UPLOAD_SIDE_PX, UPLOAD_SIDE_PX), Image.Resampling.BILINEAR).save(buffer, "PNG")
    return buffer.getvalue()


def good_payloads(data_dir: Path | None, kind: str) -> list[Payload]:
    """`png`: uploads through the photo pipeline, as the page sends them; `pixels`: 28x28 JSON arrays (no pipeline)."""
    images = load_split("test", data_dir, download=False).images[:DISTINCT_DIGITS]
    if kind == "pixels":
        return [Payload("good", json={"pixels": image.tolist()}, digit_index=i) for i, image in enumerate(images)]
    return [
        Payload("good", files={"file": ("digit.png", png_bytes(image), "image/png")}, digit_index=i)
        for i, image in enumerate(images)
    ]


def png_claiming_size(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(100))) + chunk(b"IEND", b"")
    )


def malformed_payloads(good: bytes) -> list[Payload]:
    """One of each kind of bad request a public endpoint meets."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    return [
        Payload("random bytes", files={"file": ("x.png", noise, "image/png")}),
        Payload("truncated png", files={"file": ("x.png", good[: len(good) // 2], "image/png")}),
        Payload("text file", files={"file": ("x.txt", b"hello", "text/plain")}),
        Payload("plain body", content=b"hello", headers={"content-type": "text/plain"}),
        Payload("huge png header", files={"file": ("x.png", png_claiming_size(50_000, 50_000), "image/png")}),
        Payload("bad base64", json={"image_base64": "%%%"}),
        Payload("bad json", content=b"{", headers={"content-type": "application/json"}),
        Payload("pixels 27x28", json={"pixels": [[0] * 28] * 27}),
        Payload("no file field", files={"photo": ("x.png", good, "image/png")}),
        Payload("base64 of text", json={"image_base64": base64.b64encode(b"not an image").decode()}),
    ]


def request_plan(good: list[Payload], malformed: list[Payload], count: int, with_malformed: bool) -> list[Payload]:
    plan = []
    for i in range(count):
        if with_malformed and i % MALFORMED_EVERY == MALFORMED_EVERY - 1:
            plan.append(malformed[(i // MALFORMED_EVERY) % len(malformed)])
        else:
            plan.append(good[i % len(good)])
    return plan


async def send(client: httpx2.AsyncClient, payload: Payload) -> Outcome:
    started = time.perf_counter()
    try:
        response = await client.post(
            "/v1/predict", files=payload.files, json=payload.json, content=payload.content, headers=payload.headers
        )
    except httpx2.TransportError:
        return Outcome(payload, None, time.perf_counter() - started, None)
    answer = response.json() if response.status_code == 200 else None
    return Outcome(payload, response.status_code, time.perf_counter() - started, answer)


async def run_plan(url: str, plan: list[Payload], concurrency: int) -> tuple[list[Outcome], float]:
    """Send every request of `plan` with `concurrency` in flight; (outcomes in plan order, wall seconds)."""
    outcomes: list[Outcome | None] = [None] * len(plan)
    next_index = iter(range(len(plan)))
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx2.AsyncClient(base_url=url, limits=limits, timeout=REQUEST_TIMEOUT_S) as client:

        async def worker() -> None:
            for index in next_index:
                outcomes[index] = await send(client, plan[index])

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return outcomes, time.perf_counter() - started


def reference_answers(url: str, good: list[Payload]) -> list[dict]:
    """Each distinct digit's answer when sent alone (nothing to batch with)."""
    outcomes, _ = asyncio.run(run_plan(url, good, concurrency=1))
    if any(o.status != 200 for o in outcomes):
        raise SystemExit(f"reference pass failed: statuses {sorted({o.status for o in outcomes}, key=str)}")
    return [o.answer for o in outcomes]


def same_answer(answer: dict | None, reference: dict) -> bool:
    if answer is None or answer["digit"] != reference["digit"]:
        return False
    difference = np.abs(np.subtract(answer["probabilities"], reference["probabilities"])).max()
    return bool(difference <= PROBABILITY_TOLERANCE)


def summarize(outcomes: list[Outcome], seconds: float, references: list[dict]) -> dict:
    good = [o for o in outcomes if o.payload.kind == "good"]
    bad = [o for o in outcomes if o.payload.kind != "good"]
    latencies_ms = np.array([o.seconds * 1000 for o in good])
    statuses: dict[str, int] = {}
    for outcome in outcomes:
        key = str(outcome.status or "transport error")
        statuses[key] = statuses.get(key, 0) + 1
    return {
        "requests": len(outcomes),
        "seconds": round(seconds, 3),
        "requests_per_s": round(len(outcomes) / seconds, 1),
        "good_latency_ms": {f"p{p}": round(float(np.percentile(latencies_ms, p)), 2) for p in PERCENTILES}
        | {"mean": round(float(latencies_ms.mean()), 2), "max": round(float(latencies_ms.max()), 2)},
        "statuses": statuses,
        "server_errors_5xx": sum(1 for o in outcomes if o.status is not None and o.status >= 500),
        "transport_errors": sum(1 for o in outcomes if o.status is None),
        "good_not_200": sum(1 for o in good if o.status != 200),
        "good_wrong_answers": sum(1 for o in good if not same_answer(o.answer, references[o.payload.digit_index])),
        "malformed_sent": len(bad),
        "malformed_not_4xx": sum(1 for o in bad if o.status is None or not 400 <= o.status < 500),
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def server_command(model: str, port: int, config: str, threads: int | None) -> list[str]:
    command = [sys.executable, "-m", "digitrec", "serve", "--host", HOST, "--port", str(port), "--model", model]
    if config == "unbatched":
        command.append("--no-batching")
    elif config.startswith("batch:"):
        command += ["--batch-window-ms", config.split(":", 1)[1]]
    else:
        raise SystemExit(f"unknown config {config!r}; use 'unbatched' or 'batch:WINDOW_MS'")
    return command + (["--threads", str(threads)] if threads else [])


def wait_until_healthy(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with code {process.returncode}")
        try:
            if httpx2.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            time.sleep(0.2)
    raise SystemExit(f"the server did not answer within {SERVER_START_TIMEOUT_S} s")


def forward_passes(url: str) -> tuple[int, int]:
    health = httpx2.get(f"{url}/healthz").json()
    return health["requests"], health["batches"]


def benchmark_config(args: argparse.Namespace, config: str, good: list[Payload], malformed: list[Payload]) -> list:
    port = free_port()
    url = f"http://{HOST}:{port}"
    with tempfile.TemporaryFile() as server_log:
        process = subprocess.Popen(
            server_command(args.model, port, config, args.server_threads), stdout=server_log, stderr=server_log
        )
        try:
            wait_until_healthy(url, process)
            references = reference_answers(url, good)
            rows = []
            for mode in ("load", "mixed"):
                plan = request_plan(good, malformed, args.requests, with_malformed=mode == "mixed")
                before = forward_passes(url)
                outcomes, seconds = asyncio.run(run_plan(url, plan, args.concurrency))
                after = forward_passes(url)
                row = {"config": config, "mode": mode, "concurrency": args.concurrency}
                row |= summarize(outcomes, seconds, references)
                requests, batches = after[0] - before[0], after[1] - before[1]
                row["mean_batch_size"] = round(requests / batches, 2) if batches else None
                rows.append(row)
                print(format_row(row), flush=True)
            return rows
        finally:
            process.terminate()
            process.wait(timeout=30)


def format_row(row: dict) -> str:
    latency = row["good_latency_ms"]
    return (
        f"| {row['config']} | {row['mode']} | {row['requests']} | {row['requests_per_s']:.0f} | {latency['p50']:.1f}"
        f" | {latency['p95']:.1f} | {latency['p99']:.1f} | {row['mean_batch_size']} | {row['server_errors_5xx']}"
        f" | {row['transport_errors']} | {row['good_not_200']} | {row['good_wrong_answers']}"
        f" | {row['malformed_sent'] - row['malformed_not_4xx']}/{row['malformed_sent']} |"
    )


TABLE_HEADER = (
    "| config | mode | requests | req/s | p50 ms | p95 ms | p99 ms | mean batch | 5xx | transport errors "
    "| good not 200 | good answer changed | malformed refused with 4xx |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def machine_facts() -> dict:
    import torch

    return {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip


def write_results(out: Path, command: str, settings: dict, machine: dict, rows: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report = {"command": command, "settings": settings, "machine": machine, "runs": rows}
    stem = f"load-{settings['payload']}"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# `digitrec serve` under load",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine['cpus']} CPUs, {machine['platform']}, torch {machine['torch']}; "
        f"load average at start {machine['load_average_at_start']} (the load generator shares these cores).",
        "",
        f"Model `{settings['model']}`; good requests: {PAYLOAD_DESCRIPTIONS[settings['payload']]}; "
        f"{settings['requests']} requests per row at concurrency {settings['concurrency']}.",
        "",
        "Latencies are those of the good requests. `unbatched`: one forward pass per request; `batch:W`: the "
        "micro-batcher, whose first waiting image waits up to W ms for others. `mixed`: 10% malformed requests.",
        "",
        TABLE_HEADER,
        *(format_row(row) for row in rows),
        "",
    ]
    (out / f"{stem}.md").write_text("\n".join(lines))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", required=True, help="checkpoint or shipped model name the servers load")
    parser.add_argument("--requests", type=int, default=5000, help="requests per mode and config (default 5000)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help=f"comma-separated (default {DEFAULT_CONFIGS})")
    parser.add_argument("--payload", choices=["png", "pixels"], default="png", help="good requests (default png)")
    parser.add_argument("--server-threads", type=int, help="torch threads in the server (default: torch's choice)")
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("DIGITREC_DATA"), help="MNIST folder")
    parser.add_argument("--out", type=Path, default=Path("results/serve"), help="where load-PAYLOAD.json/.md go")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    good = good_payloads(args.data_dir, args.payload)
    malformed = malformed_payloads(png_bytes(load_split("test", args.data_dir, download=False).images[0]))
    command = "python benchmarks/load.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    machine = machine_facts()
    print(TABLE_HEADER, flush=True)
    rows = [row for config in args.configs.split(",") for row in benchmark_config(args, config, good, malformed)]
    settings = {"requests": args.requests, "concurrency": args.concurrency, "model": args.model,
                "payload": args.payload,
                "distinct_digits": DISTINCT_DIGITS, "upload_side_px": UPLOAD_SIDE_PX,
                "malformed_fraction": 1 / MALFORMED_EVERY}  # fmt: skip
    write_results(args.out, command, settings, machine, rows)
    failed = any(row["server_errors_5xx"] or row["good_wrong_answers"] or row["malformed_not_4xx"] for row in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
