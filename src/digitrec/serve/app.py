"""The HTTP service: a FastAPI app whose routes only call the Recognizer, and the drawing page at `/`.

    app = create_app(model="default")  # the Recognizer is loaded in the app's lifespan, not here
    run_server(ServerSettings(model="default"), host="127.0.0.1", port=8000)

Importing this module loads no model and starts nothing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import hmac
import io
import json
import logging
import os
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Security
from fastapi.responses import FileResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from PIL import Image
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from digitrec import __version__
from digitrec.errors import DigitrecError

if TYPE_CHECKING:
    from digitrec.inference.recognizer import Prediction, Recognizer


MAX_UPLOAD_MB = 10.0  # request bodies above this are refused with 413 before being read whole


MAX_IMAGE_PIXELS = 40_000_000  # width * height, read from the header before decoding: a 40 MP phone photo at most


IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")  # what Pillow may decode; no other decoder is reachable


UPLOAD_TYPES = {"image/png", "image/jpeg", "image/bmp", "image/gif", "image/webp", "application/octet-stream"}


REQUEST_TIMEOUT_S = 10.0  # reading, decoding and predicting one request; past it the answer is 503


BATCH_WINDOW_MS = 0.0  # a batch is what queued while the last pass ran; a 2 ms wait measured no better (results/serve)


MAX_BATCH_SIZE = 64  # images per forward pass


MULTIPART_MAX_FIELDS = 8  # a predict form has one field; refuse forms built to exhaust the parser


API_KEY_ENV = "DIGITREC_API_KEY"


SETTINGS_ENV = "DIGITREC_SERVE_SETTINGS"  # how `--workers N` hands the settings to each worker process


WEB_DIR = Path(__file__).parent / "web"


PAGE_HEADERS = {  # the page loads only its own files: no CDN, works offline
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


access_log = logging.getLogger("digitrec.access")


@dataclass(frozen=True)
class ServerSettings:
    model: str = "default"  # a shipped model's name, a checkpoint file or a run folder
    backend: str = "torch"
    tta: bool = True  # read each image through the model's test-time views (see Recognizer.load)
    api_key: str | None = None  # when set, /v1/* needs it (X-API-Key or Authorization: Bearer)
    max_upload_mb: float = MAX_UPLOAD_MB
    request_timeout_s: float = REQUEST_TIMEOUT_S
    batching: bool = True  # False: one forward pass per request (the baseline the batcher is measured against)
    batch_window_ms: float = BATCH_WINDOW_MS
    max_batch_size: int = MAX_BATCH_SIZE
    threads: int | None = None  # torch's CPU threads in each worker process (None: torch's choice)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


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

    def __init__(self, recognizer: Recognizer, window_s: float, max_size: int) -> None:
        self.recognizer = recognizer
        self.window_s = window_s
        self.max_size = max_size
        self.requests = 0
        self.batches = 0
        self._queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future]] = asyncio.Queue()
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
        self._queue.put_nowait((image, future))
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
    return MicroBatcher(recognizer, settings.batch_window_ms / 1000, settings.max_batch_size)


class ImageBase64Body(BaseModel):
    image_base64: str = Field(description="an encoded PNG, JPEG, BMP, GIF or WebP file (a data: URL is accepted)")


class PixelsBody(BaseModel):
    pixels: list[list[float]] = Field(description="28 rows of 28 values: 0-255, or 0-1; white ink on black")


class PredictionResponse(BaseModel):
    digit: int
    confidence: float = Field(description="calibrated probability of `digit`")
    unsure: bool = Field(description="confidence below the model's threshold: better checked by a person")
    probabilities: list[float] = Field(description="one per digit 0-9")
    input_28x28_png_base64: str = Field(description="the 28x28 image the model saw, as a base64 PNG")


class DigitBox(BaseModel):
    digit: int
    confidence: float = Field(description="calibrated probability of `digit`")
    box: list[int] = Field(description="x, y, width, height in the uploaded image's pixels")
    unsure: bool


class SeparatorBox(BaseModel):
    kind: str = Field(description="dot, comma, dash or mark: never read as a digit")
    box: list[int]


class ReadResponse(BaseModel):
    text: str = Field(description='the numbers read, one line of writing per line ("\\n"), left to right')
    lines: list[str]
    digits: list[DigitBox]
    separators: list[SeparatorBox]
    unsure: bool = Field(description="some digit is unsure, or nothing was read")
    problem: str | None = Field(description="why nothing was read (e.g. a blank image)")


class ModelInfo(BaseModel):
    name: str
    architecture: str
    backend: str
    image_size: int
    num_classes: int
    normalization: str
    temperature: float
    unsure_threshold: float
    test_time_views: int = Field(description="views of each image whose probabilities are averaged (1: none)")
    test_accuracy: float | None


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class HealthResponse(BaseModel):
    status: str
    requests: int = Field(description="predictions asked of the model since start")
    batches: int = Field(description="forward passes they took")


def bad_input(message: str) -> HTTPException:
    return HTTPException(status_code=422, detail=message)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `max_bytes`."""
    too_large = HTTPException(status_code=413, detail=f"request body over the {max_bytes / 2**20:.3g} MB limit")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)


