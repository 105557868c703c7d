"""People's image files -> decoded PIL images: which files a command line names, and reading them safely.

Every problem with a file is a one-line `DigitrecError` that names the file, so a batch can report it and go on.
Nothing here looks at pixels beyond decoding them; `images.photo` turns them into MNIST-like digits. The
service decodes its uploads here too (`decode_picture`), with the same formats and limits.
"""

from __future__ import annotations

import glob
import io
import os
import stat
import struct
import warnings
from collections.abc import Iterator
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
MAX_PDF_PIXELS = 200_000_000  # all pages of a PDF together: pages of a long PDF are rendered smaller (5 at 40 MP)
MAX_FILE_BYTES = 150 * 2**20  # a 40-megapixel RGB BMP is 120 MB; larger files are refused while being read
READ_CHUNK_BYTES = 2**20
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

    A pattern that matches nothing is kept as it is, so reading it reports "no such file"; so is a folder (or a
    folder inside one) that cannot be listed, so reading it reports why.
    """
    paths: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if is_folder(path):
            paths.extend(files_in_folder(path))
        elif not path_exists(path) and glob.has_magic(argument):
            matches = sorted(glob.glob(argument, recursive=True))
            paths.extend(Path(match) for match in matches if Path(match).is_file())
            if not matches:
                paths.append(path)
        else:
            paths.append(path)
    return paths


def is_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.stat().st_mode)
    except OSError:  # missing, or in a folder we may not enter: reading it names the reason
        return False


def path_exists(path: Path) -> bool:
    try:
        path.stat()
    except OSError:
        return False
    return True


def files_in_folder(folder: Path) -> list[Path]:
    """The image and PDF files under `folder`, sorted; folders that cannot be listed are kept, to be reported."""
    found: list[Path] = []
    unlisted: list[Path] = []
    for root, folders, names in os.walk(folder, onerror=lambda exc: unlisted.append(Path(exc.filename))):
        folders.sort()
        for name in names:
            candidate = Path(root) / name
            if candidate.suffix.lower() in IMAGE_SUFFIXES and candidate.is_file():
                found.append(candidate)
    return sorted(found) + sorted(unlisted)


def read_bytes(path: Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """A regular file's bytes, read as a stream: a folder, pipe or device, or a file over `max_bytes`, is refused
    (a pipe is opened without blocking, so that `mkfifo f.png` cannot hang a batch)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise DigitrecError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DigitrecError(f"{path}: a folder, not a file") from None
    except OSError as exc:
        raise DigitrecError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise DigitrecError(f"{path}: cannot list this folder ({folder_error(path)})")
        if not stat.S_ISREG(mode):
            raise DigitrecError(f"{path}: not a regular file (a pipe, device or socket)")
        os.set_blocking(fd, True)
        data = bytearray()
        try:
            while chunk := handle.read(READ_CHUNK_BYTES):
                data += chunk
                if len(data) > max_bytes:
                    raise DigitrecError(f"{path}: file over the {max_bytes // 2**20} MB limit")
        except OSError as exc:
            raise DigitrecError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise DigitrecError(f"{path}: empty file")
    return bytes(data)


def folder_error(path: Path) -> str:
    try:
        os.listdir(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    return "it is a folder"


class PdfPages:
    """The pages of a PDF, rendered one at a time as they are iterated (a page's pixels are freed before the
    next page is drawn); `len()` is the page count, known without rendering."""

    def __init__(self, path: Path, data: bytes) -> None:
        self.path = path
        self.document, self.scale = open_pdf(path, data)

    def __len__(self) -> int:
        return len(self.document)

    def __iter__(self) -> Iterator[SourceImage]:
        for index in range(len(self.document)):
            yield render_pdf_page(self.path, self.document, index, self.scale)


def read_images(path: str | Path) -> list[SourceImage] | PdfPages:
    """The images in one file: one for a picture (the first frame of an animation), one per page of a PDF (rendered
    as they are iterated)."""
    path = Path(path)
    data = read_bytes(path)
    if data.startswith(PDF_MAGIC):
        return PdfPages(path, data)
    return [open_picture(path, data)]


def read_single_image(path: str | Path) -> SourceImage:
    """The one image in a file; a PDF of several pages is refused (`digitrec predict` reads every page)."""
    images = read_images(path)
    if len(images) > 1:
        raise DigitrecError(f"{path}: a PDF of {len(images)} pages; give one page, or use `digitrec predict`")
    return next(iter(images))


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


def open_pdf(path: Path, data: bytes):
    """(the pdfium document, the render scale): page count and every page's size checked before any rendering."""
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        reason = str(exc).removesuffix(": Success").removesuffix(" (PDFium: Success)")
        raise DigitrecError(f"{path}: damaged PDF, or one without pages ({reason})") from None
    if len(document) == 0:
        raise DigitrecError(f"{path}: a PDF without pages")
    if len(document) > MAX_PDF_PAGES:
        raise DigitrecError(f"{path}: a PDF of {len(document)} pages; at most {MAX_PDF_PAGES} are read")
    page_pixels = min(MAX_IMAGE_PIXELS, MAX_PDF_PIXELS / len(document))
    scale = PDF_RENDER_DPI / PDF_POINTS_PER_INCH
    for index in range(len(document)):
        width_pt, height_pt = document.get_page_size(index)
        scale = min(scale, (page_pixels / max(width_pt * height_pt, 1.0)) ** 0.5)
    for index in range(len(document)):
        width_pt, height_pt = document.get_page_size(index)
        check_dimensions(f"{source_name(path, index + 1)}", round(width_pt * scale), round(height_pt * scale))
    return document, scale


def render_pdf_page(path: Path, document, index: int, scale: float) -> SourceImage:
    """One page at `scale` (the same for every page, so that no page passes the pixel limits)."""
    page = document[index]
    try:
        image = page.render(scale=scale).to_pil()
    finally:
        page.close()
    return SourceImage(path=path, image=image, page=index + 1)


def loaded_picture(image, name: str = "image"):
    """A PIL image given to the API, checked like a decoded file: its size, and its pixels really decodable (a
    lazily opened, truncated file fails here, in one line, not deep in the pipeline)."""
    check_dimensions(name, *image.size)
    try:
        image.load()
    except Exception as exc:  # Pillow's decoders raise many types on damaged data; all mean "unreadable"
        raise DigitrecError(f"{name}: truncated or damaged image ({type(exc).__name__}: {exc})") from None
    return image
