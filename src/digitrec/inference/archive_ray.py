"""The Ray engine of `inference.archive`: the files read by a pool of Ray actors, each loading the model once.

`ray.data.from_items` holds the pending paths, `map_batches` hands `files_per_task` of them at a time to one of
`workers` actors (`RecognizerActor`, one CPU each), and this process writes the rows as parts as they come back.
Without `address` a local cluster is started on this machine (and shut down at the end); with one (`ray://...` or
`HOST:PORT` of a running cluster) every node needs `digitrec[cluster]` installed and the input paths readable at the
same place (a shared file system). A Ray session already started by the caller (as the tests do) is used as it is.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import ray

from digitrec.errors import DigitrecError
from digitrec.inference.archive import ArchiveJob, PartWriter, file_rows


class RecognizerActor:
    """One worker: the model loaded once, then batches of paths -> each file's rows, as JSON text (one per file,
    so that a file's pages always travel, and are written, together)."""

    def __init__(self, job: ArchiveJob) -> None:
        self.job = job
        self.recognizer = job.load_recognizer()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [json.dumps(file_rows(self.recognizer, self.job.task, path)) for path in batch["path"]]
        return {"path": batch["path"], "rows": np.array(rows, dtype=object)}


def run_ray(
    job: ArchiveJob,
    pending: list[Path],
    writer: PartWriter,
    address: str | None = None,
    workers: int | None = None,
    files_per_task: int = 8,
    progress: bool = True,
) -> None:
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False)
        except ConnectionError as exc:
            raise DigitrecError(f"cannot reach the Ray cluster at {address}: {exc}") from None
    try:
        ray.data.DataContext.get_current().enable_progress_bars = progress
        workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        items = [{"path": str(path)} for path in pending]
        dataset = ray.data.from_items(items, override_num_blocks=math.ceil(len(items) / files_per_task))
        results = dataset.map_batches(
            RecognizerActor, fn_constructor_kwargs={"job": job}, batch_size=files_per_task, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1,
        )  # fmt: skip
        for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
            for rows in batch["rows"]:
                writer.add_file(json.loads(rows))
    finally:
        if started_here:
            ray.shutdown()
