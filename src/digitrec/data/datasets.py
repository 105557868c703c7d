"""Datasets in the IDX layout (MNIST, Fashion-MNIST, ...): find, download, verify, read and split.

Everything here returns plain NumPy arrays (`uint8` images `(N, H, W)`, `uint8` labels `(N,)`); nothing here
knows about models or training.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from digitrec.errors import DigitrecError
from digitrec.fileio import write_bytes_atomic

log = logging.getLogger(__name__)


DATA_DIR_ENV = "DIGITREC_DATA"  # MNIST's folder; another dataset's is DIGITREC_<NAME>_DATA (see DatasetSpec)
CACHE_DIR = Path("~/.cache/digitrec")  # each dataset downloads into its own folder here
DEFAULT_DATA_DIR = CACHE_DIR / "mnist"
IDX_DTYPE_UINT8 = 0x08  # the only element type MNIST-style files use
GZIP_MAGIC = b"\x1f\x8b"
DOWNLOAD_CHUNK_BYTES = 1 << 16
DOWNLOAD_TIMEOUT_S = 30
DOWNLOAD_TRIES_PER_MIRROR = 2
SPLITS = ("train", "test")


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset in IDX layout is: its files, classes, image size, content hashes and mirrors."""

    name: str
    class_names: tuple[str, ...]
    image_shape: tuple[int, int] = (28, 28)
    split_sizes: dict[str, int] = field(default_factory=dict)
    # file stem (without .gz) of images and labels for each split
    files: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {
            "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
            "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        }
    )
    # SHA-256 of each file's *decompressed* content; a file not listed is not checked
    sha256: dict[str, str] = field(default_factory=dict)
    mirrors: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def data_dir_env(self) -> str:
        """The environment variable naming this dataset's folder: DIGITREC_DATA for MNIST (the project's own),
        DIGITREC_FASHION_MNIST_DATA for Fashion-MNIST, ... so that no dataset ever reads another's files."""
        return DATA_DIR_ENV if self.name == "mnist" else f"DIGITREC_{self.name.upper().replace('-', '_')}_DATA"

    def all_file_stems(self) -> list[str]:
        return [stem for split in SPLITS for stem in self.files[split]]


MNIST = DatasetSpec(
    name="mnist",
    class_names=tuple(str(d) for d in range(10)),
    split_sizes={"train": 60_000, "test": 10_000},
    # from ../shared/data/mnist/SHA256SUMS (decompressed content, identical on every public mirror)
    sha256={
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
)


FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    class_names=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    split_sizes={"train": 60_000, "test": 10_000},
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
)


DATASETS = {spec.name: spec for spec in (MNIST, FASHION_MNIST)}


def dataset_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise DigitrecError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def resolve_data_dir(data_dir: str | os.PathLike | None = None, spec: DatasetSpec | None = None) -> Path:
    """The dataset's folder: the given one, else its environment variable ($DIGITREC_DATA for MNIST), else
    ~/.cache/digitrec/<dataset name>."""
    spec = spec or MNIST
    chosen = data_dir or os.environ.get(spec.data_dir_env) or CACHE_DIR / spec.name
    return Path(chosen).expanduser()


def parse_idx(content: bytes, source: str) -> np.ndarray:
    """Decode the bytes of one uncompressed IDX file; `source` names the file in error messages."""
    if len(content) < 4:
        raise DigitrecError(f"{source}: not an IDX file (only {len(content)} bytes)")
    zero1, zero2, dtype_code, ndim = content[:4]
    if zero1 != 0 or zero2 != 0 or dtype_code != IDX_DTYPE_UINT8 or not 1 <= ndim <= 4:
        raise DigitrecError(
            f"{source}: wrong magic number 0x{content[:4].hex()} (expected 0x000008 then 1-4 dimensions)"
        )
    header_len = 4 + 4 * ndim
    if len(content) < header_len:
        raise DigitrecError(f"{source}: truncated header ({len(content)} of {header_len} bytes)")
    shape = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header_len + int(np.prod(shape))
    if len(content) < expected:
        raise DigitrecError(
            f"{source}: truncated: header promises shape {shape} ({expected} bytes), file has {len(content)}"
        )
    if len(content) > expected:
        raise DigitrecError(f"{source}: {len(content) - expected} unexpected bytes after the data of shape {shape}")
    return np.frombuffer(content, dtype=np.uint8, offset=header_len).reshape(shape).copy()  # writable


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes of a uint8 array (used to write datasets and test fixtures)."""
    if array.dtype != np.uint8:
        raise DigitrecError(f"IDX encoding takes uint8 arrays, got {array.dtype}")
    header = bytes([0, 0, IDX_DTYPE_UINT8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def read_file_content(path: Path) -> bytes:
    """A file's content, gunzipped when it is gzip; errors name the file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DigitrecError(f"{path}: cannot read ({exc.strerror})") from None
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        raise DigitrecError(f"{path}: corrupt or truncated gzip ({exc})") from None


def find_file(data_dir: Path, stem: str) -> Path | None:
    """`stem.gz` or `stem` in the folder, whichever exists (gzip preferred)."""
    for candidate in (data_dir / f"{stem}.gz", data_dir / stem):
        if candidate.is_file():
            return candidate
    return None


def verify_sha256(content: bytes, expected: str | None, source: str) -> None:
    if expected is None:
        return
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected:
        raise DigitrecError(
            f"{source}: SHA-256 of its content is {actual[:16]}..., expected {expected[:16]}... (corrupt or wrong file)"
        )


def read_idx_file(path: Path, expected_sha256: str | None = None) -> np.ndarray:
    content = read_file_content(path)
    verify_sha256(content, expected_sha256, str(path))
    return parse_idx(content, str(path))


