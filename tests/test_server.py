"""The HTTP service through FastAPI's TestClient, on a real trained checkpoint and real MNIST digits."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from digitrec import Recognizer
from digitrec.cli import EXIT_BAD_INPUT, main
from digitrec.images.files import MAX_IMAGE_PIXELS
from digitrec.serve.app import create_app
from digitrec.serve.batching import MicroBatcher
from tests.conftest import digit_examples

API_KEY = "test-key-123"
SMALL_UPLOAD_MB = 0.01  # about 10 KB: enough for a digit PNG, not for a photo
FUZZ_CASES = 60


def png_bytes(image: np.ndarray, side: int | None = None) -> bytes:
    picture = Image.fromarray(image)
    if side:
        picture = picture.resize((side, side), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming_size(width: int, height: int) -> bytes:
    """A small PNG whose header claims `width` x `height` (8-bit gray), with almost no pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunks = png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(bytes(1000))) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def json_content(payload: object) -> dict:
    """Request arguments sending `payload` (or a raw string) as JSON, NaN included, unchecked by the client."""
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return {"content": text.encode(), "headers": {"content-type": "application/json"}}


def upload(png: bytes, content_type: str = "image/png", name: str = "digit.png") -> dict:
    return {"files": {"file": (name, png, content_type)}}


@pytest.fixture(scope="module")
def client(tiny_checkpoint):
    with TestClient(create_app(tiny_checkpoint)) as client:
        yield client


@pytest.fixture(scope="module")
def recognizer(tiny_checkpoint) -> Recognizer:
    return Recognizer.load(tiny_checkpoint)


@pytest.fixture(scope="module")
def digits(mnist_test) -> tuple[np.ndarray, np.ndarray]:
    return digit_examples(mnist_test, per_class=1)


def assert_same_prediction(answer: dict, expected) -> None:
    assert answer["digit"] == expected.digit and answer["unsure"] == expected.unsure
    assert answer["probabilities"] == pytest.approx(expected.probabilities, abs=1e-5)
    assert answer["confidence"] == pytest.approx(expected.confidence, abs=1e-5)