async def read_upload(request: Request, body: bytes) -> bytes:
    """The bytes of the multipart form field `file`."""

    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=MULTIPART_MAX_FIELDS)
    except StarletteHTTPException as exc:  # Starlette's 400 for a malformed body
        raise bad_input(f"malformed multipart body: {exc.detail}") from None
    try:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise bad_input("expected an image file in the multipart form field 'file'")
        if (upload.content_type or "").lower() not in UPLOAD_TYPES:
            raise HTTPException(status_code=415, detail=f"unsupported file type {upload.content_type!r}; send an image")
        return await upload.read()
    finally:
        await form.close()  # uploads over 1 MB were spooled to a temporary file


def read_json(body: bytes) -> bytes | np.ndarray:
    """`{"image_base64": ...}` -> encoded image bytes; `{"pixels": [[...]]}` -> a float array."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        raise bad_input("the body is not valid JSON") from None
    if isinstance(payload, dict) and "image_base64" in payload:
        return decode_base64(validated(ImageBase64Body, payload).image_base64)
    if isinstance(payload, dict) and "pixels" in payload:
        return pixels_array(validated(PixelsBody, payload).pixels)
    raise bad_input('expected a JSON object with "image_base64" or "pixels"')


def validated(model: type[BaseModel], payload: dict) -> BaseModel:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"][:2])
        raise bad_input(f"{where}: {error['msg']}") from None


def decode_base64(text: str) -> bytes:
    if text.startswith("data:") and "," in text:  # a data URL, as a browser's canvas gives it
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad_input("image_base64 is not valid base64") from None


def pixels_array(rows: list[list[float]]) -> np.ndarray:
    try:
        return np.asarray(rows, dtype=np.float64)
    except ValueError:
        raise bad_input("pixels must be a rectangular array of numbers (28 rows of 28)") from None


async def read_digit_input(request: Request, max_bytes: int) -> bytes | np.ndarray:
    """The request's image: encoded file bytes (multipart or base64 JSON) or a pixel array (JSON)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in ("multipart/form-data", "application/json"):
        shown = media_type or "no content type"
        raise HTTPException(status_code=415, detail=f"send multipart/form-data or application/json, not {shown}")
    body = await read_body(request, max_bytes)
    if media_type == "application/json":
        return await asyncio.to_thread(read_json, body)  # megabytes of JSON would stall every other request
    return await read_upload(request, body)


