"""The API's request and response bodies (pydantic) and their OpenAPI documentation."""

from __future__ import annotations

from pydantic import BaseModel, Field, StrictFloat, StrictInt

from digitrec.corrections import LABEL_SPACES, MAX_LABEL_DIGITS
from digitrec.serve.settings import UPLOAD_TYPES


class ImageBase64Body(BaseModel):
    image_base64: str = Field(description="an encoded PNG, JPEG, BMP, GIF or WebP file (a data: URL is accepted)")


class PixelsBody(BaseModel):
    pixels: list[list[StrictInt | StrictFloat]] = Field(
        description="28 rows of 28 numbers (no strings or booleans): 0-255, or 0-1; white ink on black"
    )


class CorrectionResponse(BaseModel):
    id: int = Field(description="the stored correction's number")
    label: str = Field(description="the right answer, as stored")


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


UPLOAD_CONTENT_TYPES = ", ".join(sorted(UPLOAD_TYPES))  # what the file part's Content-Type must be (else 415)
SPACES_PATTERN = "[" + "".join(f"\\u{ord(c):04x}" for c in LABEL_SPACES) + "]*"
LABEL_SCHEMA = {  # what corrections.check_label takes: digits, with the spaces and line ends around them dropped
    "type": "string",
    "pattern": f"^{SPACES_PATTERN}[0-9]{{1,{MAX_LABEL_DIGITS}}}{SPACES_PATTERN}$",
    "description": "the right answer: a digit, or the digits of a number",
}
JSON_IMAGES = {  # the two ways to send an image in JSON; a body holds exactly one of them
    "image_base64": ImageBase64Body.model_json_schema()["properties"]["image_base64"],
    "pixels": {  # PixelsBody's, with the shape the server requires (the check itself is Recognizer.to_images')
        "type": "array",
        "minItems": 28,
        "maxItems": 28,
        "items": {"type": "array", "minItems": 28, "maxItems": 28, "items": {"type": "number"}},
        "description": PixelsBody.model_fields["pixels"].description,
    },
}


def json_image_body(kinds: tuple[str, ...], fields: dict[str, dict] | None = None) -> dict:
    """The JSON request body of an endpoint that takes an image as one of `kinds` (keys of JSON_IMAGES), plus the
    required `fields`; the other kind's key must be absent (the server refuses a body with both)."""
    fields = fields or {}
    branches = []
    for kind in kinds:
        absent = {other: False for other in JSON_IMAGES if other != kind}
        properties = {kind: JSON_IMAGES[kind], **fields, **absent}
        branches.append({"type": "object", "properties": properties, "required": [kind, *fields]})
    return branches[0] if len(branches) == 1 else {"oneOf": branches}


def upload_body_docs(json_schema: dict, form_fields: dict[str, dict] | None = None) -> dict:
    """The OpenAPI request body of an endpoint that takes an image: a multipart `file` (plus the required text
    `form_fields`), or JSON described by `json_schema`."""
    form_fields = form_fields or {}
    properties = {"file": {"type": "string", "format": "binary"}} | form_fields
    multipart = {
        "schema": {
            "type": "object",
            "properties": properties,
            "required": ["file", *form_fields],
            "additionalProperties": False,  # the server refuses other fields
        },
        "encoding": {"file": {"contentType": UPLOAD_CONTENT_TYPES}},
    }
    content = {"multipart/form-data": multipart, "application/json": {"schema": json_schema}}
    return {"requestBody": {"required": True, "content": content}}


PREDICT_BODY_DOCS = upload_body_docs(json_image_body(("image_base64", "pixels")))
READ_BODY_DOCS = upload_body_docs(json_image_body(("image_base64",)))
CORRECTION_BODY_DOCS = upload_body_docs(
    json_image_body(("image_base64", "pixels"), {"label": LABEL_SCHEMA}), form_fields={"label": LABEL_SCHEMA}
)


class ErrorResponse(BaseModel):
    detail: str = Field(description="what was wrong, in one line")


ERROR_DOCS = {
    status: {"description": description, "model": ErrorResponse}
    for status, description in {
        401: "missing or wrong API key (when the server has one)",
        413: "request body over the upload limit",
        415: "neither multipart/form-data nor JSON, or a file that is not an image",
        422: "undecodable image, image over the pixel limit, pixels of the wrong shape, or a malformed body",
        503: "busy: no answer within the per-request time limit, or too much work waiting (Retry-After)",
    }.items()
}
CORRECTION_ERROR_DOCS = ERROR_DOCS | {
    404: {"description": "this server keeps no corrections (started without --corrections)", "model": ErrorResponse}
}
