"""Predicting for requests: one at a time, or concurrent requests stacked into one forward pass."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import numpy as np

from digitrec.serve.settings import RETRY_AFTER_S, ServerSettings

if TYPE_CHECKING:
    from digitrec.inference.recognizer import Prediction, Recognizer


class ServerBusy(Exception):
    """Too much work waiting already: the request is answered 503 with Retry-After, at once."""


class DirectPredictor:
    """One `predict` per request, in a worker thread."""

    def __init__(self, recognizer: Recognizer) -> None:
        self.recognizer = recognizer
        self.requests = 0
        self.batches = 0

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def predict(self, image: np.ndarray) -> Prediction:
        self.requests += 1
        self.batches += 1
        return await asyncio.to_thread(self.recognizer.predict, image)


class MicroBatcher:
    """Stacks the images of concurrent requests and runs one `predict` on the batch, in a worker thread.

    The first waiting image opens a batch; images that arrive within `window_s` (or while the previous batch
    runs) join it, up to `max_size`. One image alone waits `window_s` at most.
    """

    def __init__(self, recognizer: Recognizer, window_s: float, max_size: int, max_queued: int) -> None:
        self.recognizer = recognizer
        self.window_s = window_s
        self.max_size = max_size
        self.requests = 0
        self.batches = 0
        self._queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future]] = asyncio.Queue(maxsize=max_queued)
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def predict(self, image: np.ndarray) -> Prediction:
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((image, future))
        except asyncio.QueueFull:
            raise ServerBusy(f"{self._queue.maxsize} predictions waiting already; retry in {RETRY_AFTER_S} s") from None
        self.requests += 1
        return await future

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            if batch:
                await self._predict_batch(batch)

    async def _collect(self) -> list[tuple[np.ndarray, asyncio.Future]]:
        batch = [await self._queue.get()]
        if self.window_s > 0:
            await asyncio.sleep(self.window_s)
        while len(batch) < self.max_size and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return [(image, future) for image, future in batch if not future.done()]  # timed-out requests are dropped

    async def _predict_batch(self, batch: list[tuple[np.ndarray, asyncio.Future]]) -> None:
        self.batches += 1
        images = np.stack([image for image, _ in batch])  # (N, 28, 28)
        try:
            predictions = await asyncio.to_thread(self.recognizer.predict, images)
        except Exception as exc:  # handed to each waiting request (a 500 there); the batcher keeps serving
            predictions = [exc] * len(batch)
        for (_, future), prediction in zip(batch, predictions, strict=True):
            if future.done():
                continue
            if isinstance(prediction, Exception):
                future.set_exception(prediction)
            else:
                future.set_result(prediction)


def make_predictor(recognizer: Recognizer, settings: ServerSettings) -> DirectPredictor | MicroBatcher:
    if not settings.batching:
        return DirectPredictor(recognizer)
    return MicroBatcher(
        recognizer, settings.batch_window_ms / 1000, settings.max_batch_size, settings.max_queued_predictions
    )