def decoded_png(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


def test_uploaded_photo_gets_the_recognizers_answer_and_the_28x28_it_saw(client, recognizer, digits):
    images, _ = digits
    photo = png_bytes(255 - images[3], side=140)  # dark ink on white paper, 5x larger
    response = client.post("/v1/predict", **upload(photo))
    assert response.status_code == 200, response.text
    answer = response.json()
    seen = recognizer.to_images(Image.open(io.BytesIO(photo)))[0]
    assert_same_prediction(answer, recognizer.predict(seen))
    assert np.array_equal(decoded_png(answer["input_28x28_png_base64"]), seen)


def test_base64_json_and_data_url_give_the_same_answer_as_the_upload(client, digits):
    images, _ = digits
    photo = png_bytes(255 - images[5], side=84)
    uploaded = client.post("/v1/predict", **upload(photo)).json()
    encoded = base64.b64encode(photo).decode()
    for text in (encoded, f"data:image/png;base64,{encoded}"):
        answer = client.post("/v1/predict", json={"image_base64": text}).json()
        assert answer == uploaded


def test_pixels_json_is_predicted_as_the_28x28_array_it_is(client, recognizer, digits):
    images, labels = digits
    answers = [client.post("/v1/predict", json={"pixels": image.tolist()}).json() for image in images]
    for answer, image in zip(answers, images, strict=True):
        assert_same_prediction(answer, recognizer.predict(image))
        assert np.array_equal(decoded_png(answer["input_28x28_png_base64"]), image)
    assert sum(a["digit"] == label for a, label in zip(answers, labels, strict=True)) >= 8  # a ~95% model


def test_models_lists_the_loaded_checkpoint(client):
    response = client.get("/v1/models")
    assert response.status_code == 200
    (model,) = response.json()["models"]
    assert model["architecture"] == "digitnet-small" and model["backend"] == "onnx"
    assert model["image_size"] == 28 and model["num_classes"] == 10 and 0.9 < model["test_accuracy"] <= 1


def test_healthz_counts_requests_and_forward_passes(client):
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["requests"] >= health["batches"] >= 0


def test_page_and_its_files_are_served_offline(client):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("app.js", "style.css"):
        assert client.get(f"/static/{asset}").status_code == 200
        assert f"/static/{asset}" in page.text
    assert "http" not in page.text.replace('href="/docs"', "")  # nothing fetched from elsewhere


def test_openapi_docs_are_served_without_a_cdn(client):
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert {"/v1/predict", "/v1/models", "/healthz"} <= set(schema["paths"])


@pytest.mark.parametrize(
    ("request_kwargs", "status", "message"),
    [
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "not text/plain"),
        ({"content": b"hello"}, 415, "not no content type"),
        (upload(b"hello", "text/plain", "notes.txt"), 415, "unsupported file type 'text/plain'"),
        (upload(b"hello"), 422, "not a readable image"),
        (upload(b""), 422, "not a readable image"),
        (upload(png_claiming_size(8000, 8000)), 422, f"8000x8000 pixels is over the {MAX_IMAGE_PIXELS:,}-pixel limit"),
        (upload(png_claiming_size(20_000, 20_000)), 422, "-pixel limit"),
        ({"files": {"photo": ("digit.png", b"x", "image/png")}}, 422, "form field 'file'"),
        ({"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data"}}, 422, "malformed multipart"),
        (json_content("{"), 422, "not valid JSON"),
        ({"json": [1, 2]}, 422, '"image_base64" or "pixels"'),
        ({"json": {"image_base64": "###"}}, 422, "not valid base64"),
        ({"json": {"image_base64": 7}}, 422, "image_base64: Input should be a valid string"),
        ({"json": {"image_base64": base64.b64encode(b"GIF89a...").decode()}}, 422, "not a readable image"),
        ({"json": {"pixels": [[0] * 28] * 27}}, 422, "expected a 28x28 image"),
        ({"json": {"pixels": [[0] * 28] * 27 + [[0] * 5]}}, 422, "rectangular array"),
        ({"json": {"pixels": [["x"] * 28] * 28}}, 422, "pixels.0: Input should be a valid"),
        ({"json": {"pixels": "zeros"}}, 422, "pixels: Input should be a valid list"),
        ({"json": {"pixels": [[[0] * 28] * 28]}}, 422, "pixels.0"),
        (json_content('{"pixels": ' + "[" * 100_000), 422, "not valid JSON"),
        (json_content({"pixels": [[float("nan")] * 28] * 28}), 422, "non-finite"),
    ],
)
def test_bad_requests_get_a_4xx_with_a_one_line_message(client, request_kwargs, status, message):
    response = client.post("/v1/predict", **request_kwargs)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert message in detail and "\n" not in detail


