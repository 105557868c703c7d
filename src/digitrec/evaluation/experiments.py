"""Experiment grids: the report's eight cases over seeds, classical baselines, statistics, tables and plots.

Each finished run is written as JSON (config, history, summary, test predictions) and skipped on rerun, so a
grid can be built up over several sittings; an unfinished run resumes from its cached checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats
from tqdm import tqdm

from digitrec.data.datasets import MNIST, load_split, training_and_validation
from digitrec.errors import DigitrecError
from digitrec.evaluation.baselines import BASELINES
from digitrec.evaluation.report import predict_logits
from digitrec.evaluation.tables import FIGURES, comparison_figure, learning_curve_figure, table_csv, table_markdown
from digitrec.fileio import save_figure_atomic, write_json_atomic, write_text_atomic
from digitrec.models.registry import PAPER_CASES, paper_case_name
from digitrec.training.checkpoint import load_model
from digitrec.training.config import TrainConfig
from digitrec.training.loop import fit, load_test_tensors

log = logging.getLogger(__name__)


CONFIDENCE_LEVEL = 0.95
PAPER_EPOCHS = 20
REFERENCE_CASE = 1  # every case is tested against case 1 (McNemar)
VALIDATION_SIZE = 5000
# The report's table (section 5): min/max train accuracy, min/max validation accuracy, test accuracy, in %.
# Cases 5-8 were trained without validation data, so those two columns are empty there.
PAPER_TABLE = {
    1: (99.46, 97.83, 99.85, 98.61, 98.61),
    2: (88.00, 95.02, 99.70, 98.60, 98.69),
    3: (89.13, 95.14, 99.62, 98.49, 98.17),
    4: (85.24, 99.51, 94.82, 98.26, 98.40),
    5: (91.07, None, 99.47, None, 98.82),
    6: (89.43, None, 99.45, None, 98.71),
    7: (90.52, None, 99.33, None, 98.82),
    8: (87.77, None, 99.22, None, 98.37),
}


@dataclass
class GridConfig:
    """A grid of paper cases x seeds (+ baselines); saved beside its results."""

    cases: list[int] = field(default_factory=lambda: list(PAPER_CASES))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    epochs: int = PAPER_EPOCHS
    train_subset: int = 0
    test_subset: int = 0
    baselines: list[str] = field(default_factory=lambda: ["knn", "svm", "random-forest", "mlp"])

    def __post_init__(self) -> None:
        unknown = [c for c in self.cases if c not in PAPER_CASES]
        if unknown:
            raise DigitrecError(f"unknown paper case(s) {unknown}; cases are 1-8")
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise DigitrecError(f"unknown baseline(s) {unknown}; known: {', '.join(BASELINES)}")
        if not self.seeds:
            raise DigitrecError("at least one seed is needed")

    @property
    def validation_size(self) -> int:
        """5,000 of the 60,000 training images; a tenth of a training subset."""
        return self.train_subset // 10 if self.train_subset else VALIDATION_SIZE

    def train_config(self, case: int, seed: int) -> TrainConfig:
        return TrainConfig.for_model(
            paper_case_name(case), epochs=self.epochs, seed=seed, validation_size=self.validation_size,
            train_subset=self.train_subset, test_subset=self.test_subset,
        )  # fmt: skip


def mean_std_ci(values: list[float], level: float = CONFIDENCE_LEVEL) -> dict:
    """Mean, sample std and a Student-t confidence interval of the mean (half-width 0 for one value)."""
    array = np.asarray(values, dtype=float)
    mean = float(array.mean())
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    half = float(stats.t.ppf(0.5 + level / 2, len(array) - 1) * std / math.sqrt(len(array))) if len(array) > 1 else 0
    return {"mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "n": len(array)}


def mcnemar_exact_p(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Exact (binomial) McNemar test on paired per-example correctness; 1.0 when they never disagree."""
    only_a = int((correct_a & ~correct_b).sum())
    only_b = int((~correct_a & correct_b).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def run_key(case: int, seed: int) -> str:
    return f"{paper_case_name(case)}-seed{seed}"


def run_cnn(grid: GridConfig, case: int, seed: int, out_dir: Path, cache_dir: Path, data_dir) -> dict:
    """One paper case, one seed: trained (or resumed) in the cache, recorded as runs/KEY.json."""
    record_path = out_dir / "runs" / f"{run_key(case, seed)}.json"
    config = grid.train_config(case, seed)
    if record_path.exists():
        record = json.loads(record_path.read_text())
        if config.matches(record["config"]):
            return record
    run_dir = cache_dir / run_key(case, seed)
    resume = (run_dir / "checkpoint.safetensors").exists()
    result = fit(config, run_dir, data_dir=data_dir, resume=resume, progress=False)
    model, _ = load_model(result.checkpoint_path)
    test_inputs, _ = load_test_tensors(config, data_dir)
    predictions = predict_logits(model, test_inputs).argmax(1).numpy()
    record = {
        "kind": "cnn",
        "name": paper_case_name(case),
        "case": case,
        "seed": seed,
        "config": config.to_dict(),
        "history": [dataclasses.asdict(r) for r in result.history],
        "summary": result.summary,
        "test_predictions": "".join(map(str, predictions.tolist())),
    }
    write_json_atomic(record_path, record)
    return record


def run_baseline(grid: GridConfig, name: str, seed: int, out_dir: Path, data_dir) -> dict:
    record_path = out_dir / "runs" / f"{name}-seed{seed}.json"
    settings = {"train_subset": grid.train_subset, "test_subset": grid.test_subset, "seed": seed}
    if record_path.exists():
        record = json.loads(record_path.read_text())
        if record["settings"] == settings:
            return record
    # the same training part as the CNNs' (subset, then seeded validation split)
    train_split, _ = training_and_validation(MNIST, data_dir, seed, grid.validation_size, grid.train_subset)
    test_split = load_split("test", data_dir)
    if grid.test_subset:
        test_split = test_split.subset(np.arange(grid.test_subset))
    baseline = BASELINES[name]
    estimator = baseline.build(seed)
    features_train = baseline.features(train_split.images)
    started = time.perf_counter()
    estimator.fit(features_train, train_split.labels)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    predictions = estimator.predict(baseline.features(test_split.images))
    predict_seconds = time.perf_counter() - started
    record = {
        "kind": "baseline",
        "name": name,
        "seed": seed,
        "settings": settings,
        "description": baseline.description,
        "summary": {
            "test_accuracy": float((predictions == test_split.labels).mean()),
            "fit_seconds": fit_seconds,
            "predict_seconds": predict_seconds,
            "train_images": len(train_split),
        },
        "test_predictions": "".join(map(str, predictions.tolist())),
    }
    write_json_atomic(record_path, record)
    return record


def recorded_runs(grid: GridConfig, out_dir: Path) -> list[dict]:
    """The runs of this grid already recorded in OUT/runs (matching config), without running anything."""
    records = []
    for seed in grid.seeds:
        for case in grid.cases:
            path = out_dir / "runs" / f"{run_key(case, seed)}.json"
            if path.exists() and grid.train_config(case, seed).matches(json.loads(path.read_text())["config"]):
                records.append(json.loads(path.read_text()))
        for name in grid.baselines:
            path = out_dir / "runs" / f"{name}-seed{seed}.json"
            if path.exists():
                records.append(json.loads(path.read_text()))
    return records


def run_grid(
    grid: GridConfig,
    out_dir: Path,
    cache_dir: Path,
    data_dir=None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> tuple[list[dict], list[str]]:
    """Run every (case, seed) and (baseline, seed) not yet recorded; failures are logged and skipped."""
    jobs = []  # seed-major: an unfinished grid already covers every case and baseline with its first seeds
    for seed in grid.seeds:
        jobs += [("cnn", case, seed) for case in grid.cases] + [("baseline", name, seed) for name in grid.baselines]
    write_json_atomic(out_dir / "grid.json", dataclasses.asdict(grid))
    records, failures = [], []
    bar = tqdm(total=len(jobs), unit="run", desc="grid")
    for kind, what, seed in jobs:
        label = run_key(what, seed) if kind == "cnn" else f"{what}-seed{seed}"
        bar.set_postfix_str(label)
        try:
            if kind == "cnn":
                records.append(run_cnn(grid, what, seed, out_dir, cache_dir, data_dir))
            else:
                records.append(run_baseline(grid, what, seed, out_dir, data_dir))
        except DigitrecError:
            raise  # bad data or config: every run would fail the same way
        except Exception as exc:  # a failed run is reported and the grid goes on
            log.error("run %s failed: %s: %s", label, type(exc).__name__, exc)
            failures.append(f"{label}: {type(exc).__name__}: {exc}")
        bar.update(1)
        if on_progress:
            on_progress(label, bar.n, len(jobs))
    bar.close()
    return records, failures


def summarize(records: list[dict], test_labels: np.ndarray) -> list[dict]:
    """One row per case / baseline: our figures over seeds (mean, std, CI) and McNemar p vs case 1."""
    by_name: dict[str, list[dict]] = {}
    for record in records:
        by_name.setdefault(record["name"], []).append(record)
    reference = {r["seed"]: r for r in by_name.get(paper_case_name(REFERENCE_CASE), [])}
    rows = []
    for name, runs in by_name.items():
        runs = sorted(runs, key=lambda r: r["seed"])
        row = {"name": name, "kind": runs[0]["kind"], "seeds": [r["seed"] for r in runs]}
        for figure in FIGURES:
            values = [r["summary"][figure] * 100 for r in runs if r["summary"].get(figure) is not None]
            if values:
                row[figure] = mean_std_ci(values)
        p_values = []
        for run in runs:
            ref = reference.get(run["seed"])
            if ref is not None and ref is not run and len(ref["test_predictions"]) == len(run["test_predictions"]):
                labels = test_labels[: len(run["test_predictions"])]
                p_values.append(mcnemar_exact_p(correct_mask(run, labels), correct_mask(ref, labels)))
        row["mcnemar_p_per_seed"] = p_values
        row["mcnemar_p"] = float(np.median(p_values)) if p_values else None
        if runs[0]["kind"] == "cnn":
            row["case"] = runs[0]["case"]
            row["paper"] = dict(zip(FIGURES, PAPER_TABLE[runs[0]["case"]], strict=True))
            row["epochs"] = runs[0]["config"]["epochs"]
        else:
            row["description"] = runs[0]["description"]
            row["fit_seconds"] = mean_std_ci([r["summary"]["fit_seconds"] for r in runs])
            row["predict_seconds"] = mean_std_ci([r["summary"]["predict_seconds"] for r in runs])
        rows.append(row)
    return sorted(rows, key=lambda r: (r["kind"] != "cnn", r.get("case", 0), r["name"]))


def correct_mask(record: dict, labels: np.ndarray) -> np.ndarray:
    predictions = np.frombuffer(record["test_predictions"].encode(), dtype=np.uint8) - ord("0")
    return predictions == labels


def write_report(records: list[dict], out_dir: Path, test_labels: np.ndarray, command: str) -> list[dict]:
    """table.md / table.csv / summary.json, one learning-curve PNG per case, the comparison PNG."""
    rows = summarize(records, test_labels)
    header = f"<!-- generated by: {command} -->\n\n"
    write_text_atomic(out_dir / "table.md", header + table_markdown(rows))
    write_text_atomic(out_dir / "table.csv", table_csv(rows))
    write_json_atomic(out_dir / "summary.json", {"command": command, "rows": rows})
    for row in (r for r in rows if r["kind"] == "cnn"):
        runs = [r for r in records if r["name"] == row["name"]]
        figure = learning_curve_figure(runs, f"{row['name']} ({len(runs)} seeds)")
        save_figure_atomic(figure, out_dir / f"curves-{row['name']}.png")
    if rows:
        save_figure_atomic(comparison_figure(rows), out_dir / "test-accuracy.png")
    return rows
