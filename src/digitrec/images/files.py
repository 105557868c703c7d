"""People's image files -> decoded PIL images: which files a command line names, and reading them safely.

Every problem with a file is a one-line `DigitrecError` that names the file, so a batch can report it and go on.
Nothing here looks at pixels beyond decoding them; `images.photo` turns them into MNIST-like digits. The
service decodes its uploads here too (`decode_picture`), with the same formats and limits.
"""

from __future__ import annotations

import glob
import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from digitrec.errors import DigitrecError

# The largest image we decode, for the CLI, the API and the service alike: a 40-megapixel photo fits (120 MB as RGB);
# larger files are refused from their header, before any pixel is decoded. PIL's own "decompression bomb" guard
# only starts at 89 megapixels.
MAX_IMAGE_PIXELS = 40_000_000
PICTURE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")  # what Pillow may decode: no other decoder is reachable
MIN_IMAGE_SIDE_PX = 8  # smaller than this holds no readable digit (MNIST's digits are 20 px tall)
PDF_RENDER_DPI = 150  # pages are rendered at this resolution (PDF user space is 72 points per inch)
PDF_POINTS_PER_INCH = 72
MAX_PDF_PAGES = 100
PDF_MAGIC = b"%PDF-"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pdf"})


@dataclass(frozen=True)
class SourceImage:
    """One decoded image and where it came from: a file, and a page number for PDFs."""

    path: Path
    image: Image.Image
    page: int | None = None  # 1-based, for PDF pages
    note: str | None = None  # something the user should know, e.g. "first of 12 frames used"

    @property
    def name(self) -> str:
        return source_name(self.path, self.page)


def source_name(path: str | Path, page: int | None) -> str:
    """How an image is named in messages: its path, with `#page=N` for a PDF page."""
    return f"{path}#page={page}" if page is not None else str(path)


def expand_inputs(arguments: list[str]) -> list[Path]:
    """Files as given, folders searched recursively for image and PDF files, glob patterns expanded.

    A pattern that matches nothing is kept as it is, so reading it reports "no such file".
    """
    paths: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            paths.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        elif not path.exists() and glob.has_magic(argument):
            matches = sorted(glob.glob(argument, recursive=True))
            paths.extend(Path(match) for match in matches if Path(match).is_file())
            if not matches:
                paths.append(path)
        else:
            paths.append(path)
    return paths


def read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DigitrecError(f"{path}: no such file") from None
    except OSError as exc:
        raise DigitrecError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise DigitrecError(f"{path}: empty file")
    return data


def read_images(path: str | Path) -> list[SourceImage]:
    """The images in one file: one for a picture (the first frame of an animation), one per page of a PDF."""
    path = Path(path)
    data = read_bytes(path)
    if data.startswith(PDF_MAGIC):
        return render_pdf_pages(path, data)
    return [open_picture(path, data)]


def read_single_image(path: str | Path) -> SourceImage:
    """The one image in a file; a PDF of several pages is refused (`digitrec predict` reads every page)."""
    images = read_images(path)
    if len(images) > 1:
        raise DigitrecError(f"{path}: a PDF of {len(images)} pages; give one page, or use `digitrec predict`")
    return images[0]


def png_header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, which PIL refuses to open when either is 0."""
    if not data.startswith(PNG_SIGNATURE) or len(data) < 24:
        return None
    return struct.unpack(">II", data[16:24])


def check_dimensions(name: str, width: int, height: int) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise DigitrecError(f"{name}: image of {width}x{height} pixels is over the {MAX_IMAGE_PIXELS:,}-pixel limit")
    if min(width, height) < MIN_IMAGE_SIDE_PX:
        raise DigitrecError(
            f"{name}: image too small to hold a digit ({width}x{height} pixels; "
            f"at least {MIN_IMAGE_SIDE_PX}x{MIN_IMAGE_SIDE_PX} needed)"
        )


def decode_picture(data: bytes, name: str) -> tuple[Image.Image, int]:
    """Encoded bytes -> (the decoded first frame, the number of frames). The dimensions are checked from the header,
    before any pixel is decoded; every problem is a one-line `DigitrecError` naming `name`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own, lower limit applies below
            image = Image.open(io.BytesIO(data), formats=PICTURE_FORMATS)
    except Image.DecompressionBombError:
        raise DigitrecError(f"{name}: image over the {MAX_IMAGE_PIXELS:,}-pixel limit") from None
    except UnidentifiedImageError:
        header_size = png_header_size(data)
        if header_size is not None and 0 in header_size:
            raise DigitrecError(f"{name}: empty image ({header_size[0]}x{header_size[1]} pixels)") from None
        raise DigitrecError(f"{name}: not a readable image (expected {', '.join(PICTURE_FORMATS)} or PDF)") from None
    except (OSError, SyntaxError, ValueError) as exc:  # a known format whose header is damaged (Pillow's types)
        raise DigitrecError(f"{name}: damaged image header ({exc})") from None
    check_dimensions(name, *image.size)
    frames = getattr(image, "n_frames", 1)
    try:
        image.seek(0)
        image.load()
    except Exception as exc:  # Pillow's decoders raise many types on damaged data; all mean "unreadable"
        raise DigitrecError(f"{name}: truncated or damaged {image.format} image ({type(exc).__name__})") from None
    return image, frames


def open_picture(path: Path, data: bytes) -> SourceImage:
    """Decode an image file's first frame, after checking its header's dimensions."""
    image, frames = decode_picture(data, str(path))
    note = f"{image.format} with {frames} frames: the first frame was used" if frames > 1 else None
    return SourceImage(path=path, image=image, note=note)


def render_pdf_pages(path: Path, data: bytes) -> list[SourceImage]:
    """Each page of a PDF rendered at PDF_RENDER_DPI (less for pages so large they would pass the pixel limit)."""
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise DigitrecError(f"{path}: damaged PDF ({exc})") from None
    if len(document) == 0:
        raise DigitrecError(f"{path}: a PDF without pages")
    if len(document) > MAX_PDF_PAGES:
        raise DigitrecError(f"{path}: a PDF of {len(document)} pages; at most {MAX_PDF_PAGES} are read")
    images = []
    for index, page in enumerate(document):
        width_pt, height_pt = page.get_size()
        scale = PDF_RENDER_DPI / PDF_POINTS_PER_INCH
        scale = min(scale, (MAX_IMAGE_PIXELS / max(width_pt * height_pt, 1.0)) ** 0.5)
        check_dimensions(path, round(width_pt * scale), round(height_pt * scale))
        images.append(SourceImage(path=path, image=page.render(scale=scale).to_pil(), page=index + 1))
    return images
