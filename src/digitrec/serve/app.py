"""The HTTP API and the drawing page: routes over Recognizer, the app's lifespan, uvicorn."""

from __future__ import annotations

import asyncio
import copy
import hmac
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Security
from fastapi.responses import FileResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from digitrec import __version__
from digitrec.errors import DigitrecError
from digitrec.serve.batching import ServerBusy, make_predictor
from digitrec.serve.inputs import (
    bad_input,
    busy,
    correction_png,
    in_worker_thread,
    model_images,
    png_base64,
    read_correction_input,
    read_digit_input,
    read_image,
    time_limit,
)
from digitrec.serve.schemas import (
    CORRECTION_BODY_DOCS,
    CORRECTION_ERROR_DOCS,
    ERROR_DOCS,
    PREDICT_BODY_DOCS,
    READ_BODY_DOCS,
    CorrectionResponse,
    HealthResponse,
    ModelInfo,
    ModelsResponse,
    PredictionResponse,
    ReadResponse,
)
from digitrec.serve.settings import (
    KEEP_ALIVE_TIMEOUT_S,
    MAX_CONNECTIONS,
    MAX_HEADER_BYTES,
    SETTINGS_ENV,
    ServerSettings,
)

if TYPE_CHECKING:
    from digitrec.inference.recognizer import Recognizer


WEB_DIR = Path(__file__).parent / "web"
PAGE_HEADERS = {  # the page loads only its own files: no CDN, works offline
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'",
}
SECURITY_HEADERS = [  # on every response, errors and the API docs included
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


access_log = logging.getLogger("digitrec.access")


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


v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])


@v1.post("/predict", responses=ERROR_DOCS, openapi_extra=PREDICT_BODY_DOCS)
async def predict(request: Request) -> PredictionResponse:
    """One digit from an uploaded file (form field `file`), `{"image_base64": ...}` or `{"pixels": 28x28}`."""
    state = request.app.state
    async with time_limit(state.settings.request_timeout_s):
        source = await read_digit_input(request, state.settings.max_upload_bytes)
        images = await in_worker_thread(model_images, state.recognizer, source)
        try:
            prediction = await state.predictor.predict(images[0])
        except ServerBusy as exc:
            raise busy(str(exc)) from None
    return PredictionResponse(**prediction.to_json(), input_28x28_png_base64=png_base64(images[0]))


@v1.post("/read", responses=ERROR_DOCS, openapi_extra=READ_BODY_DOCS)
async def read(request: Request) -> ReadResponse:
    """Every digit in a photo, scan or drawing of one or more numbers: the text, line by line, with each digit's
    box and confidence. An image without digits gives empty text and a `problem`, not a guess."""
    state = request.app.state
    settings = state.settings
    if state.read_slots.locked():
        raise busy(f"{settings.read_workers + settings.max_waiting_reads} readings under way already; retry later")
    async with state.read_slots, time_limit(settings.request_timeout_s):
        deadline = time.monotonic() + settings.request_timeout_s  # the reading thread stops itself past it
        source = await read_digit_input(request, settings.max_upload_bytes)
        reading = await in_worker_thread(read_image, state.recognizer, source, deadline, executor=state.read_pool)
    return ReadResponse(**reading.to_json())


@v1.post("/corrections", status_code=201, responses=CORRECTION_ERROR_DOCS, openapi_extra=CORRECTION_BODY_DOCS)
async def corrections(request: Request) -> CorrectionResponse:
    """Store a correction: an image (form field `file`, `{"image_base64": ...}` or `{"pixels": 28x28}`) and its
    right answer (`label`: a digit, or the digits of a number), for `digitrec adapt --from DB`. Only when the
    server was started with `--corrections DB` (404 otherwise)."""
    from digitrec.corrections import add_correction, check_label

    state = request.app.state
    database = state.settings.corrections_db
    if database is None:
        raise HTTPException(status_code=404, detail="this server keeps no corrections (start it with --corrections DB)")
    async with time_limit(state.settings.request_timeout_s):
        source, label = await read_correction_input(request, state.settings.max_upload_bytes)
        try:
            label = check_label(label)
        except DigitrecError as exc:
            raise bad_input(str(exc)) from None
        image_png, kind = await in_worker_thread(correction_png, state.recognizer, source)
        number = await in_worker_thread(add_correction, database, image_png, label, kind)
    return CorrectionResponse(id=number, label=label)


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


class SecurityHeadersMiddleware:
    """SECURITY_HEADERS on every HTTP response."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


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
    from digitrec.inference.recognizer import Recognizer

    settings: ServerSettings = app.state.settings
    app.state.recognizer = await asyncio.to_thread(
        Recognizer.load, settings.model, settings.backend, settings.tta, threads=settings.threads or 0
    )
    app.state.predictor = make_predictor(app.state.recognizer, settings)
    # reading numbers runs in its own threads, so a slow reading never holds up /v1/predict's decoding
    app.state.read_pool = ThreadPoolExecutor(max_workers=settings.read_workers, thread_name_prefix="digitrec-read")
    app.state.read_slots = asyncio.Semaphore(settings.read_workers + settings.max_waiting_reads)
    await app.state.predictor.start()
    try:
        yield
    finally:
        await app.state.predictor.stop()
        app.state.read_pool.shutdown(wait=False, cancel_futures=True)


def create_app(model: str | os.PathLike = "default", **options) -> FastAPI:
    """The app; `options` are ServerSettings fields. The model is loaded when the app starts, not here."""
    app = FastAPIOffline(
        title="digitrec", version=__version__, lifespan=lifespan, description="Handwritten digit recognition."
    )
    app.state.settings = ServerSettings(model=os.fspath(model), **options)
    app.openapi = published_openapi(app)
    app.include_router(v1)
    app.include_router(open_routes)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(AccessLogMiddleware)
    return app


def published_openapi(app: FastAPI):
    """app.openapi, describing this server: without an API key, /v1/* needs none, so no security is listed."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = generate()
            if not app.state.settings.api_key:
                schema.get("components", {}).pop("securitySchemes", None)
                for operations in schema["paths"].values():
                    for operation in operations.values():
                        operation.pop("security", None)
                        operation["responses"].pop("401", None)
        return app.openapi_schema

    return openapi


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


def server_options(host: str, port: int) -> dict:
    """uvicorn.run's options: our logging, and bounds on connections, idle time and headers."""
    return {
        "host": host, "port": port, "log_config": log_config(), "access_log": False,
        "http": "digitrec.serve.connections:HeaderTimeoutProtocol", "timeout_keep_alive": KEEP_ALIVE_TIMEOUT_S,
        "limit_concurrency": MAX_CONNECTIONS, "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
    }  # fmt: skip


def run_server(settings: ServerSettings, host: str, port: int, workers: int = 1) -> None:
    """Serve until interrupted."""
    import uvicorn

    options = server_options(host, port)
    if workers == 1:
        uvicorn.run(create_app(**asdict(settings)), **options)
        return
    os.environ[SETTINGS_ENV] = json.dumps(asdict(settings))
    uvicorn.run("digitrec.serve.app:create_app_from_env", factory=True, workers=workers, **options)
