"""The service under hostile load (issue #21): slow readings never starve predictions, full queues answer 503 with
Retry-After, slow or idle connections are closed, every response carries the security headers. A real uvicorn
server on 127.0.0.1 with the shipped model; every load is bounded in count and time."""

from __future__ import annotations

import asyncio
import io
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx2 as httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from digitrec import Recognizer
from digitrec.serve import connections
from digitrec.serve.app import SECURITY_HEADERS, create_app, server_options
from digitrec.serve.batching import MicroBatcher, ServerBusy
from digitrec.serve.schemas import UPLOAD_CONTENT_TYPES

READS_AT_ONCE = 6  # the audit's six costly readings
PREDICT_P99_LIMIT_S = 1.0
LOAD_DURATION_S = 12.0  # predictions are timed for this long (or until every reading has answered)


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def costliest_reading_png(mnist_test) -> bytes:
    """Two lines of 28 MNIST digits, dark on white: about 70 digit heights of line, just under the reader's limit
    (reading/reader.py MAX_LINE_LENGTH_H), so each reading costs about the most one is allowed to."""
    rows = [np.pad(np.hstack(list(mnist_test.images[r * 28 : (r + 1) * 28])), ((10, 10), (0, 0))) for r in range(2)]
    return png_bytes(np.pad(255 - np.vstack(rows), 20, constant_values=255))


@pytest.fixture(scope="module")
def live_server():
    """The shipped model behind a real uvicorn server (our options: timeouts, limits), in a thread."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    options = server_options("127.0.0.1", sock.getsockname()[1])
    options["log_level"] = "warning"
    server = uvicorn.Server(uvicorn.Config(create_app("default"), **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for _ in range(600):
        if server.started:
            break
        time.sleep(0.05)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


def test_costly_readings_never_starve_predictions(live_server, mnist_test):
    png = costliest_reading_png(mnist_test)
    pixels = {"pixels": mnist_test.images[0].tolist()}
    with httpx.Client(base_url=live_server, timeout=30) as client:
        assert client.post("/v1/predict", json=pixels).status_code == 200  # warm

        def read_once(_) -> int:
            with httpx.Client(base_url=live_server, timeout=30) as reader:
                return reader.post("/v1/read", files={"file": ("n.png", png, "image/png")}).status_code

        with ThreadPoolExecutor(READS_AT_ONCE) as pool:
            reads = [pool.submit(read_once, i) for i in range(READS_AT_ONCE)]
            time.sleep(0.3)  # the readings are under way
            latencies, started = [], time.monotonic()
            while time.monotonic() - started < LOAD_DURATION_S and not all(r.done() for r in reads):
                began = time.perf_counter()
                response = client.post("/v1/predict", json=pixels)
                latencies.append(time.perf_counter() - began)
                assert response.status_code == 200, response.text
            statuses = [r.result() for r in reads]
    assert len(latencies) >= 20
    p99 = float(np.percentile(latencies, 99))
    assert p99 < PREDICT_P99_LIMIT_S, f"predict p99 {p99:.3f} s while reading"
    assert set(statuses) <= {200, 503} and 503 in statuses and 200 in statuses  # extra readings refused at once


def test_full_read_slots_answer_503_with_retry_after_at_once(live_server, mnist_test):
    png = costliest_reading_png(mnist_test)

    def read_once(_) -> httpx.Response:
        with httpx.Client(base_url=live_server, timeout=30) as reader:
            return reader.post("/v1/read", files={"file": ("n.png", png, "image/png")})

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(read_once, range(4)))
    refused = [r for r in responses if r.status_code == 503]
    assert refused and all(r.headers["retry-after"] == "1" for r in refused)
    assert all(r.elapsed.total_seconds() < 2 for r in refused if "under way" in r.json()["detail"])


def test_connection_that_never_finishes_its_headers_is_closed(live_server, monkeypatch):
    monkeypatch.setattr(connections, "HEADER_TIMEOUT_S", 0.5)
    host, port = live_server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as slow:
        slow.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        began = time.monotonic()
        assert slow.recv(1024) == b""  # closed by the server
        assert time.monotonic() - began < 3


def test_batcher_queue_is_bounded():
    recognizer = Recognizer.load(tta=False)
    batcher = MicroBatcher(recognizer, window_s=0, max_size=4, max_queued=2)  # not started: nothing drains it

    async def overfill() -> None:
        waiting = [asyncio.ensure_future(batcher.predict(np.zeros((28, 28), np.uint8))) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(ServerBusy, match="2 predictions waiting"):
            await batcher.predict(np.zeros((28, 28), np.uint8))
        for future in waiting:
            future.cancel()

    asyncio.run(overfill())


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app("default", tta=False)) as client:
        yield client


@pytest.mark.parametrize("path", ["/healthz", "/v1/models", "/docs", "/openapi.json", "/no-such-page"])
def test_every_response_has_the_security_headers(client, path):
    response = client.get(path)
    for name, value in SECURITY_HEADERS:
        assert response.headers[name.decode()] == value.decode()


def test_openapi_documents_upload_types_401_and_503(client):
    schema = client.get("/openapi.json").json()
    keyed = create_app("default", api_key="k").openapi()  # 401 is listed where the server has a key
    for path in ("/v1/predict", "/v1/read"):
        operation = schema["paths"][path]["post"]
        multipart = operation["requestBody"]["content"]["multipart/form-data"]
        assert multipart["encoding"]["file"]["contentType"] == UPLOAD_CONTENT_TYPES
        assert {"413", "415", "422", "503"} <= set(operation["responses"])
        assert {"401", "413", "415", "422", "503"} <= set(keyed["paths"][path]["post"]["responses"])


@pytest.mark.parametrize("value", ["7", True, None])
def test_pixels_that_are_not_numbers_are_422(client, value):
    rows = [[0] * 28 for _ in range(28)]
    rows[3][4] = value
    response = client.post("/v1/predict", json={"pixels": rows})
    assert response.status_code == 422


def test_blank_pixels_are_answered_unsure(client):
    response = client.post("/v1/predict", json={"pixels": [[0] * 28] * 28})
    assert response.status_code == 200 and response.json()["unsure"] is True
