"""The reader's line model (digitrec.reading.line_model, digitrec.training.lines): its input, CTC decoding and
likelihood against torch's, the synthetic lines it learns from, a short training run that resumes and exports, and
the shipped model on lines of MNIST *test* digits (it was trained on training digits only)."""

from __future__ import annotations

import dataclasses
import json
import re

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from digitrec import Recognizer
from digitrec.cli import main
from digitrec.errors import DigitrecError
from digitrec.inference.recognizer import load_line_model
from digitrec.mnist import TUNING_START, WHITE
from digitrec.model_files import LINE_GRU_MODEL, LINE_MODELS, SHIPPED_LINE_MODEL, SHIPPED_LINE_MODELS
from digitrec.models.registry import build_model
from digitrec.reading.line_model import (
    BLANK,
    LINE_CLASSES,
    LINE_DIGIT_PX,
    LINE_INPUT_HEIGHT,
    LINE_WIDTH_STEP,
    best_path,
    digit_spans,
    line_input,
    text_log_likelihood,
)
from digitrec.reading.lines import MIN_DIGIT_HEIGHT_PX, lines_of_ink
from digitrec.synthetic.cheque_fields import cheque_field
from digitrec.synthetic.line_masks import LINE_STYLES, synthetic_line
from digitrec.training.config import LINE_STYLE_NAMES, LineTrainConfig
from digitrec.training.lines import (
    BLOCK_SEED_STRIDE,
    CHECKPOINT_FILE,
    ONNX_FILE,
    PLAIN_SEED_OFFSET,
    LineSet,
    as_the_reader_sees_it,
    drawing_key,
    evaluate_lines,
    export_line_onnx,
    make_line_model,
    make_lines,
    train_line_model,
)


def test_a_line_is_scaled_to_the_digit_height_and_centred():
    mask = np.zeros((60, 90), np.uint8)
    mask[10:50, 5:25] = WHITE  # a block 40 tall: H = 40
    x = line_input(mask, 40.0)
    assert x.shape[0] == LINE_INPUT_HEIGHT and x.shape[1] % LINE_WIDTH_STEP == 0
    rows = np.flatnonzero(x.max(axis=1) > 0.5)
    assert abs(len(rows) - LINE_DIGIT_PX) <= 1  # 40 px -> 20 px
    assert abs(rows.mean() - LINE_INPUT_HEIGHT / 2) <= 1  # centred on its ink


def test_best_path_merges_repeats_and_drops_blanks():
    steps = [BLANK, 3, 3, BLANK, 3, 0, 0, BLANK]
    log_probs = np.log(np.full((len(steps), LINE_CLASSES), 0.01))
    log_probs[np.arange(len(steps)), steps] = np.log(0.9)
    text, probability = best_path(log_probs)
    assert text == "330"
    assert probability == pytest.approx(0.9 ** len(steps), rel=1e-6)


@pytest.mark.parametrize("text", ["", "7", "11", "4005", "123456"])
def test_ctc_likelihood_is_torchs(text):
    generator = torch.Generator().manual_seed(len(text))
    log_probs = torch.log_softmax(torch.randn(16, LINE_CLASSES, generator=generator), dim=1)
    targets = torch.tensor([int(ch) for ch in text], dtype=torch.long)
    expected = -F.ctc_loss(log_probs[:, None], targets[None] if len(text) else torch.zeros(1, 0, dtype=torch.long),
                           torch.tensor([16]), torch.tensor([len(text)]), blank=BLANK, reduction="sum")  # fmt: skip
    assert text_log_likelihood(log_probs.numpy(), text) == pytest.approx(float(expected), abs=1e-4)


def test_a_text_longer_than_the_line_allows_is_impossible():
    log_probs = np.log(np.full((3, LINE_CLASSES), 1 / LINE_CLASSES))
    assert text_log_likelihood(log_probs, "111") == -np.inf  # repeats need a blank between them: 5 steps


