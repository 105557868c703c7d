"""The reader's piece model (digitrec.reading.pieces, digitrec.training.pieces): its two views of a piece, the labels it
learns from, and the shipped model on pieces of strips of MNIST *test* digits (it was trained on training digits
only)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from digitrec import Recognizer
from digitrec.cli import main
from digitrec.errors import DigitrecError
from digitrec.inference.recognizer import load_piece_scorer
from digitrec.model_files import resolve_model_path
from digitrec.reading.cuts import candidate_pieces
from digitrec.reading.lines import LineInk
from digitrec.reading.pieces import CONTEXT_DIGIT_PX, CONTEXT_OTHER_INK, NOT_A_DIGIT, context_view
from digitrec.synthetic.strips import render_strip, strip_generator
from digitrec.training.checkpoint import load_model
from digitrec.training.pieces import (
    IGNORED,
    TRAINING_CONDITIONS,
    balanced,
    evaluate_pieces,
    labelled_pieces,
    piece_dataset,
    piece_label,
)


def two_bars_line(height: int = 56) -> LineInk:
    """A line of two upright bars, each `height` tall and 8 px wide, with a 20 px gap."""
    mask = np.zeros((height, 40), np.uint8)
    mask[:, 2:10] = 255
    mask[:, 30:38] = 255
    return LineInk(mask, 0, 0, float(height), float(height))


def test_context_view_shows_the_piece_bright_and_its_neighbours_dim_at_the_line_scale():
    line = two_bars_line()
    piece = np.zeros((56, 20), np.uint8)
    piece[:, 2:10] = 255  # the left bar, as the piece between columns 0 and 20
    view = context_view(line, piece, left_column=0)
    assert view.shape == (28, 28) and view.dtype == np.uint8
    # the line's height H (56 px) is CONTEXT_DIGIT_PX tall in the view: the bar's rows
    bright_rows = np.flatnonzero((view > 200).any(axis=1))
    assert abs(len(bright_rows) - CONTEXT_DIGIT_PX) <= 1
    # the bar is centred; the right bar (28 px = 7 view px to its right, at 0.25 view px per working px) is dim
    bright_columns = np.flatnonzero((view > 200).any(axis=0))
    assert abs((bright_columns[0] + bright_columns[-1]) / 2 - 13.5) <= 1
    dim = (view > CONTEXT_OTHER_INK // 2) & (view < 200)
    assert dim[:, 16:].any() and not dim[:, :12].any()


def test_context_view_of_a_piece_at_the_line_edge_is_padded_with_paper():
    line = two_bars_line()
    piece = np.zeros((56, 10), np.uint8)
    piece[:, 2:10] = 255
    view = context_view(line, piece, left_column=0)
    assert not view[:, :6].any(), "left of the line there is no ink"


@pytest.mark.parametrize(
    ("owned", "totals", "expected"),
    [
        ([0] * 95 + [1] * 3, [100, 100], 3),  # 95% of digit 0 with 3% foreign ink: digit "3" (the text's first)
        ([0] * 60, [100, 100], NOT_A_DIGIT),  # 60% of a digit: a part
        ([0] * 100 + [1] * 100, [100, 100], NOT_A_DIGIT),  # two whole digits
        ([0] * 80, [100, 100], IGNORED),  # 80%: too close to call
        ([0] * 100 + [1] * 12, [100, 12], NOT_A_DIGIT),  # a whole thin "1" run into it: 11% of the ink, all of a digit
        ([0] * 100 + [1] * 8, [100, 100], 3),  # a whole digit and 8% of its neighbour (where a cut through ink falls)
        ([0] * 100 + [1] * 18, [100, 100], IGNORED),  # 18% of the neighbour: neither one digit nor clearly two
        ([-1] * 50, [100, 100], NOT_A_DIGIT),  # ink of no digit
    ],
)
def test_piece_labels_follow_the_share_rules(owned, totals, expected):
    assert piece_label(np.array(owned), np.array(totals), "38") == expected


def test_balanced_keeps_every_digit_and_at_most_three_others_each():
    classes = np.array([NOT_A_DIGIT] * 50 + [4, 7])
    kept = balanced(classes, np.random.default_rng(0))
    assert set(classes[kept][classes[kept] != NOT_A_DIGIT]) == {4, 7}
    assert (classes[kept] == NOT_A_DIGIT).sum() == 6 and list(kept) == sorted(kept)


def test_pieces_of_a_real_strip_are_labelled_with_its_digits(mnist_test):
    """Two MNIST test digits apart on clean paper: the reader's pieces include each digit whole, labelled with it,
    and pieces that are not one whole digit."""
    rng = strip_generator(5, 2, 0.0, 0, 0)
    picks = rng.choice(len(mnist_test.labels), 2, replace=False)
    strip = render_strip(mnist_test.images[picks], mnist_test.labels[picks], "clean", 0.0, rng)
    inputs, classes = labelled_pieces(strip)
    assert inputs.shape[1:] == (2, 28, 28) and len(inputs) == len(classes)
    assert {int(d) for d in strip.text} <= set(classes.tolist())
    assert (classes == NOT_A_DIGIT).any()


@pytest.fixture(scope="module")
def test_pieces(mnist_test):
    """Labelled pieces of 60 strips of MNIST test digits (lengths 2-6, 0-100% touching, the photo conditions)."""
    return piece_dataset(mnist_test.images, mnist_test.labels, 60, TRAINING_CONDITIONS, seed=2026)


def test_shipped_piece_model_tells_whole_digits_from_the_rest_on_test_digits(test_pieces):
    model, metadata = load_model(resolve_model_path("piece-scorer"))
    scores = evaluate_pieces(model, *test_pieces)
    assert scores["pieces"] > 1000
    # measured: 98.0% of the whole digits kept, 98.9% of the other pieces rejected (13,383 pieces, the reader's
    # slanted cuts included; before them: 97.4% / 99.3% of 5,291; the model trained on 3,000 strips with the earlier
    # labels: 95.9% / 98.9%)
    assert scores["whole_digits_kept"] >= 0.95 and scores["not_digits_rejected"] >= 0.98


def test_a_classifier_is_not_a_piece_model():
    with pytest.raises(DigitrecError, match="not a piece model"):
        load_piece_scorer(resolve_model_path("default"))


def test_reading_with_or_without_the_piece_model(mnist_test):
    rng = strip_generator(6, 4, 0.0, 0, 0)
    picks = rng.choice(len(mnist_test.labels), 4, replace=False)
    strip = render_strip(mnist_test.images[picks], mnist_test.labels[picks], "clean", 0.0, rng)
    with_model = Recognizer.load()
    without = Recognizer.load(pieces=None)
    assert with_model.piece_scorer is not None and without.piece_scorer is None
    assert with_model.read(strip.image).text == strip.text == without.read(strip.image).text


def test_cli_read_with_a_missing_piece_model_is_a_one_line_error(tmp_path, capsys):
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    assert main(["read", str(image), "--pieces", str(tmp_path / "nope.safetensors")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "nope.safetensors" in error[0]


def test_candidate_pieces_of_a_line_are_between_its_cuts():
    line = two_bars_line()
    candidates = candidate_pieces(line)
    columns = [cut.column for cut in candidates.cuts]
    assert columns == sorted(columns)
    for i, j in candidates.pieces:
        assert i < j


def test_piece_model_command_trains_a_loadable_model_and_caches_its_pieces(tmp_path, capsys, mnist_dir):
    out, cache = tmp_path / "pieces.safetensors", tmp_path / "cache"
    args = ["piece-model", "--strips", "6", "--validation-strips", "3", "--epochs", "1", "--out", str(out),
            "--cache", str(cache), "--data-dir", str(mnist_dir), "--json"]  # fmt: skip
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["checkpoint"] == str(out) and report["pieces"] > 0
    assert sorted(p.name.split("-")[0] for p in cache.glob("*.npz")) == ["train", "validation"]
    scorer = load_piece_scorer(out)  # a piece model, loadable without running code
    line = two_bars_line()
    candidates = candidate_pieces(line)
    scores = scorer(line, candidates, list(candidates.pieces))
    assert scores.shape == (len(candidates.pieces),) and (scores <= 0).all()
    before = {p: p.stat().st_mtime_ns for p in cache.glob("*.npz")}
    assert main(args) == 0, "a rerun trains from the cached pieces"
    assert {p: p.stat().st_mtime_ns for p in cache.glob("*.npz")} == before


def test_piece_model_command_refuses_an_empty_run_in_one_line(tmp_path, capsys):
    out = tmp_path / "pieces.safetensors"
    assert main(["piece-model", "--strips", "0", "--out", str(out), "--cache", str(tmp_path / "cache")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == ["digitrec: error: training strips must be at least 1, got 0"] and not out.exists()