def open_image(data: bytes) -> Image.Image:
    """Encoded bytes -> a decoded image; the pixel count is checked from the header, before decoding."""
    try:
        image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError:
        raise DigitrecError(f"image over the {MAX_IMAGE_PIXELS:,}-pixel limit") from None
    except (OSError, ValueError):
        raise DigitrecError(f"not a readable image (expected one of {', '.join(IMAGE_FORMATS)})") from None
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise DigitrecError(f"image of {width}x{height} pixels is over the {MAX_IMAGE_PIXELS:,}-pixel limit")
    try:
        image.load()
    except Exception as exc:  # Pillow's decoders raise many types on damaged data; all mean "unreadable"
        raise DigitrecError(f"damaged {image.format} image ({type(exc).__name__})") from None
    return image


def model_images(recognizer: Recognizer, source: bytes | np.ndarray) -> np.ndarray:
    """What the model will see: uint8 `(1, 28, 28)`. Runs in a worker thread (decoding can take a while)."""
    if isinstance(source, bytes):
        return recognizer.to_images(open_image(source))
    if source.ndim != 2:
        raise DigitrecError(f"pixels must be one 28x28 image, got shape {source.shape}")
    return recognizer.to_images(source)


async def in_worker_thread(function, *args):
    """Blocking work (decoding, the model) off the event loop; bad input found there becomes a 422."""
    try:
        return await asyncio.to_thread(function, *args)
    except DigitrecError as exc:
        raise bad_input(str(exc)) from None


def png_base64(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@asynccontextmanager
async def time_limit(seconds: float):
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise HTTPException(status_code=503, detail=f"no answer within {seconds:g} s; try again later") from None


api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


bearer_token = HTTPBearer(auto_error=False)


def require_api_key(
    request: Request,
    header_key: Annotated[str | None, Security(api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_token)],
) -> None:
    expected = request.app.state.settings.api_key
    if not expected:
        return
    given = header_key or (bearer.credentials if bearer else "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(status_code=401, detail="missing or wrong API key", headers={"WWW-Authenticate": "Bearer"})


PREDICT_BODY_DOCS = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "application/json": {
                "schema": {"oneOf": [ImageBase64Body.model_json_schema(), PixelsBody.model_json_schema()]}
            },
        },
    }
}


ERROR_DOCS = {
    401: {"description": "missing or wrong API key (when the server has one)"},
    413: {"description": "request body over the upload limit"},
    415: {"description": "neither multipart/form-data nor JSON, or a file that is not an image"},
    422: {"description": "undecodable image, image over the pixel limit, or pixels of the wrong shape"},
    503: {"description": "no answer within the per-request time limit"},
}


v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])


@v1.post("/predict", responses=ERROR_DOCS, openapi_extra=PREDICT_BODY_DOCS)
async def predict(request: Request) -> PredictionResponse:
    """One digit from an uploaded file (form field `file`), `{"image_base64": ...}` or `{"pixels": 28x28}`."""
    state = request.app.state
    async with time_limit(state.settings.request_timeout_s):
        source = await read_digit_input(request, state.settings.max_upload_bytes)
        images = await in_worker_thread(model_images, state.recognizer, source)
        prediction = await state.predictor.predict(images[0])
    return PredictionResponse(**prediction.to_json(), input_28x28_png_base64=png_base64(images[0]))


READ_BODY_DOCS = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": PREDICT_BODY_DOCS["requestBody"]["content"]["multipart/form-data"],
            "application/json": {"schema": ImageBase64Body.model_json_schema()},
        },
    }
}


def read_image(recognizer: Recognizer, source: bytes | np.ndarray):
    """A request's image -> its reading; runs in a worker thread."""
    if not isinstance(source, bytes):
        raise DigitrecError('read needs an image: send a file or {"image_base64": ...}, not pixels')
    return recognizer.read(open_image(source))


@v1.post("/read", responses=ERROR_DOCS, openapi_extra=READ_BODY_DOCS)
async def read(request: Request) -> ReadResponse:
    """Every digit in a photo, scan or drawing of one or more numbers: the text, line by line, with each digit's
    box and confidence. An image without digits gives empty text and a `problem`, not a guess."""
    state = request.app.state
    async with time_limit(state.settings.request_timeout_s):
        source = await read_digit_input(request, state.settings.max_upload_bytes)
        reading = await in_worker_thread(read_image, state.recognizer, source)
    return ReadResponse(**reading.to_json())


