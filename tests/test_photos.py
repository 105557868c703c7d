"""People's own images: the photo pipeline, the synthetic photos, and `digitrec predict` on real files.

Every photo here is made from real MNIST test digits by `digitrec.synthetic.photos`, written to real files in tmp_path.
"""

from __future__ import annotations

import json
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from digitrec import Recognizer
from digitrec.cli import main
from digitrec.errors import DigitrecError
from digitrec.evaluation.photos import evaluate_photos
from digitrec.images.files import MAX_IMAGE_PIXELS
from digitrec.images.framing import (
    MNIST_SKEW_RANGE,
    MNIST_STROKE_RANGE_PX,
    STROKE_BOX_PX,
    deskew,
    mask_to_mnist,
    mnist_frame,
    moments_skew,
    scale_to_box,
    stroke_width_px,
    tight_crop,
)
from digitrec.images.gray_view import gray_to_mnist, ink_strength
from digitrec.images.photo import naive_photo_to_mnist, photo_stages, photo_to_mnist
from digitrec.synthetic.photos import (
    CONDITIONS,
    condition_generator,
    example_photos,
    render_photo,
    render_scene,
    scene_for,
)

SEED = 7


@pytest.fixture(scope="module")
def recognizer(tiny_checkpoint) -> Recognizer:
    return Recognizer.load(tiny_checkpoint)


def photo_of(mnist_test, index: int, condition: str = "clean") -> np.ndarray:
    return render_photo(mnist_test.images[index], condition, condition_generator(SEED, 0, index))


def first_of_digit(mnist_test, digit: int, skip: int = 0) -> int:
    return int(np.flatnonzero(mnist_test.labels == digit)[skip])


def save(path, rgb: np.ndarray, **options) -> str:
    Image.fromarray(rgb).save(path, **options)
    return str(path)


