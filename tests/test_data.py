"""IDX reading, hash checks, data-folder resolution, download and splits, on the real MNIST files."""

from __future__ import annotations

import functools
import gzip
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from digitrec.data import datasets as data
from digitrec.data.datasets import MNIST, DigitrecError, encode_idx, load_split, parse_idx

MNIST_TEST_CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # published with MNIST


def test_real_mnist_splits_have_published_shapes_and_class_counts(mnist_train, mnist_test):
    assert mnist_train.images.shape == (60_000, 28, 28) and mnist_train.images.dtype == np.uint8
    assert mnist_test.images.shape == (10_000, 28, 28) and mnist_test.labels.shape == (10_000,)
    assert np.bincount(mnist_test.labels).tolist() == MNIST_TEST_CLASS_COUNTS
    assert mnist_train.images.max() == 255 and mnist_train.images.min() == 0


def test_idx_round_trip_keeps_shape_and_values():
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    decoded = parse_idx(encode_idx(array), "fixture")
    assert decoded.shape == (2, 3, 4)
    np.testing.assert_array_equal(decoded, array)


def test_truncated_idx_content_names_the_source():
    content = encode_idx(np.zeros((5, 28, 28), np.uint8))[:-100]
    with pytest.raises(DigitrecError, match=r"some-file: truncated"):
        parse_idx(content, "some-file")


def test_wrong_magic_is_refused():
    content = bytearray(encode_idx(np.zeros((2, 2), np.uint8)))
    content[2] = 0x0D  # float32 element type: not what MNIST files hold
    with pytest.raises(DigitrecError, match="wrong magic number"):
        parse_idx(bytes(content), "f")


def test_trailing_bytes_are_refused():
    with pytest.raises(DigitrecError, match="unexpected bytes"):
        parse_idx(encode_idx(np.zeros((2, 2), np.uint8)) + b"\0", "f")


def test_truncated_gzip_file_names_the_file(mnist_copy: Path):
    path = mnist_copy / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DigitrecError, match=r"t10k-labels-idx1-ubyte\.gz: corrupt or truncated gzip"):
        load_split("test", mnist_copy, download=False)


def test_wrong_count_is_refused_with_the_file_name(mnist_copy: Path):
    labels = data.read_idx_file(mnist_copy / "t10k-labels-idx1-ubyte.gz")
    (mnist_copy / "t10k-labels-idx1-ubyte.gz").unlink()
    (mnist_copy / "t10k-labels-idx1-ubyte").write_bytes(encode_idx(labels[:9000]))
    spec = data.DatasetSpec(name="mnist-unhashed", class_names=MNIST.class_names, split_sizes=MNIST.split_sizes)
    with pytest.raises(DigitrecError, match=r"t10k-labels-idx1-ubyte: 9000 items, expected 10000"):
        load_split("test", mnist_copy, spec, download=False)


def test_content_with_the_wrong_hash_is_refused(mnist_copy: Path):
    labels = data.read_idx_file(mnist_copy / "t10k-labels-idx1-ubyte.gz").copy()
    labels[0] = (labels[0] + 1) % 10  # one label changed: same size, still valid IDX
    (mnist_copy / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(encode_idx(labels)))
    with pytest.raises(DigitrecError, match=r"t10k-labels-idx1-ubyte\.gz: SHA-256"):
        load_split("test", mnist_copy, download=False)


def test_uncompressed_files_are_read_too(mnist_copy: Path, mnist_test):
    for stem in MNIST.files["test"]:
        gz = mnist_copy / f"{stem}.gz"
        (mnist_copy / stem).write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    split = load_split("test", mnist_copy, download=False)
    np.testing.assert_array_equal(split.labels, mnist_test.labels)


def test_data_dir_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "env"))
    assert data.resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert data.resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv(data.DATA_DIR_ENV)
    assert data.resolve_data_dir(None) == Path("~/.cache/digitrec/mnist").expanduser()


def test_missing_files_without_network_say_what_to_put_where(tmp_path):
    closed_port_mirror = ("http://127.0.0.1:9/",)  # the discard port: nothing listens there
    with pytest.raises(DigitrecError) as caught:
        load_split("test", tmp_path, mirrors=closed_port_mirror)
    message = str(caught.value)
    assert str(tmp_path) in message and "t10k-images-idx3-ubyte.gz" in message and "\n" not in message
    assert not any(tmp_path.iterdir()), "a failed download must leave nothing behind"


@pytest.fixture
def local_mirror(mnist_dir: Path):
    """A real HTTP server on 127.0.0.1 serving the MNIST .gz files, like a public mirror."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mnist_dir))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_download_fetches_verifies_and_writes_missing_files(tmp_path, local_mirror, mnist_test):
    broken_mirror = "http://127.0.0.1:9/"
    split = load_split("test", tmp_path, mirrors=(broken_mirror, local_mirror))
    np.testing.assert_array_equal(split.labels, mnist_test.labels)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f"{stem}.gz" for stem in MNIST.all_file_stems())  # no temp files left


def test_validation_split_is_seeded_disjoint_and_complete():
    train_a, val_a = data.train_validation_indices(1000, 100, seed=3)
    train_b, val_b = data.train_validation_indices(1000, 100, seed=3)
    _, val_c = data.train_validation_indices(1000, 100, seed=4)
    np.testing.assert_array_equal(val_a, val_b)
    assert not np.array_equal(val_a, val_c)
    assert len(val_a) == 100 and not set(train_a) & set(val_a)
    assert sorted(np.concatenate([train_a, val_a])) == list(range(1000))


def test_other_idx_datasets_load_with_their_own_class_names(tmp_path, mnist_test):
    """An IDX dataset that is not MNIST (here three classes) loads with its own spec."""
    spec = data.DatasetSpec(name="tiny", class_names=("a", "b", "c"), split_sizes={"train": 30, "test": 30})
    images = mnist_test.images[:30]
    labels = (mnist_test.labels[:30] % 3).astype(np.uint8)
    for split in ("train", "test"):
        images_stem, labels_stem = spec.files[split]
        (tmp_path / f"{images_stem}.gz").write_bytes(gzip.compress(encode_idx(images)))
        (tmp_path / f"{labels_stem}.gz").write_bytes(gzip.compress(encode_idx(labels)))
    split = load_split("train", tmp_path, spec, download=False)
    assert split.images.shape == (30, 28, 28) and set(split.labels) <= {0, 1, 2}


def test_fashion_mnist_never_reads_the_mnist_folder(tmp_path, monkeypatch, mnist_dir):
    """$DIGITREC_DATA names MNIST's folder; Fashion-MNIST has a folder of its own, so with only MNIST's set a
    Fashion-MNIST run finds no files (and says so) instead of training on MNIST's digits under clothing names."""
    monkeypatch.setenv("DIGITREC_DATA", str(mnist_dir))
    monkeypatch.delenv("DIGITREC_FASHION_MNIST_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.resolve_data_dir(None, data.MNIST) == mnist_dir
    assert data.resolve_data_dir(None, data.FASHION_MNIST) == tmp_path / ".cache" / "digitrec" / "fashion-mnist"
    with pytest.raises(DigitrecError, match="fashion-mnist files missing"):
        data.load_split("train", spec=data.FASHION_MNIST, download=False)
    monkeypatch.setenv("DIGITREC_FASHION_MNIST_DATA", str(tmp_path / "fashion"))
    assert data.resolve_data_dir(None, data.FASHION_MNIST) == tmp_path / "fashion"
