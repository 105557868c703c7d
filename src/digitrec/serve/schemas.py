"""The API's request and response bodies (pydantic) and their OpenAPI documentation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, StrictFloat, StrictInt

from digitrec.serve.settings import UPLOAD_TYPES

if TYPE_CHECKING:
    pass


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


def upload_body_docs(json_schema: dict, form_fields: tuple[str, ...] = ()) -> dict:
    """The OpenAPI request body of an endpoint that takes an image: a multipart `file` (plus text `form_fields`),
    or JSON described by `json_schema`."""
    properties = {"file": {"type": "string", "format": "binary"}} | {name: {"type": "string"} for name in form_fields}
    multipart = {
        "schema": {"type": "object", "properties": properties, "required": ["file", *form_fields]},
        "encoding": {"file": {"contentType": UPLOAD_CONTENT_TYPES}},
    }
    content = {"multipart/form-data": multipart, "application/json": {"schema": json_schema}}
    return {"requestBody": {"required": True, "content": content}}


PREDICT_BODY_DOCS = upload_body_docs({"oneOf": [ImageBase64Body.model_json_schema(), PixelsBody.model_json_schema()]})
CORRECTION_BODY_DOCS = upload_body_docs(
    {
        "type": "object",
        "properties": {
            "image_base64": {"type": "string"},
            "pixels": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
            "label": {"type": "string", "pattern": "^[0-9]{1,64}$"},
        },
        "required": ["label"],
    },
    form_fields=("label",),
)


ERROR_DOCS = {
    401: {"description": "missing or wrong API key (when the server has one)"},
    413: {"description": "request body over the upload limit"},
    415: {"description": "neither multipart/form-data nor JSON, or a file that is not an image"},
    422: {"description": "undecodable image, image over the pixel limit, or pixels of the wrong shape"},
    503: {"description": "busy: no answer within the per-request time limit, or too much work waiting (Retry-After)"},
}


READ_BODY_DOCS = upload_body_docs(ImageBase64Body.model_json_schema())