def download_file(url: str, destination: Path, timeout_s: float = DOWNLOAD_TIMEOUT_S) -> bytes:
    """Fetch url into memory with a progress bar; raise OSError/URLError on failure."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        chunks = []
        with tqdm(total=total, unit="B", unit_scale=True, desc=destination.name, leave=False) as bar:
            while chunk := response.read(DOWNLOAD_CHUNK_BYTES):
                chunks.append(chunk)
                bar.update(len(chunk))
    return b"".join(chunks)


def fetch_from_mirrors(stem: str, spec: DatasetSpec, data_dir: Path, mirrors: tuple[str, ...]) -> Path:
    """Download `stem.gz` from the first mirror that serves content with the right hash."""
    destination = data_dir / f"{stem}.gz"
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + f"/{stem}.gz"
        for attempt in range(1, DOWNLOAD_TRIES_PER_MIRROR + 1):
            try:
                archive = download_file(url, destination)
                content = gzip.decompress(archive) if archive.startswith(GZIP_MAGIC) else archive
                verify_sha256(content, spec.sha256.get(stem), url)
                parse_idx(content, url)
            except (OSError, EOFError, urllib.error.URLError, DigitrecError) as exc:
                failures.append(f"{url} (try {attempt}): {exc}")
                log.info("download failed: %s", failures[-1])
                if attempt < DOWNLOAD_TRIES_PER_MIRROR:
                    time.sleep(attempt)
                continue
            write_bytes_atomic(destination, archive)
            log.info("downloaded %s", url)
            return destination
    raise OSError("; ".join(failures) or "no mirrors configured")


def ensure_files(
    data_dir: Path, spec: DatasetSpec = MNIST, download: bool = True, mirrors: tuple[str, ...] | None = None
) -> dict[str, Path]:
    """Path of every file of the dataset, downloading missing ones when allowed."""
    found = {stem: find_file(data_dir, stem) for stem in spec.all_file_stems()}
    missing = [stem for stem, path in found.items() if path is None]
    if missing and download:
        try:
            for stem in missing:
                found[stem] = fetch_from_mirrors(stem, spec, data_dir, mirrors or spec.mirrors)
        except OSError as exc:
            log.info("download failed: %s", exc)
    still_missing = [stem for stem, path in found.items() if path is None]
    if still_missing:
        names = ", ".join(f"{stem}.gz" for stem in still_missing)
        raise DigitrecError(
            f"{spec.name} files missing in {data_dir} and not downloadable: put {names} there "
            f"(or point --data-dir / ${DATA_DIR_ENV} at a folder that has them)"
        )
    return found  # type: ignore[return-value]


@dataclass(frozen=True)
class LabelledImages:
    """Images `(N, H, W)` uint8 and their labels `(N,)` uint8."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray) -> LabelledImages:
        return LabelledImages(self.images[indices], self.labels[indices])


def load_split(
    split: str,
    data_dir: str | os.PathLike | None = None,
    spec: DatasetSpec = MNIST,
    download: bool = True,
    mirrors: tuple[str, ...] | None = None,
) -> LabelledImages:
    """Read one split ("train" or "test"), verified: hashes, magic numbers, counts and label range."""
    if split not in SPLITS:
        raise DigitrecError(f"unknown split {split!r}; expected one of {SPLITS}")
    folder = resolve_data_dir(data_dir, spec)
    paths = ensure_files(folder, spec, download=download, mirrors=mirrors)
    images_stem, labels_stem = spec.files[split]
    images = read_idx_file(paths[images_stem], spec.sha256.get(images_stem))
    labels = read_idx_file(paths[labels_stem], spec.sha256.get(labels_stem))
    check_images_and_labels(images, labels, spec, split, paths[images_stem], paths[labels_stem])
    return LabelledImages(images, labels)


def check_images_and_labels(
    images: np.ndarray, labels: np.ndarray, spec: DatasetSpec, split: str, images_path: Path, labels_path: Path
) -> None:
    if images.ndim != 3 or images.shape[1:] != spec.image_shape:
        raise DigitrecError(f"{images_path}: images of shape {images.shape}, expected (N, {spec.image_shape})")
    if labels.ndim != 1:
        raise DigitrecError(f"{labels_path}: labels of shape {labels.shape}, expected (N,)")
    expected_count = spec.split_sizes.get(split)
    for path, count in ((images_path, len(images)), (labels_path, len(labels))):
        if expected_count is not None and count != expected_count:
            raise DigitrecError(f"{path}: {count} items, expected {expected_count} in {spec.name} {split}")
    if len(images) != len(labels):
        raise DigitrecError(f"{images_path}: {len(images)} images but {labels_path} has {len(labels)} labels")
    if len(labels) and labels.max() >= spec.num_classes:
        raise DigitrecError(f"{labels_path}: label {labels.max()} out of range for {spec.num_classes} classes")


def train_validation_indices(count: int, validation_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of range(count) into (train, validation) indices, both sorted."""
    if not 0 <= validation_size < count:
        raise DigitrecError(f"validation size {validation_size} must be in [0, {count})")
    order = np.random.default_rng(seed).permutation(count)
    return np.sort(order[validation_size:]), np.sort(order[:validation_size])


def training_and_validation(
    spec: DatasetSpec, data_dir, seed: int, validation_size: int, train_subset: int = 0
) -> tuple[LabelledImages, LabelledImages]:
    """The training split (optionally a seeded subset of it) cut into seeded training and validation parts."""
    train_split = load_split("train", data_dir, spec)
    if train_subset:
        keep = np.random.default_rng(seed).permutation(len(train_split))[:train_subset]
        train_split = train_split.subset(np.sort(keep))
    train_idx, validation_idx = train_validation_indices(len(train_split), validation_size, seed)
    return train_split.subset(train_idx), train_split.subset(validation_idx)
