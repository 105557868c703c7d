"""How well the photo pipeline and a model read photo-like digits, condition by condition."""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from digitrec.errors import DigitrecError
from digitrec.images.photo import naive_photo_to_mnist, photo_to_mnist
from digitrec.mnist import IMAGE_SIZE
from digitrec.synthetic.photos import CONDITIONS, condition_generator, pick_test_digits, render_photo


def pipeline_inputs(photos: list[np.ndarray], size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ours, naive, refused): both pipelines' digits; where ours refuses (no or several digits), a blank."""
    ours, naive, refused = [], [], []
    for photo in photos:
        try:
            ours.append(photo_to_mnist(photo, size))
            refused.append(False)
        except DigitrecError:
            ours.append(np.zeros((size, size), np.uint8))
            refused.append(True)
        naive.append(naive_photo_to_mnist(photo, size))
    return np.stack(ours), np.stack(naive), np.array(refused)


def predicted_digits(recognizer, images: np.ndarray) -> np.ndarray:
    return np.array([prediction.digit for prediction in recognizer.predict(images)])


def evaluate_photos(
    recognizer,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    per_condition: int,
    seed: int = 0,
    conditions: list[str] | None = None,
    progress: bool = False,
) -> dict:
    """Accuracy of `recognizer` on `per_condition` photos of MNIST test digits per condition, read through our
    photo pipeline and through the report's naive one. The same digits are drawn for every condition; a photo our
    pipeline refuses (no digit / several digits found) counts as wrong.
    """
    conditions = list(CONDITIONS) if conditions is None else conditions
    unknown = [condition for condition in conditions if condition not in CONDITIONS]
    if unknown:
        raise DigitrecError(f"unknown photo conditions {unknown}; known: {', '.join(CONDITIONS)}")
    picks = pick_test_digits(per_condition, len(test_labels), seed)
    labels = test_labels[picks]
    rows = {"mnist-original": {"ours": accuracy(predicted_digits(recognizer, test_images[picks]), labels)}}
    for condition in tqdm(conditions, desc="photo conditions", disable=not progress):
        condition_index = list(CONDITIONS).index(condition)
        photos = [
            render_photo(test_images[index], condition, condition_generator(seed, condition_index, k))
            for k, index in enumerate(picks)
        ]
        ours, naive, refused = pipeline_inputs(photos, recognizer.image_size)
        ours_correct = (predicted_digits(recognizer, ours) == labels) & ~refused
        rows[condition] = {
            "description": CONDITIONS[condition][0],
            "ours": float(ours_correct.mean()),
            "naive": accuracy(predicted_digits(recognizer, naive), labels),
            "ours_refused": float(refused.mean()),
        }
    return {"images_per_condition": per_condition, "seed": seed, "test_indices": picks.tolist(), "rows": rows}


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    return float((predicted == labels).mean())