def test_digit_spans_cover_the_line_left_to_right():
    steps = [BLANK] * 3 + [5] * 4 + [BLANK] * 2 + [2] * 3 + [BLANK] * 4
    log_probs = np.log(np.full((len(steps), LINE_CLASSES), 0.01))
    log_probs[np.arange(len(steps)), steps] = np.log(0.9)
    spans = digit_spans(log_probs, 40.0, 120)
    assert [s[0] for s in spans] == [5, 2]
    assert spans[0][2] == 0 and spans[-1][3] == 120 and spans[0][3] == spans[1][2]
    assert all(s[1] == pytest.approx(0.9) for s in spans)


def test_synthetic_lines_are_seeded_and_labelled(mnist_train):
    images, labels = mnist_train.images[:2000], mnist_train.labels[:2000]
    first = [synthetic_line(images, labels, np.random.default_rng(5), "latin") for _ in range(3)]
    again = [synthetic_line(images, labels, np.random.default_rng(5), "latin") for _ in range(3)]
    for a, b in zip(first, again, strict=True):
        assert a.text == b.text and np.array_equal(a.mask, b.mask)
    lines = [synthetic_line(images, labels, np.random.default_rng(seed), "latin") for seed in range(200)]
    assert all(line.text.isdigit() and line.mask.dtype == np.uint8 for line in lines if line.text)
    lengths = {len(line.text) for line in lines}
    assert min(lengths) <= 2 and max(lengths) >= 8  # short and long numbers
    assert {ch for line in lines for ch in line.text} == set("0123456789")


def test_each_named_style_draws_its_own_lines(mnist_train):
    assert set(LINE_STYLES) == set(LINE_STYLE_NAMES)
    images, labels = mnist_train.images[:2000], mnist_train.labels[:2000]
    sevens = images[labels == 7][:40], labels[labels == 7][:40]
    basic = [synthetic_line(*sevens, np.random.default_rng(seed), "basic") for seed in range(30)]
    latin = [synthetic_line(*sevens, np.random.default_rng(seed), "latin") for seed in range(30)]
    assert all(a.text == b.text for a, b in zip(basic, latin, strict=True))  # the same digits ...
    assert sum(not np.array_equal(a.mask, b.mask) for a, b in zip(basic, latin, strict=True)) >= 10  # crossed 7s
    with pytest.raises(DigitrecError, match="unknown line styles"):
        LineTrainConfig(styles="gothic")
    with pytest.raises(DigitrecError, match="scanned share"):
        LineTrainConfig(scanned_share=1.5)


def test_amount_lines_are_often_round_sums_with_their_zeros_drawn(mnist_train):
    """Lines in the "amounts" style: some are round sums (1-3 leading digits, the first not 0, then zeros), far
    more than chance makes in the random digits of "latin" lines."""
    images, labels = mnist_train.images[:3000], mnist_train.labels[:3000]
    round_sum = re.compile(r"[1-9][0-9]{0,2}0{2,}")  # random digits: about 1 line in 100
    lines = [synthetic_line(images, labels, np.random.default_rng(seed), "amounts") for seed in range(300)]
    round_sums = [line for line in lines if round_sum.fullmatch(line.text)]
    assert len(round_sums) >= 60  # measured: 102 of 300
    assert all(line.mask.shape[1] > len(line.text) * 0.3 * line.height for line in round_sums), "each zero drawn"
    latin = [synthetic_line(images, labels, np.random.default_rng(seed), "latin") for seed in range(300)]
    assert sum(bool(round_sum.fullmatch(line.text)) for line in latin) <= 10  # measured: 0


