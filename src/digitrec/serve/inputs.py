"""A request's image, validated at the edge: multipart or JSON bodies, size limits, decoding."""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import numpy as np
from fastapi import HTTPException, Request
from PIL import Image
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from digitrec.errors import DigitrecError
from digitrec.images.files import decode_picture
from digitrec.serve.schemas import ImageBase64Body, PixelsBody
from digitrec.serve.settings import MULTIPART_MAX_FIELDS, RETRY_AFTER_S, UPLOAD_TYPES

if TYPE_CHECKING:
    from digitrec.inference.recognizer import Recognizer


UPLOAD_NAME = "upload"  # how an uploaded image is named in error messages


def bad_input(message: str) -> HTTPException:
    return HTTPException(status_code=422, detail=message)


def busy(message: str) -> HTTPException:
    """503 with Retry-After: the server is saturated, the request was not started."""
    return HTTPException(status_code=503, detail=message, headers={"Retry-After": str(RETRY_AFTER_S)})


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
    return (await read_upload_form(request, body))[0]


async def read_upload_form(request: Request, body: bytes, text_fields: tuple[str, ...] = ()) -> tuple[bytes, dict]:
    """The bytes of the multipart form field `file`, and the form's `text_fields` (any other field is refused)."""

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
        unexpected = sorted(set(form.keys()) - {"file", *text_fields})
        if unexpected:
            expected = ", ".join(repr(name) for name in ("file", *text_fields))
            raise bad_input(f"unexpected form field {unexpected[0][:40]!r}; this form takes {expected}")
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        return await upload.read(), fields
    finally:
        await form.close()  # uploads over 1 MB were spooled to a temporary file


def parse_json(body: bytes):
    try:
        return json.loads(body)
    # ValueError: also a number of over 4,300 digits (Python's int limit); RecursionError: absurdly deep nesting
    except (ValueError, RecursionError):
        raise bad_input("the body is not valid JSON") from None


def read_json(body: bytes) -> bytes | np.ndarray:
    """`{"image_base64": ...}` -> encoded image bytes; `{"pixels": [[...]]}` -> a float array."""
    return image_from_json(parse_json(body))


def image_from_json(payload) -> bytes | np.ndarray:
    if isinstance(payload, dict) and "image_base64" in payload and "pixels" in payload:
        raise bad_input('send one of "image_base64" or "pixels", not both')
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
    except OverflowError:  # an integer beyond float64's range, such as 10**400
        raise bad_input("pixels must be finite numbers; one is too large") from None


def body_media_type(request: Request) -> str:
    """multipart/form-data or application/json, the two bodies the API reads; anything else is a 415."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in ("multipart/form-data", "application/json"):
        shown = media_type or "no content type"
        raise HTTPException(status_code=415, detail=f"send multipart/form-data or application/json, not {shown}")
    return media_type


async def read_digit_input(request: Request, max_bytes: int) -> bytes | np.ndarray:
    """The request's image: encoded file bytes (multipart or base64 JSON) or a pixel array (JSON)."""
    media_type = body_media_type(request)
    body = await read_body(request, max_bytes)
    if media_type == "application/json":
        return await asyncio.to_thread(read_json, body)  # megabytes of JSON would stall every other request
    return await read_upload(request, body)


async def read_correction_input(request: Request, max_bytes: int) -> tuple[bytes | np.ndarray, str]:
    """A correction: the image (as `read_digit_input` takes it) and its right answer, the form field or JSON key
    `label`."""
    media_type = body_media_type(request)
    body = await read_body(request, max_bytes)
    if media_type == "multipart/form-data":
        image, fields = await read_upload_form(request, body, text_fields=("label",))
        return image, fields.get("label", "")
    payload = await asyncio.to_thread(parse_json, body)
    source = await asyncio.to_thread(image_from_json, payload)
    label = payload.get("label", "")
    if not isinstance(label, str):
        raise bad_input(f"label must be a string of digits, got {type(label).__name__}")
    return source, label


def correction_png(recognizer: Recognizer, source: bytes | np.ndarray) -> tuple[bytes, str]:
    """(PNG bytes to store, "image" or "pixels"): an upload is checked by decoding it and stored as sent; pixels are
    validated as `predict` validates them and stored as a 28x28 PNG."""
    if isinstance(source, bytes):
        decode_picture(source, UPLOAD_NAME)
        return source, "image"
    image = model_images(recognizer, source)[0]
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue(), "pixels"


def model_images(recognizer: Recognizer, source: bytes | np.ndarray) -> np.ndarray:
    """What the model will see: uint8 `(1, 28, 28)`. Runs in a worker thread (decoding can take a while)."""
    if isinstance(source, bytes):
        return recognizer.to_images(decode_picture(source, UPLOAD_NAME)[0])
    if source.ndim != 2:
        raise DigitrecError(f"pixels must be one 28x28 image, got shape {source.shape}")
    return recognizer.to_images(source)


async def in_worker_thread(function, *args, executor=None):
    """Blocking work (decoding, the model) off the event loop, in `executor` (default: asyncio's own threads); bad
    input found there becomes a 422."""
    try:
        return await asyncio.get_running_loop().run_in_executor(executor, function, *args)
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
        raise busy(f"no answer within {seconds:g} s; try again later") from None


def read_image(recognizer: Recognizer, source: bytes | np.ndarray, deadline: float | None = None):
    """A request's image -> its reading; runs in a reading thread, and stops itself once past `deadline`."""
    if not isinstance(source, bytes):
        raise DigitrecError('read needs an image: send a file or {"image_base64": ...}, not pixels')
    return recognizer.read(decode_picture(source, UPLOAD_NAME)[0], deadline=deadline)