@v1.get("/models")
async def models(request: Request) -> ModelsResponse:
    """The model this server answers with."""
    return ModelsResponse(models=[model_info(request.app.state.settings.model, request.app.state.recognizer)])


def model_info(name: str, recognizer: Recognizer) -> ModelInfo:
    metadata = recognizer.metadata
    return ModelInfo(
        name=Path(name).name,
        architecture=metadata["config"]["model"],
        backend=recognizer.backend,
        image_size=recognizer.image_size,
        num_classes=metadata["num_classes"],
        normalization=recognizer.normalization,
        temperature=recognizer.temperature,
        unsure_threshold=recognizer.unsure_threshold,
        test_time_views=max(1, len(recognizer.views)),
        test_accuracy=metadata.get("summary", {}).get("test_accuracy"),
    )


open_routes = APIRouter()


@open_routes.get("/healthz")
async def healthz(request: Request) -> HealthResponse:
    """Liveness: answers once the model is loaded. Never needs the API key."""
    predictor = request.app.state.predictor
    return HealthResponse(status="ok", requests=predictor.requests, batches=predictor.batches)


@open_routes.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", headers=PAGE_HEADERS)


class AccessLogMiddleware:
    """One JSON line per request on the `digitrec.access` logger."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_and_note_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            access_log.info(access_record(scope, status, time.perf_counter() - started))


def access_record(scope, status: int, seconds: float) -> str:
    client = scope.get("client") or ("", 0)
    return json.dumps(
        {"time": round(time.time(), 3), "client": client[0], "method": scope["method"], "path": scope["path"],
         "status": status, "duration_ms": round(seconds * 1000, 2)}
    )  # fmt: skip


@asynccontextmanager
async def lifespan(app: FastAPI):
    import torch

    from digitrec.inference.recognizer import Recognizer

    settings: ServerSettings = app.state.settings
    if settings.threads:
        torch.set_num_threads(settings.threads)
    app.state.recognizer = await asyncio.to_thread(Recognizer.load, settings.model, settings.backend, settings.tta)
    app.state.predictor = make_predictor(app.state.recognizer, settings)
    await app.state.predictor.start()
    try:
        yield
    finally:
        await app.state.predictor.stop()


def create_app(model: str | os.PathLike = "default", **options) -> FastAPI:
    """The app; `options` are ServerSettings fields. The model is loaded when the app starts, not here."""
    app = FastAPIOffline(
        title="digitrec", version=__version__, lifespan=lifespan, description="Handwritten digit recognition."
    )
    app.state.settings = ServerSettings(model=os.fspath(model), **options)
    app.include_router(v1)
    app.include_router(open_routes)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    app.add_middleware(AccessLogMiddleware)
    return app


def create_app_from_env() -> FastAPI:
    """The factory each `--workers N` process calls: settings arrive as JSON in $DIGITREC_SERVE_SETTINGS."""
    return create_app(**json.loads(os.environ[SETTINGS_ENV]))


def log_config() -> dict:
    """Uvicorn's logging, plus the JSON access lines on stdout (uvicorn's own access log is off)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["json_line"] = {"format": "%(message)s"}
    config["handlers"]["json_access"] = {
        "class": "logging.StreamHandler", "formatter": "json_line", "stream": "ext://sys.stdout"
    }  # fmt: skip
    config["loggers"][access_log.name] = {"handlers": ["json_access"], "level": "INFO", "propagate": False}
    return config


def run_server(settings: ServerSettings, host: str, port: int, workers: int = 1) -> None:
    """Serve until interrupted."""
    import uvicorn

    options = {"host": host, "port": port, "log_config": log_config(), "access_log": False}
    if workers == 1:
        uvicorn.run(create_app(**asdict(settings)), **options)
        return
    os.environ[SETTINGS_ENV] = json.dumps(asdict(settings))
    uvicorn.run("digitrec.serve.app:create_app_from_env", factory=True, workers=workers, **options)