def test_a_line_scanned_as_a_cheque_field_is_found_again_by_the_readers_ink_stage(mnist_train):
    """The field is gray paper with a texture and gray ink, sized as a scan; the reader's ink stage finds the line
    in it (as one line over the digits' columns) in most fields, and what it finds is not the drawn mask:
    binarization breaks and thickens strokes and keeps pattern specks."""
    images, labels = mnist_train.images[:3000], mnist_train.labels[:3000]
    rng, found, differs, heights = np.random.default_rng(11), 0, 0, []
    for _ in range(30):
        line = synthetic_line(images, labels, rng, "latin")
        scan, (first, end) = cheque_field(line.mask, line.height, rng)
        assert scan.dtype == np.uint8 and scan.ndim == 2 and 0 <= first < end <= scan.shape[1]
        paper = scan[:, :first] if first >= 2 else scan[:2]
        assert paper.mean() > 120 and paper.std() > 1  # light, textured paper (grain at least)
        found += lines_of_ink(scan) is not None
        seen = as_the_reader_sees_it(line, np.random.default_rng(rng.integers(1 << 30)))
        if seen is not None:
            mask, height = seen
            heights.append(height)
            assert MIN_DIGIT_HEIGHT_PX <= height <= mask.shape[0]
            resized = cv2.resize(line.mask, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_AREA) > 127
            differs += (resized != (mask > 0)).mean() > 0.02
    assert found >= 27  # measured: 30 of 30
    assert len(heights) >= 15  # measured: 21 of 30 kept whole by the ink stage
    assert differs >= len(heights) // 2  # measured: all 21


def test_scanned_lines_are_seeded_and_change_the_inputs(mnist_train):
    images, labels = mnist_train.images[:3000], mnist_train.labels[:3000]
    scanned = make_lines(images, labels, 20, seed=4, scanned_share=1.0)
    again = make_lines(images, labels, 20, seed=4, scanned_share=1.0)
    drawn = make_lines(images, labels, 20, seed=4)
    assert scanned.texts == again.texts and np.array_equal(scanned.columns, again.columns)
    assert not np.array_equal(scanned.widths, drawn.widths) or not np.array_equal(scanned.columns, drawn.columns)


def test_lines_are_drawn_in_processes_cached_and_read_back(tmp_path, mnist_dir):
    """`make_line_model` draws the missing cache blocks (two processes here), trains, and a rerun neither draws
    nor trains again: the same blocks, untouched, the same history."""
    config = LineTrainConfig(training_lines=120, validation_lines=20, epochs=1, batch_size=32, scanned_share=0.5)
    torch.set_num_threads(2)
    first = make_line_model(config, tmp_path / "run", tmp_path / "cache", data_dir=mnist_dir, drawing_workers=2)
    blocks = {path.name: path.stat().st_mtime_ns for path in (tmp_path / "cache").iterdir()}
    assert len(blocks) == 2 and any(name.startswith("validation-20-") for name in blocks)
    again = make_line_model(config, tmp_path / "run", tmp_path / "cache", data_dir=mnist_dir, drawing_workers=2)
    assert {path.name: path.stat().st_mtime_ns for path in (tmp_path / "cache").iterdir()} == blocks
    assert again["history"] == first["history"]


def test_plain_lines_are_drawn_unscanned_in_their_own_blocks_and_learnt_with_the_others(tmp_path, mnist_dir):
    """`plain_lines`: a block of its own, drawn in `plain_styles` and never scanned, with generators seeded apart
    from the training lines'; the model trains on both (a checkpoint made without them is another config)."""
    config = LineTrainConfig(training_lines=40, validation_lines=10, epochs=1, batch_size=32, seed=2,
                             scanned_share=1.0, plain_lines=30, plain_styles="latin")  # fmt: skip
    torch.set_num_threads(2)
    make_line_model(config, tmp_path / "run", tmp_path / "cache", data_dir=mnist_dir)
    names = sorted(path.name for path in (tmp_path / "cache").iterdir())
    plain_key = drawing_key(dataclasses.replace(config, styles="latin", scanned_share=0.0))
    assert names[:2] == ["lines-0-40-seed2-" + drawing_key(config) + ".npz", f"plain-lines-0-30-seed2-{plain_key}.npz"]
    from digitrec.data.datasets import load_split

    train = load_split("train", mnist_dir)
    drawn = make_lines(train.images[:TUNING_START], train.labels[:TUNING_START], 30,
                       seed=2 * BLOCK_SEED_STRIDE + PLAIN_SEED_OFFSET, styles="latin")  # fmt: skip
    plain = LineSet.load(tmp_path / "cache" / names[1])
    assert plain.texts == drawn.texts and np.array_equal(plain.columns, drawn.columns)
    with pytest.raises(DigitrecError, match="plain lines"):
        LineTrainConfig(plain_lines=-1)
    with pytest.raises(DigitrecError, match="another config"):
        make_line_model(dataclasses.replace(config, plain_lines=0), tmp_path / "run", tmp_path / "cache",
                        data_dir=mnist_dir)  # fmt: skip


