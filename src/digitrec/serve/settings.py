"""How the service runs: its settings dataclass and limits (light: the CLI reads its defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from digitrec.model_files import DEFAULT_BACKEND

MAX_UPLOAD_MB = 10.0  # request bodies above this are refused with 413 before being read whole
UPLOAD_TYPES = {"image/png", "image/jpeg", "image/bmp", "image/gif", "image/webp", "application/octet-stream"}
REQUEST_TIMEOUT_S = 10.0  # reading, decoding and predicting one request; past it the answer is 503
BATCH_WINDOW_MS = 0.0  # a batch is what queued while the last pass ran; a 2 ms wait measured no better (results/serve)
MAX_BATCH_SIZE = 64  # images per forward pass
MAX_QUEUED_PREDICTIONS = 512  # images waiting for the batcher; past it the answer is 503 with Retry-After
READ_WORKERS = 1  # threads that read numbers (/v1/read): predictions never wait behind them
MAX_WAITING_READS = 2  # reads queued behind those threads; past it the answer is 503 at once
RETRY_AFTER_S = 1  # the Retry-After of a 503
KEEP_ALIVE_TIMEOUT_S = 5  # an idle connection is closed after this long (uvicorn's timeout_keep_alive)
HEADER_TIMEOUT_S = 5.0  # a connection whose first request's headers have not all arrived by then is closed
MAX_CONNECTIONS = 200  # concurrent connections and tasks; uvicorn answers 503 past it (limit_concurrency)
MAX_HEADER_BYTES = 16 * 1024  # headers larger than this are refused (h11_max_incomplete_event_size)
MULTIPART_MAX_FIELDS = 8  # a predict form has one field; refuse forms built to exhaust the parser
API_KEY_ENV = "DIGITREC_API_KEY"
SETTINGS_ENV = "DIGITREC_SERVE_SETTINGS"  # how `--workers N` hands the settings to each worker process


@dataclass(frozen=True)
class ServerSettings:
    model: str = "default"  # a shipped model's name, a checkpoint file or a run folder
    backend: str = DEFAULT_BACKEND
    tta: bool = True  # read each image through the model's test-time views (see Recognizer.load)
    api_key: str | None = None  # when set, /v1/* needs it (X-API-Key or Authorization: Bearer)
    max_upload_mb: float = MAX_UPLOAD_MB
    request_timeout_s: float = REQUEST_TIMEOUT_S
    batching: bool = True  # False: one forward pass per request (the baseline the batcher is measured against)
    batch_window_ms: float = BATCH_WINDOW_MS
    max_batch_size: int = MAX_BATCH_SIZE
    max_queued_predictions: int = MAX_QUEUED_PREDICTIONS
    read_workers: int = READ_WORKERS
    max_waiting_reads: int = MAX_WAITING_READS
    threads: int | None = None  # the model runtime's CPU threads in each worker process (None: its choice)
    corrections_db: str | None = None  # SQLite file where POST /v1/corrections stores examples (None: not kept)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