def run_predict(capsys, tiny_checkpoint, *argv):
    code = main(["predict", "--model", str(tiny_checkpoint), *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def predict_json(capsys, tiny_checkpoint, *paths) -> tuple[int, list[dict], str]:
    code, out, err = run_predict(capsys, tiny_checkpoint, "--json", *map(str, paths))
    return code, json.loads(out), err


def best_shifted_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two 28x28 images, allowing the 1-pixel shift that rounding the centre of mass can cause."""
    scores = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            shifted = np.roll(np.roll(a, dy, axis=0), dx, axis=1)
            scores.append(np.corrcoef(shifted.ravel().astype(float), b.ravel().astype(float))[0, 1])
    return max(scores)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with (almost) no pixel data after it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0\0")) + chunk(b"IEND", b"")


# ------------------------------------------------------------------------------------------- the pipeline itself


def deskewed_original(digit: np.ndarray) -> np.ndarray:
    """An MNIST digit with the pipeline's slant correction applied (a no-op for three quarters of them)."""
    return mnist_frame(deskew(tight_crop(np.where(digit >= 128, 255, 0).astype(np.uint8))))


@pytest.mark.parametrize("condition", ["clean", "blue-ink", "shadow", "ruled-paper", "grid-paper", "large-canvas"])
def test_a_photo_of_an_mnist_digit_comes_back_as_that_digit(mnist_test, condition):
    correlations = [
        best_shifted_correlation(
            photo_to_mnist(photo_of(mnist_test, index, condition)), deskewed_original(mnist_test.images[index])
        )
        for index in range(12)
    ]
    assert np.median(correlations) > 0.85 and min(correlations) > 0.6, np.round(correlations, 2)


def test_the_output_is_mnist_shaped_white_on_black_and_centred(mnist_test):
    digit = photo_to_mnist(photo_of(mnist_test, 0))
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    assert digit[0].max() == 0 and digit[:, 0].max() == 0  # black margins, white ink
    ys, xs = np.nonzero(digit)
    assert max(ys.max() - ys.min(), xs.max() - xs.min()) + 1 == 20  # MNIST's 20-pixel box
    moments = cv2.moments(digit.astype(np.float32))
    assert abs(moments["m10"] / moments["m00"] - 14) <= 0.5 and abs(moments["m01"] / moments["m00"] - 14) <= 0.5


def test_light_ink_on_dark_paper_gives_the_same_digit_as_dark_on_light(mnist_test):
    digit = mnist_test.images[3]
    dark_on_light = np.repeat(cv2.resize(255 - digit, (224, 224), interpolation=cv2.INTER_CUBIC)[:, :, None], 3, 2)
    light_on_dark = 255 - dark_on_light
    assert best_shifted_correlation(photo_to_mnist(dark_on_light), photo_to_mnist(light_on_dark)) > 0.95


def test_ink_is_found_in_the_colour_channel_where_it_stands_out(mnist_test):
    """Red ink on green paper of the same brightness is invisible in plain gray but not in the red channel."""
    coverage = cv2.resize(mnist_test.images[5], (224, 224), interpolation=cv2.INTER_CUBIC)[:, :, None] / 255.0
    paper, ink = np.float32([90, 150, 60]), np.float32([220, 60, 40])  # both about luminance 120
    photo = np.clip(paper * (1 - coverage) + ink * coverage, 0, 255).astype(np.uint8)
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    assert np.ptp(gray) < 40  # plain gray conversion loses the digit
    assert best_shifted_correlation(photo_to_mnist(photo), mnist_test.images[5]) > 0.85


@pytest.mark.parametrize("condition", ["ruled-paper", "grid-paper"])
def test_ruled_and_grid_lines_are_removed_from_the_binarized_stage(mnist_test, condition):
    for index in range(5):
        binary = photo_stages(photo_of(mnist_test, index, condition)).binary > 0
        edge = binary.shape[1] // 10
        assert not (binary[:, :edge].any(axis=1) & binary[:, -edge:].any(axis=1)).any(), index  # no row crosses
        edge = binary.shape[0] // 10
        assert not (binary[:edge].any(axis=0) & binary[-edge:].any(axis=0)).any(), index  # no column crosses


def test_ink_strength_runs_from_paper_to_the_ink_under_the_stroke():
    gray = np.array([[250, 150, 50, 30, 10]], np.uint8)  # paper at 250; the stroke's 5th percentile is 11
    stroke = np.array([[False, False, True, True, True]])
    strength = ink_strength(gray, stroke, paper_level=250.0)
    ink_level = np.percentile([50, 30, 10], 5)
    expected = np.clip((250.0 - gray[0]) / (250.0 - ink_level), 0, 1) * 255
    np.testing.assert_allclose(strength[0], expected, rtol=1e-5)
    assert strength[0, 0] == 0 and strength[0, -1] == 255 and 0 < strength[0, 1] < strength[0, 2]


def upscaled_on_paper(digit: np.ndarray, margin: int = 6) -> np.ndarray:
    """An MNIST digit three times as large, dark (0) on white paper (255), with a margin."""
    up = cv2.resize(digit, (84, 84), interpolation=cv2.INTER_LINEAR)
    return 255 - cv2.copyMakeBorder(up, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=0)


def test_the_gray_view_takes_no_ink_from_other_digits_and_follows_the_gray_levels(mnist_test):
    digit = mnist_test.images[first_of_digit(mnist_test, 3)]
    neighbour = mnist_test.images[first_of_digit(mnist_test, 1)]
    alone = upscaled_on_paper(digit)
    mask = np.where(alone < 128, 255, 0).astype(np.uint8)
    # the neighbour's ink runs into the digit's box from the right, up to its ink's soft rim but not onto its stroke
    shifted = (np.roll(upscaled_on_paper(neighbour), shift, axis=1) for shift in range(20, 96))
    neighbour_layer = next(layer for layer in shifted if not ((layer < 255) & (mask > 0)).any())
    with_neighbour = np.minimum(alone, neighbour_layer)
    others = np.where(neighbour_layer < 255, 255, 0).astype(np.uint8)
    assert (cv2.dilate(mask, np.ones((5, 5), np.uint8)) & others).any()  # within the 2 px rim
    none = np.zeros_like(mask)
    view = gray_to_mnist(alone, mask, others, 255.0)
    np.testing.assert_array_equal(gray_to_mnist(with_neighbour, mask, others, 255.0), view)
    # the neighbour's ink not marked as another digit's would be taken in where it is near the digit's ink
    assert not np.array_equal(gray_to_mnist(with_neighbour, mask, none, 255.0), gray_to_mnist(alone, mask, none, 255.0))
    # anti-aliased like MNIST (not only 0 and 255); ink half as dark reads the same (strength is relative to the ink's
    # own level), up to the rounding of the halved gray levels
    assert np.count_nonzero((view > 30) & (view < 225)) >= 20
    faint = 255 - (255 - alone) // 2
    assert np.abs(gray_to_mnist(faint, mask, others, 255.0).astype(int) - view).mean() < 1.0


def test_the_gray_view_of_ink_no_darker_than_the_paper_is_the_binarized_view(mnist_test):
    alone = upscaled_on_paper(mnist_test.images[0])
    mask = np.where(alone < 128, 255, 0).astype(np.uint8)
    # a paper level darker than all the ink (a degenerate line box): no ink strength, the mask is read instead
    view = gray_to_mnist(alone, mask, np.zeros_like(mask), paper_level=0.0)
    np.testing.assert_array_equal(view, mask_to_mnist(mask))


def test_mnist_constants_match_mnist_training_digits(mnist_train):
    """MNIST_SKEW_RANGE (quartiles) and MNIST_STROKE_RANGE_PX (5th/95th percentiles) come from training digits."""
    skews, widths = [], []
    for image in mnist_train.images[:300]:
        skews.append(moments_skew(tight_crop(np.where(image >= 128, 255, 0).astype(np.uint8))))
        binary = photo_stages(255 - image).binary
        widths.append(stroke_width_px(scale_to_box(tight_crop(binary), STROKE_BOX_PX)))
    np.testing.assert_allclose(np.percentile(skews, [25, 75]), MNIST_SKEW_RANGE, atol=0.08)
    np.testing.assert_allclose(np.percentile(widths, [5, 95]), MNIST_STROKE_RANGE_PX, rtol=0.12)


def test_thick_and_thin_pens_are_brought_to_mnist_stroke_width(mnist_test):
    for condition in ("thick-pen", "thin-pen"):
        cropped = photo_stages(photo_of(mnist_test, 2, condition)).cropped
        width = stroke_width_px(scale_to_box(cropped, STROKE_BOX_PX))
        low, high = MNIST_STROKE_RANGE_PX
        assert low - 2 <= width <= high + 2, (condition, width)


def test_deskew_straightens_a_slanted_bar_but_keeps_rows_so_6_stays_6():
    bar = np.zeros((100, 100), np.uint8)
    cv2.line(bar, (20, 95), (80, 5), 255, 9)  # leaning right by about 34 degrees
    straightened = deskew(bar)
    assert MNIST_SKEW_RANGE[0] - 0.05 <= moments_skew(straightened) <= MNIST_SKEW_RANGE[1] + 0.05
    # a shear moves pixels along their row: the ink per row (what tells a 6's low loop from a 9's high one) stays
    rows_before = np.count_nonzero(bar, axis=1)
    rows_after = np.count_nonzero(straightened, axis=1)
    assert abs(rows_after.argmax() - rows_before[rows_before > 0].argmax() - np.flatnonzero(rows_before)[0]) <= 3
    assert np.corrcoef(rows_before[np.flatnonzero(rows_before)[0] :][: len(rows_after)], rows_after)[0, 1] > 0.9


def test_rotated_sixes_and_nines_keep_their_identity(mnist_test, recognizer):
    for digit in (6, 9):
        indices = np.flatnonzero(mnist_test.labels == digit)[:10]
        photos = [render_photo(mnist_test.images[i], "rotation", condition_generator(SEED, 1, i)) for i in indices]
        read = [recognizer.predict(photo_to_mnist(photo)).digit for photo in photos]
        assert read.count(digit) >= 8, read


def test_naive_pipeline_is_the_reports_squeeze_to_28x28(mnist_test):
    photo = photo_of(mnist_test, 0, "large-canvas")
    naive = naive_photo_to_mnist(photo)
    assert naive.shape == (28, 28) and naive.dtype == np.uint8
    assert naive.mean() < 128  # inverted to white on black


# ------------------------------------------------------------------------------------ synthetic photos, accuracy


def test_synthetic_photos_are_seeded_and_named(mnist_test):
    digit = mnist_test.images[0]
    for index, condition in enumerate(CONDITIONS):
        first = render_photo(digit, condition, condition_generator(0, index, 0))
        again = render_photo(digit, condition, condition_generator(0, index, 0))
        assert first.dtype == np.uint8 and first.ndim == 3 and np.array_equal(first, again), condition
    with pytest.raises(DigitrecError, match="unknown photo condition 'foggy'"):
        scene_for("foggy", np.random.default_rng(0))


def test_tiny_model_reads_synthetic_photos_and_beats_the_naive_pipeline(mnist_test, recognizer):
    conditions = ["clean", "blue-ink", "shadow", "grid-paper", "large-canvas", "combined"]
    report = evaluate_photos(recognizer, mnist_test.images, mnist_test.labels, 40, seed=SEED, conditions=conditions)
    rows = report["rows"]
    assert len(report["test_indices"]) == 40 and set(rows) == {"mnist-original", *conditions}
    for condition in conditions:
        assert rows[condition]["ours"] >= 0.8, (condition, rows[condition])
    for condition in ("shadow", "grid-paper", "large-canvas"):
        assert rows[condition]["ours"] >= rows[condition]["naive"] + 0.3, (condition, rows[condition])


def test_examples_show_their_true_digit_in_the_name(mnist_test):
    examples = example_photos(mnist_test.images, mnist_test.labels, seed=0)
    assert 8 <= len(examples) <= 12
    for name, image in examples:
        assert name.startswith("photo-") and int(name.split("-")[1]) in range(10) and image.ndim == 3


# ---------------------------------------------------------------------------------------- files and the command


def test_every_supported_format_gives_the_same_digit(capsys, tiny_checkpoint, mnist_test, tmp_path, recognizer):
    photo = photo_of(mnist_test, first_of_digit(mnist_test, 3))
    paths = [save(tmp_path / f"three.{suffix}", photo) for suffix in ("png", "jpg", "bmp", "tif", "webp", "gif")]
    paths.append(save(tmp_path / "three.pdf", photo, resolution=72))
    code, rows, err = predict_json(capsys, tiny_checkpoint, *paths)
    assert code == 0, err
    assert [row["digit"] for row in rows] == [recognizer.predict(photo_to_mnist(photo)).digit] * 7, rows
    assert rows[-1]["page"] == 1 and all(row["error"] is None for row in rows)
    assert set(rows[0]) >= {"path", "digit", "confidence", "unsure", "error"}


def test_each_pdf_page_is_a_row(capsys, tiny_checkpoint, mnist_test, tmp_path):
    pages = [Image.fromarray(photo_of(mnist_test, first_of_digit(mnist_test, d))) for d in (0, 7)]
    path = tmp_path / "two-pages.pdf"
    pages[0].save(path, save_all=True, append_images=pages[1:], resolution=72)
    code, rows, _ = predict_json(capsys, tiny_checkpoint, path)
    assert code == 0 and [(row["page"], row["digit"]) for row in rows] == [(1, 0), (2, 7)]


def test_folders_are_searched_recursively_and_globs_expanded(capsys, tiny_checkpoint, mnist_test, tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    save(tmp_path / "a" / "one.png", photo_of(mnist_test, first_of_digit(mnist_test, 1)))
    save(tmp_path / "a" / "b" / "two.jpg", photo_of(mnist_test, first_of_digit(mnist_test, 2)))
    (tmp_path / "a" / "notes.txt").write_text("not searched: not an image suffix")
    code, rows, _ = predict_json(capsys, tiny_checkpoint, tmp_path / "a")
    assert code == 0 and [row["digit"] for row in rows] == [2, 1]  # a/b/two.jpg sorts before a/one.png
    code, rows, _ = predict_json(capsys, tiny_checkpoint, str(tmp_path / "a" / "**" / "*.jpg"))
    assert code == 0 and [row["path"].endswith("two.jpg") for row in rows] == [True]
    code, rows, err = predict_json(capsys, tiny_checkpoint, str(tmp_path / "nothing-*.png"))
    assert code == 2 and "no such file" in rows[0]["error"] and "no such file" in err


def test_table_csv_and_debug_strips(capsys, tiny_checkpoint, mnist_test, tmp_path):
    path = save(tmp_path / "seven.png", photo_of(mnist_test, first_of_digit(mnist_test, 7)))
    code, out, _ = run_predict(capsys, tiny_checkpoint, path, "--debug-dir", str(tmp_path / "debug"))
    header, row = out.splitlines()
    assert code == 0 and header.split() == ["path", "digit", "confidence", "unsure"]
    assert row.split()[:2] == [path, "7"] and 0 < float(row.split()[2]) <= 1
    strips = list((tmp_path / "debug").glob("*.png"))
    assert len(strips) == 1
    strip = cv2.imread(str(strips[0]))
    assert strip.shape[1] > 4 * strip.shape[0]  # five panels side by side
    code, out, _ = run_predict(capsys, tiny_checkpoint, "--csv", path)
    lines = out.splitlines()
    assert lines[0] == "path,page,digit,confidence,unsure,error,note" and lines[1].startswith(f"{path},,7,")


def test_recognizer_predict_on_a_path_uses_the_same_pipeline(capsys, tiny_checkpoint, mnist_test, tmp_path, recognizer):
    paths = [save(tmp_path / f"{i}.jpg", photo_of(mnist_test, i, "combined")) for i in range(6)]
    _, rows, _ = predict_json(capsys, tiny_checkpoint, *paths)
    for path, row in zip(paths, rows, strict=True):
        prediction = recognizer.predict(path)
        assert (prediction.digit, prediction.confidence) == (row["digit"], pytest.approx(row["confidence"]))
    from_pil = recognizer.predict(Image.open(paths[0]))
    assert from_pil.digit == rows[0]["digit"]


def test_exif_orientation_and_transparency_are_honoured(capsys, tiny_checkpoint, mnist_test, tmp_path):
    index = first_of_digit(mnist_test, 4)
    photo = Image.fromarray(photo_of(mnist_test, index))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the pixels are stored turned a quarter anticlockwise
    photo.rotate(90, expand=True).save(tmp_path / "phone.jpg", exif=exif)
    ink = 255 - cv2.resize(mnist_test.images[index], (224, 224), interpolation=cv2.INTER_CUBIC)
    rgba = np.zeros((224, 224, 4), np.uint8)  # transparent black everywhere, opaque black ink
    rgba[:, :, 3] = 255 - ink
    save(tmp_path / "sticker.png", rgba)
    code, rows, _ = predict_json(capsys, tiny_checkpoint, tmp_path / "phone.jpg", tmp_path / "sticker.png")
    assert code == 0 and [row["digit"] for row in rows] == [4, 4]


def test_sixteen_bit_png_and_cmyk_jpeg_read_like_their_8_bit_rgb_originals(mnist_test, tmp_path):
    photo = photo_of(mnist_test, 0)
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    Image.fromarray(photo).convert("CMYK").save(tmp_path / "print.jpg", quality=95)
    assert Image.open(tmp_path / "print.jpg").mode == "CMYK"
    reference = photo_to_mnist(gray)
    from digitrec.images.photo import photo_file_to_mnist

    assert best_shifted_correlation(photo_file_to_mnist(tmp_path / "deep.png"), reference) > 0.97
    assert best_shifted_correlation(photo_file_to_mnist(tmp_path / "print.jpg"), reference) > 0.9


def test_animated_gif_uses_the_first_frame_and_says_so(capsys, tiny_checkpoint, mnist_test, tmp_path):
    frames = [Image.fromarray(photo_of(mnist_test, first_of_digit(mnist_test, d))) for d in (5, 1, 2)]
    frames[0].save(tmp_path / "blink.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    code, rows, err = predict_json(capsys, tiny_checkpoint, tmp_path / "blink.gif")
    assert code == 0 and rows[0]["digit"] == 5
    assert "first frame" in rows[0]["note"] and "3 frames" in rows[0]["note"] and "first frame" in err


def bad_inputs(tmp_path, mnist_test) -> dict[str, tuple[str, str]]:
    """name -> (path, expected message part), each written for real."""
    cases = {}
    (tmp_path / "notes.png").write_text("shopping list: milk, eggs")
    cases["not an image"] = (tmp_path / "notes.png", "not a readable image")
    (tmp_path / "empty.jpg").write_bytes(b"")
    cases["empty file"] = (tmp_path / "empty.jpg", "empty file")
    Image.fromarray(photo_of(mnist_test, 0)).save(tmp_path / "whole.jpg", quality=90)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    cases["truncated JPEG"] = (tmp_path / "cut.jpg", "truncated or damaged JPEG")
    (tmp_path / "zero.png").write_bytes(png_header_only(0, 0))
    cases["0x0 image"] = (tmp_path / "zero.png", "empty image (0x0 pixels)")
    Image.new("L", (1, 1), 255).save(tmp_path / "dot.png")
    cases["1x1 image"] = (tmp_path / "dot.png", "too small to hold a digit (1x1 pixels")
    (tmp_path / "huge.png").write_bytes(png_header_only(20_000, 20_000))
    cases["huge image"] = (tmp_path / "huge.png", "-pixel limit")
    blank = render_scene(
        np.zeros((28, 28), np.uint8), scene_for("combined", np.random.default_rng(3)), np.random.default_rng(3)
    )
    cases["blank page"] = (save(tmp_path / "blank.jpg", blank), "no digit found")
    pair = np.hstack(
        [mnist_test.images[first_of_digit(mnist_test, 4)], mnist_test.images[first_of_digit(mnist_test, 2)]]
    )
    two_digits = 255 - cv2.resize(pair, (448, 224), interpolation=cv2.INTER_CUBIC)
    cases["several digits"] = (save(tmp_path / "42.png", two_digits), "several digits")
    cases["missing file"] = (tmp_path / "nowhere.png", "no such file")
    return cases  # fmt: skip


def test_bad_inputs_each_get_a_clear_message_the_batch_goes_on_and_exits_2(
    capsys, tiny_checkpoint, mnist_test, tmp_path
):
    cases = bad_inputs(tmp_path, mnist_test)
    good = save(tmp_path / "good.png", photo_of(mnist_test, first_of_digit(mnist_test, 8)))
    paths = [path for path, _ in cases.values()]
    code, rows, err = predict_json(capsys, tiny_checkpoint, paths[0], good, *paths[1:])
    assert code == 2
    assert rows[1]["digit"] == 8 and rows[1]["error"] is None  # the batch went on past the first failure
    failed = [rows[0], *rows[2:]]
    for (name, (path, message)), row in zip(cases.items(), failed, strict=True):
        assert row["digit"] is None and message in row["error"] and str(path) in row["error"], (name, row)
    error_lines = [line for line in err.splitlines() if line.startswith("digitrec: error:")]
    assert len(error_lines) == len(cases) and "several digits" in err and "digitrec read" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("name", ["not an image", "truncated JPEG", "0x0 image", "huge image", "blank page"])
def test_each_bad_input_alone_exits_2_with_one_line(capsys, tiny_checkpoint, mnist_test, tmp_path, name):
    path, message = bad_inputs(tmp_path, mnist_test)[name]
    code, out, err = run_predict(capsys, tiny_checkpoint, str(path))
    assert code == 2 and err.count("\n") == 1 and message in err and message in out


def test_the_pixel_limit_is_checked_from_the_header_before_decoding(tmp_path, recognizer):
    side = int(MAX_IMAGE_PIXELS**0.5) + 10
    (tmp_path / "big.png").write_bytes(png_header_only(side, side))  # no pixel data: decoding would fail differently
    with pytest.raises(DigitrecError, match=f"image of {side}x{side} pixels is over the"):
        recognizer.predict(tmp_path / "big.png")