def test_training_resumes_after_its_last_epoch_and_exports_the_same_model(tmp_path, mnist_train):
    images, labels = mnist_train.images[:3000], mnist_train.labels[:3000]
    training, validation = make_lines(images, labels, 256, seed=1), make_lines(images, labels, 64, seed=2)
    config = LineTrainConfig(training_lines=256, validation_lines=64, epochs=2, batch_size=32)
    torch.set_num_threads(2)
    first = train_line_model(config, training, validation, tmp_path / "run")
    assert [r["epoch"] for r in first["history"]] == [1, 2]
    again = train_line_model(config, training, validation, tmp_path / "run")  # nothing left to train
    assert again["history"] == first["history"]
    with pytest.raises(DigitrecError, match="another config"):
        train_line_model(LineTrainConfig(training_lines=256, validation_lines=64, epochs=3, batch_size=32),
                         training, validation, tmp_path / "run")  # fmt: skip
    read_lines = load_line_model(tmp_path / "run" / ONNX_FILE)
    batch, *_ = training.batch(np.arange(4))
    from digitrec.training.checkpoint import read_checkpoint

    tensors, metadata = read_checkpoint(tmp_path / "run" / CHECKPOINT_FILE)
    assert metadata["line_config"]["epochs"] == 2
    onnx_log_probs = read_lines(batch.numpy())
    assert onnx_log_probs.shape == (4, batch.shape[-1] // LINE_WIDTH_STEP, LINE_CLASSES)
    assert np.allclose(np.exp(onnx_log_probs).sum(axis=2), 1, atol=1e-4)


def test_fine_tuning_starts_from_the_given_checkpoint(tmp_path, mnist_train):
    """`init`: the model starts from another run's weights (its first-epoch loss far below a fresh start's), and
    a file that is not a line model's checkpoint is a one-line error."""
    images, labels = mnist_train.images[:3000], mnist_train.labels[:3000]
    training, validation = make_lines(images, labels, 256, seed=1), make_lines(images, labels, 64, seed=2)
    torch.set_num_threads(2)
    config = LineTrainConfig(training_lines=256, validation_lines=64, epochs=3, batch_size=32)
    trained = train_line_model(config, training, validation, tmp_path / "base")
    fresh = train_line_model(dataclasses.replace(config, epochs=1), training, validation, tmp_path / "fresh")
    tuned_config = dataclasses.replace(config, epochs=1, init=str(tmp_path / "base" / CHECKPOINT_FILE))
    tuned = train_line_model(tuned_config, training, validation, tmp_path / "tuned")
    assert tuned["history"][0]["train_loss"] < 0.8 * fresh["history"][0]["train_loss"]
    assert tuned["history"][0]["train_loss"] < trained["history"][0]["train_loss"]
    with pytest.raises(DigitrecError, match="no such line model checkpoint"):
        train_line_model(dataclasses.replace(tuned_config, init=str(tmp_path / "missing.safetensors")),
                         training, validation, tmp_path / "other")  # fmt: skip


@pytest.fixture(scope="module")
def test_digit_lines(mnist_test):
    """300 synthetic lines of MNIST test digits (the model learnt from training digits only)."""
    return make_lines(mnist_test.images, mnist_test.labels, 300, seed=2026)


@pytest.mark.parametrize("name", SHIPPED_LINE_MODELS)
def test_shipped_line_models_read_lines_of_test_digits(test_digit_lines, name):
    from digitrec.inference.backends import load_network
    from digitrec.training.lines import LineSet

    network = load_network(name)
    assert isinstance(test_digit_lines, LineSet)

    class OnnxAsTorch(torch.nn.Module):  # evaluate_lines runs a torch module
        def forward(self, x):
            return torch.from_numpy(network.logits(x.numpy()))

    scores = evaluate_lines(OnnxAsTorch(), test_digit_lines)
    # measured: line-reader-mixed 89.0% of these 300 drawn latin-style lines exact, line-reader-amounts-mixft 86.3%,
    # line-reader-amounts 84.7%, line-reader-amounts-ft 84.0%
    # (their validation lines, amounts-style and 80% scanned: 74.7% and 74.2%, their model cards)
    assert scores["exact"] >= 0.8


def test_a_classifier_is_not_a_line_model():
    with pytest.raises(DigitrecError, match="not a line model"):
        load_line_model("default")


@pytest.mark.parametrize("lines", ["{missing}", "line-reader-amounts,{missing}", " , "])
def test_cli_read_with_a_missing_line_model_is_a_one_line_error(tmp_path, capsys, lines):
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    missing = str(tmp_path / "nope.onnx")
    assert main(["read", str(image), "--lines", lines.format(missing=missing)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and ("nope.onnx" in error[0] or "no line model" in error[0])


def test_several_line_models_pool_their_views(mnist_test):
    """`--lines A,B`: each line is read by each model, at each view scale; one model named twice reads as it alone
    does (the pooled beliefs are its own, averaged twice); the shipped pool's belief is the mean of its models'."""
    from digitrec.reading import reader
    from digitrec.synthetic.strips import render_strip, strip_generator

    rng = strip_generator(9, 5, 0.3, 0, 0)
    picks = rng.choice(len(mnist_test.labels), 5, replace=False)
    strip = render_strip(mnist_test.images[picks], mnist_test.labels[picks], "clean", 0.3, rng)
    found = reader.lines_of_ink(strip.image)
    line = found.lines[0][0]
    one = Recognizer.load(lines=SHIPPED_LINE_MODELS[0]).line_models
    shipped = Recognizer.load().line_models
    assert len(shipped) == len(SHIPPED_LINE_MODELS) > 1
    single, twice = reader.line_model_views(one, line), reader.line_model_views(one * 2, line)
    pooled = reader.line_model_views(shipped, line)
    assert len(single.log_probs) == len(reader.LINE_VIEW_SCALES)
    assert len(pooled.log_probs) == len(shipped) * len(single.log_probs)
    assert twice.best() == single.best() and twice.belief(single.best()) == pytest.approx(single.belief(single.best()))
    each = [reader.line_model_views([model], line).belief(strip.text) for model in shipped]
    assert pooled.belief(strip.text) == pytest.approx(np.mean(each))


def test_reading_with_the_line_model_on_and_off(mnist_test):
    from digitrec.synthetic.strips import render_strip, strip_generator

    rng = strip_generator(7, 4, 0.0, 0, 0)
    picks = rng.choice(len(mnist_test.labels), 4, replace=False)
    strip = render_strip(mnist_test.images[picks], mnist_test.labels[picks], "clean", 0.0, rng)
    with_lines, without = Recognizer.load(), Recognizer.load(lines=None)
    assert len(with_lines.line_models) == len(SHIPPED_LINE_MODELS) and without.line_models == []
    assert with_lines.read(strip.image).text == strip.text == without.read(strip.image).text
    assert json.loads(json.dumps(with_lines.load_arguments))["lines"] == SHIPPED_LINE_MODEL


def test_numbers_with_flagged_ones_are_read_whole_with_the_line_model(mnist_test):
    """The failure mode of real cheques: a 1 written with a long flag (Europe, Latin America) is cut into "1 1" or
    read as 4 or 7 by the cut reader alone. Fixture: 4-digit numbers of MNIST test digits, two of them flagged 1s
    (synthetic.styles), 30% touching, photographed clean."""
    from digitrec.synthetic.strips import render_strip, strip_generator
    from digitrec.synthetic.styles import with_flagged_ones

    ones, others = np.flatnonzero(mnist_test.labels == 1), np.flatnonzero(mnist_test.labels != 1)
    with_lines, without = Recognizer.load(), Recognizer.load(lines=None)
    right_with = right_without = 0
    count = 24
    for index in range(count):
        rng = strip_generator(11, 4, 0.3, index, 0)
        picks = np.concatenate([rng.choice(ones, 2), rng.choice(others, 2)])
        rng.shuffle(picks)
        digits = with_flagged_ones(mnist_test.images[picks], mnist_test.labels[picks], 1.0, rng)
        strip = render_strip(digits, mnist_test.labels[picks], "clean", 0.3, rng)
        right_with += with_lines.read(strip.image).text.replace(" ", "") == strip.text
        right_without += without.read(strip.image).text.replace(" ", "") == strip.text
    # measured on 40 such numbers: 34 read right with the line model, 10 without
    assert right_with >= 0.75 * count and right_with >= right_without + count // 4


def test_an_overruling_digit_is_boxed_to_its_ink_not_its_columns():
    from digitrec.reading.reader import ink_box

    mask = np.zeros((30, 100), np.uint8)
    mask[5:25, 10:20] = WHITE  # a digit at columns 10-19, rows 5-24, then blank up to the span's end
    assert ink_box(mask, 0, 60) == (5, 25, 10, 20)
    assert ink_box(mask, 60, 100) == (0, 30, 60, 100)  # no ink: the span as it is


def steps_log_probs(*steps: dict[int, float]) -> np.ndarray:
    """(T, LINE_CLASSES) log-probs: each step's given class probabilities, the rest of its mass spread thinly."""
    probabilities = np.full((len(steps), LINE_CLASSES), 1e-12)
    for row, classes in zip(probabilities, steps, strict=True):
        for label, probability in classes.items():
            row[label] = probability
    return np.log(probabilities / probabilities.sum(axis=1, keepdims=True))


def test_settles_only_when_no_other_reading_can_come_within_the_margin():
    """The best reading "12" holds 98% of the line's probability: 1 - 98% alone could be one rival within the
    margin (log(0.98 / 0.02) < 4), but the views' one-step alternatives "152" and "172" hold nearly all of the rest,
    1% each (each more than SETTLE_MARGIN below), so no other reading can stand; with "152" at 10% it can."""
    from digitrec.reading.reader import SETTLE_MARGIN, LineModelViews

    three_way = steps_log_probs({1: 1.0}, {BLANK: 0.98, 5: 0.01, 7: 0.01}, {2: 1.0})
    views = LineModelViews([three_way], {"12": []})
    assert np.log(0.98 / 0.02) < SETTLE_MARGIN < np.log(0.98 / 0.01)
    assert views.best() == "12" and set(views.alternatives("12")) >= {"152", "172"}
    assert views.settles("12")
    rival = LineModelViews([steps_log_probs({1: 1.0}, {BLANK: 0.9, 5: 0.1}, {2: 1.0})], {"12": []})
    assert not rival.settles("12")
    assert not LineModelViews([three_way], {"": []}).settles("")


def cut_probabilities(*pieces: dict[int, float]) -> np.ndarray:
    """The classifier's probabilities of a line's cut pieces: each piece's given classes, the rest spread evenly."""
    rows = []
    for classes in pieces:
        row = np.full(10, (1 - sum(classes.values())) / (10 - len(classes)))
        row[list(classes)] = list(classes.values())
        rows.append(row)
    return np.array(rows)


def test_the_reading_is_chosen_by_the_line_models_and_the_classifier_together():
    """The line models believe "12" 2.2 log-units more than "72". Where the classifier is sure of its 7 (99% against
    0.1% for a 1, 0.5 x 6.9 log-units), the cut digits stand; where it hesitates (60% / 40%), "12" is read. A
    reading of another length needs LINE_MODEL_MARGIN over the cut digits, the classifier having no say."""
    from digitrec.reading.reader import CLASSIFIER_WEIGHT, COMBINED_MARGIN, LINE_MODEL_MARGIN, LineModelViews

    views = LineModelViews([steps_log_probs({1: 0.9, 7: 0.1}, {BLANK: 1.0}, {2: 1.0})], {"12": []})
    assert views.belief("12") - views.belief("72") > LINE_MODEL_MARGIN - 1 > COMBINED_MARGIN
    sure_seven = cut_probabilities({7: 0.99, 1: 0.001}, {2: 0.99})
    assert CLASSIFIER_WEIGHT * np.log(0.99 / 0.001) > views.belief("12") - views.belief("72")
    assert views.combined_reading("12", sure_seven) == "72"
    assert views.combined_reading("12", cut_probabilities({7: 0.6, 1: 0.4}, {2: 0.99})) == "12"
    assert views.combined_reading("", sure_seven) == "72"  # no reading of the line models: the cut digits
    cut_in_three = cut_probabilities({1: 0.9}, {1: 0.9}, {2: 0.99})  # "112": a flagged 1 cut in two
    assert views.belief("12") - views.belief("112") >= LINE_MODEL_MARGIN
    assert views.combined_reading("12", cut_in_three) == "12"
    halves = steps_log_probs({1: 1.0}, {1: 0.5, BLANK: 0.5}, {1: 0.5, BLANK: 0.5}, {2: 1.0})  # "112": 1 path of 4
    unsure = LineModelViews([halves], {"12": []})
    assert abs(unsure.belief("12") - unsure.belief("112")) < LINE_MODEL_MARGIN
    assert unsure.combined_reading("12", cut_in_three) == "112"


def test_a_line_the_line_model_settles_reads_as_if_it_had_been_cut(mnist_test, monkeypatch):
    """`LineModelViews.settles` skips cutting a line only where the line models are so sure that cutting it would
    not change the answer: strips of MNIST test digits (every reading condition, 30% touching) read the same digits
    with the shortcut and without."""
    from digitrec.reading import reader
    from digitrec.synthetic.strips import READING_CONDITIONS, evaluation_strip

    recognizer = Recognizer.load()
    strips = [
        evaluation_strip(mnist_test.images, mnist_test.labels, 4, 0.3, list(READING_CONDITIONS), 31, index)
        for index in range(12)
    ]
    settled, settles = [], reader.LineModelViews.settles

    def recording(self, best):
        settled.append(settles(self, best))
        return settled[-1]

    monkeypatch.setattr(reader.LineModelViews, "settles", recording)
    shortcut = [recognizer.read(strip.image) for strip in strips]
    monkeypatch.setattr(reader.LineModelViews, "settles", lambda self, best: False)
    cut = [recognizer.read(strip.image) for strip in strips]
    assert 0 < sum(settled) < len(settled)  # some lines settled, some cut
    assert [r.text.replace(" ", "") for r in shortcut] == [r.text.replace(" ", "") for r in cut]
    for reading, strip in zip(shortcut, strips, strict=True):
        height, width = strip.image.shape[:2]
        for digit in reading.digits:
            x, y, w, h = digit.box
            assert x >= 0 and x + w <= width and y >= 0 and y + h <= height and 0 <= digit.confidence <= 1


@pytest.mark.parametrize("architecture", LINE_MODELS)
def test_line_architectures_see_the_line_as_far_as_they_should_and_export_to_onnx(architecture, tmp_path):
    """LineNet's steps see ~36 columns around them; the GRU's see the whole line. Both export with any width."""
    torch.manual_seed(0)
    model = build_model(architecture, num_classes=LINE_CLASSES).eval()
    line = torch.rand(1, 1, 40, 400, requires_grad=True)
    log_probs = model(line)
    assert log_probs.shape == (1, 100, LINE_CLASSES)
    log_probs[0, :10].sum().backward()  # the first 10 steps (40 columns): what do they depend on?
    far_right = line.grad[..., 120:].abs().max().item()
    assert (far_right > 0) == (architecture == LINE_GRU_MODEL)
    card = {"config": {"model": architecture}, "num_classes": LINE_CLASSES, "image_size": LINE_INPUT_HEIGHT}
    path = export_line_onnx(model, tmp_path / "line.onnx", card)
    inputs = torch.rand(2, 1, 40, 96)
    with torch.no_grad():
        assert np.allclose(load_line_model(path)(inputs.numpy()), model(inputs).numpy(), atol=1e-4)