def test_truncated_image_is_422(client, digits):
    photo = png_bytes(255 - digits[0][0], side=200)
    response = client.post("/v1/predict", **upload(photo[: len(photo) // 2]))
    assert response.status_code == 422 and "damaged PNG image" in response.json()["detail"]


def test_body_over_the_upload_limit_is_413_declared_or_streamed(tiny_checkpoint, digits):
    too_big = png_bytes(np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8))  # ~40 KB of noise
    with TestClient(create_app(tiny_checkpoint, max_upload_mb=SMALL_UPLOAD_MB)) as client:
        assert client.post("/v1/predict", **upload(png_bytes(digits[0][0]))).status_code == 200
        declared = client.post("/v1/predict", **upload(too_big))
        streamed = client.post(
            "/v1/predict", content=iter([b'{"image_base64": "', b"A" * 20_000, b'"}']),
            headers={"content-type": "application/json"},
        )  # fmt: skip
    for response in (declared, streamed):
        assert response.status_code == 413 and "0.01 MB limit" in response.json()["detail"]


def test_request_over_the_time_limit_is_503(tiny_checkpoint, digits):
    with TestClient(create_app(tiny_checkpoint, request_timeout_s=1e-9)) as client:
        response = client.post("/v1/predict", json={"pixels": digits[0][0].tolist()})
        assert response.status_code == 503 and "no answer within" in response.json()["detail"]
        assert client.get("/healthz").status_code == 200


def test_api_key_guards_v1_but_not_the_page_or_healthz(tiny_checkpoint, digits):
    pixels = {"json": {"pixels": digits[0][0].tolist()}}
    with TestClient(create_app(tiny_checkpoint, api_key=API_KEY)) as client:
        assert client.post("/v1/predict", **pixels).status_code == 401
        assert client.get("/v1/models", headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.post("/v1/predict", headers={"X-API-Key": API_KEY}, **pixels).status_code == 200
        assert client.get("/v1/models", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
        assert client.get("/").status_code == 200 and client.get("/healthz").status_code == 200


def test_no_mangled_image_makes_a_5xx_and_the_server_keeps_answering(client, digits):
    rng = np.random.default_rng(7)
    photo = png_bytes(255 - digits[0][0], side=56)
    statuses = set()
    for _ in range(FUZZ_CASES):
        mangled = bytearray(photo)
        for position in rng.integers(0, len(mangled), size=int(rng.integers(1, 8))):
            mangled[position] = int(rng.integers(0, 256))
        cut = int(rng.integers(len(mangled) // 2, len(mangled) + 1))
        statuses.add(client.post("/v1/predict", **upload(bytes(mangled[:cut]))).status_code)
    assert statuses <= {200, 422}
    assert client.post("/v1/predict", **upload(photo)).status_code == 200


def test_access_log_is_one_json_line_per_request(client, caplog):
    with caplog.at_level(logging.INFO, logger="digitrec.access"):
        client.get("/healthz")
        client.post("/v1/predict", content=b"x", headers={"content-type": "text/plain"})
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "digitrec.access"]
    assert [(r["method"], r["path"], r["status"]) for r in records] == [
        ("GET", "/healthz", 200),
        ("POST", "/v1/predict", 415),
    ]
    assert all(r["duration_ms"] >= 0 for r in records)


def test_concurrent_predictions_share_forward_passes_and_keep_their_answers(recognizer, mnist_test):
    images = mnist_test.images[:40]
    expected = recognizer.predict(images)

    async def predict_all() -> tuple[list, int]:
        batcher = MicroBatcher(recognizer, window_s=0.005, max_size=16, max_queued=64)
        await batcher.start()
        try:
            answers = await asyncio.gather(*(batcher.predict(image) for image in images))
        finally:
            await batcher.stop()
        return answers, batcher.batches

    answers, batches = asyncio.run(predict_all())
    assert batches == 3  # 40 waiting images, 16 per pass
    for answer, reference in zip(answers, expected, strict=True):
        assert answer.digit == reference.digit
        assert answer.probabilities == pytest.approx(reference.probabilities, abs=1e-5)


def test_unbatched_server_gives_the_same_answers(tiny_checkpoint, client, digits):
    pixels = {"json": {"pixels": digits[0][4].tolist()}}
    with TestClient(create_app(tiny_checkpoint, batching=False)) as direct:
        answer = direct.post("/v1/predict", **pixels).json()
    batched = client.post("/v1/predict", **pixels).json()
    assert answer["digit"] == batched["digit"]
    assert answer["probabilities"] == pytest.approx(batched["probabilities"], abs=1e-5)


def test_importing_the_server_loads_no_model_and_no_torch():
    code = "import sys, digitrec.serve.app; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_serve_with_a_missing_model_is_a_one_line_error(tmp_path, capsys):
    assert main(["serve", "--model", str(tmp_path / "missing.safetensors")]) == EXIT_BAD_INPUT
    assert "no such checkpoint file" in capsys.readouterr().err


def test_corrections_are_stored_only_when_the_server_keeps_them(tiny_checkpoint, mnist_test, tmp_path, client):
    from digitrec.corrections import read_corrections

    pixels = mnist_test.images[0].tolist()
    assert client.post("/v1/corrections", json={"pixels": pixels, "label": "7"}).status_code == 404
    database = tmp_path / "corrections.db"
    with TestClient(create_app(tiny_checkpoint, corrections_db=str(database))) as keeping:
        stored = keeping.post("/v1/corrections", json={"pixels": pixels, "label": "7"})
        assert stored.status_code == 201 and stored.json() == {"id": 1, "label": "7"}
        buffer = io.BytesIO()
        Image.fromarray(255 - mnist_test.images[1]).resize((112, 112)).save(buffer, format="PNG")
        upload = {"file": ("two.png", buffer.getvalue(), "image/png")}
        assert keeping.post("/v1/corrections", files=upload, data={"label": "2"}).json()["id"] == 2
        for body, status in (
            ({"pixels": pixels, "label": "seven"}, 422),
            ({"pixels": pixels}, 422),
            ({"pixels": [[1, 2]], "label": "1"}, 422),
        ):
            answer = keeping.post("/v1/corrections", json=body)
            assert answer.status_code == status, (body, answer.text)
    rows = read_corrections(database)
    assert [(c.id, c.label, c.source) for c in rows] == [(1, "7", "pixels"), (2, "2", "image")]
