"""The service against its own OpenAPI (issue #21): schemathesis generates requests for every operation from the
schema the server publishes, schema-valid and not, and checks each answer: no 5xx (a 503 only when deliberate, with
Retry-After), status codes, content types, headers and bodies as documented, schema-valid requests accepted and
invalid ones refused. Uploads in schema-valid requests are real digits (PNG files built from MNIST training images),
so /v1/predict and /v1/read really read them. A real uvicorn server on 127.0.0.1 with the shipped model, an API key
and a corrections database; bounded: a few examples per operation, derandomized, a deadline on each."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time

import httpx2 as httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from digitrec.serve.app import create_app, server_options

API_KEY = "fuzz-key"
EXAMPLES_PER_OPERATION = 12
DEADLINE_MS = 10_000  # one request's time limit is 10 s (settings.REQUEST_TIMEOUT_S)
VARIANTS = ("mnist", "scan", "inverted", "padded")
NUMBERS = ((3, 7, 0), (5, 1), (9, 4, 2, 6))
KEEP_GENERATED = -1  # this draw keeps schemathesis's own file bytes or base64 text (arbitrary: seldom an image)


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def digit_variant(image: np.ndarray, variant: str) -> np.ndarray:
    if variant == "scan":  # dark on white, twice MNIST's size, with a margin
        return np.pad(255 - np.kron(image, np.ones((2, 2), np.uint8)), 12, constant_values=255)
    if variant == "inverted":
        return 255 - image
    if variant == "padded":
        return np.pad(image, 30)
    return image


@pytest.fixture(scope="module")
def digit_uploads(mnist_train) -> dict[str, list[tuple[bytes, str]]]:
    """Real digits as small PNG files and what the service must answer to each: "digits", one digit per file (each
    of 0-9 as MNIST's own 28x28 white-on-black, a dark-on-white scan, inverted, with a wide margin), for every
    operation; "numbers", strips of MNIST digits dark on white, for /v1/read."""
    first = {digit: mnist_train.images[np.flatnonzero(mnist_train.labels == digit)[0]] for digit in range(10)}
    digits = [(png_bytes(digit_variant(first[d], v)), str(d)) for d in range(10) for v in VARIANTS]
    strips = [np.pad(255 - np.hstack([first[d] for d in number]), 16, constant_values=255) for number in NUMBERS]
    numbers = [(png_bytes(strip), "".join(map(str, number))) for strip, number in zip(strips, NUMBERS, strict=True)]
    return {"digits": digits, "numbers": numbers}


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory):
    """The shipped model behind a real uvicorn server with our options, an API key and a corrections database."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    options = server_options("127.0.0.1", sock.getsockname()[1])
    options["log_level"] = "warning"
    database = tmp_path_factory.mktemp("fuzz") / "corrections.db"
    app = create_app("default", api_key=API_KEY, corrections_db=str(database))
    server = uvicorn.Server(uvicorn.Config(app, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(600):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "the server did not start"
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    assert httpx.get(f"{url}/openapi.json").json() == PUBLISHED
    yield url
    server.should_exit = True
    thread.join(timeout=10)


# the schema is the app's own, built without a server (the model loads only when the app starts);
# fuzzed_server checks that the live server publishes the same
PUBLISHED = create_app("default", api_key=API_KEY, corrections_db="corrections.db").openapi()
schema = schemathesis.openapi.from_dict(PUBLISHED)


def with_real_upload(case, uploads: dict[str, list[tuple[bytes, str]]], pick: int) -> str | None:
    """Put a real digit (or, for /v1/read, a real number) where a schema-valid request has an image, and give the
    answer expected; None when the case keeps its generated image, which the schema cannot promise is decodable."""
    body = case.body
    if not isinstance(body, dict) or not ({"file", "image_base64"} & set(body)):
        return ""  # no image to replace: pixels (any 28x28 numbers are a valid input), or no body at all
    if pick == KEEP_GENERATED:
        return None
    choices = uploads["digits"] + (uploads["numbers"] if case.path == "/v1/read" else [])
    upload, answer = choices[pick % len(choices)]
    if "file" in body:
        body["file"] = upload
    else:
        encoded = base64.b64encode(upload).decode("ascii")
        body["image_base64"] = f"data:image/png;base64,{encoded}" if pick % 2 else encoded
    return answer


def deliberate_503_only(ctx, response, case) -> None:
    """No 5xx, except the busy answer (503 with Retry-After) the service gives on purpose."""
    if response.status_code >= 500:
        assert response.status_code == 503 and "retry-after" in response.headers, (
            f"{response.status_code} from {case.method} {case.path}: {response.text[:300]}"
        )


@schema.parametrize()
@schema.given(pick=st.integers(min_value=KEEP_GENERATED, max_value=10 * len(VARIANTS) + len(NUMBERS)))
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=DEADLINE_MS,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms_to_its_openapi(case, pick, digit_uploads, fuzzed_server):
    answer = ""
    if case.meta is not None and case.meta.generation.mode.is_positive:
        answer = with_real_upload(case, digit_uploads, pick)
    excluded = [not_a_server_error] + ([positive_data_acceptance] if answer is None else [])
    response = case.call_and_validate(
        base_url=fuzzed_server,
        headers={"X-API-Key": API_KEY},
        excluded_checks=excluded,
        additional_checks=[deliberate_503_only],
        timeout=30,
    )
    if answer and response.status_code == 200:  # a real digit or number was read: rightly
        if case.path == "/v1/predict":
            assert str(response.json()["digit"]) == answer
        elif case.path == "/v1/read":
            assert response.json()["text"] == answer


# --- what the fuzzing found, each kept as a case -------------------------------------------------------------------

PIXEL_ROW = ",".join(["0"] * 28)


def pixels_json(value: str, extra: str = "") -> str:
    """28x28 zeros with `value` (JSON text) as the first pixel."""
    rows = [f"[{value},{','.join(['0'] * 27)}]"] + [f"[{PIXEL_ROW}]"] * 27
    return f'{{"pixels":[{",".join(rows)}]{extra}}}'


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [  # each a 500 before
        ("/v1/predict", pixels_json("1" + "0" * 400), "one is too large"),  # beyond float64: OverflowError
        ("/v1/predict", pixels_json("1" * 5000), "not valid JSON"),  # past Python's 4,300-digit int limit
        ("/v1/corrections", pixels_json("0", ', "label": ' + "7" * 5000), "not valid JSON"),
    ],
)
def test_numbers_json_cannot_hold_as_floats_are_422(fuzzed_server, path, body, message):
    headers = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
    answer = httpx.post(f"{fuzzed_server}{path}", content=body, headers=headers, timeout=30)
    assert answer.status_code == 422 and message in answer.json()["detail"]


def test_bodies_outside_the_schema_are_refused_as_it_says(fuzzed_server, digit_uploads):
    png, digit = digit_uploads["digits"][0]
    encoded = base64.b64encode(png).decode("ascii")
    pixels = np.zeros((28, 28), int).tolist()
    with httpx.Client(base_url=fuzzed_server, headers={"X-API-Key": API_KEY}, timeout=30) as client:
        both = client.post("/v1/predict", json={"image_base64": encoded, "pixels": pixels})
        assert both.status_code == 422 and "not both" in both.json()["detail"]  # was read as image_base64
        extra_field = client.post("/v1/predict", files={"file": ("d.png", png, "image/png")}, data={"note": "x"})
        assert extra_field.status_code == 422 and "unexpected form field 'note'" in extra_field.json()["detail"]
        number_label = client.post("/v1/corrections", json={"pixels": pixels, "label": 7})
        assert number_label.status_code == 422 and "string of digits" in number_label.json()["detail"]
        spaced = client.post("/v1/corrections", files={"file": ("d.png", png, "image/png")}, data={"label": " 7\r\n"})
        assert spaced.status_code == 201 and spaced.json()["label"] == "7"  # as the schema's pattern allows
        assert client.post("/v1/predict", json={"image_base64": encoded, "note": 1}).json()["digit"] == int(digit)


def test_the_published_schema_lists_the_api_key_only_when_the_server_has_one():
    keyed = create_app("default", api_key="k").openapi()
    open_server = create_app("default").openapi()
    assert keyed["paths"]["/v1/predict"]["post"]["security"] and "securitySchemes" in keyed["components"]
    assert "401" in keyed["paths"]["/v1/read"]["post"]["responses"]
    for operations in open_server["paths"].values():
        for operation in operations.values():
            assert "security" not in operation and "401" not in operation["responses"]
    assert "securitySchemes" not in open_server.get("components", {})
