"""The experiment harness: statistics on known values, a smoke grid on real MNIST, caching, failures."""

import json

import numpy as np
import pytest

from digitrec.cli import main
from digitrec.errors import DigitrecError
from digitrec.evaluation import baselines, experiments


def test_mean_std_ci_on_known_values():
    stat = experiments.mean_std_ci([98.0, 98.5, 99.0])
    assert stat["mean"] == pytest.approx(98.5) and stat["std"] == pytest.approx(0.5)
    # t(0.975, 2) = 4.303: half-width 4.303 * 0.5 / sqrt(3) = 1.242
    assert stat["ci_high"] - stat["mean"] == pytest.approx(1.242, abs=1e-3)
    assert experiments.mean_std_ci([97.0])["ci_low"] == 97.0


def test_mcnemar_exact_p_on_known_counts():
    a = np.array([True] * 10 + [False] * 2 + [True] * 88)
    b = np.array([False] * 10 + [True] * 2 + [True] * 88)
    # 10 vs 2 discordant pairs: two-sided binomial p = 2 * P(X <= 2 | n=12, 0.5) = 2 * 79 / 4096
    assert experiments.mcnemar_exact_p(a, b) == pytest.approx(2 * 79 / 4096)
    assert experiments.mcnemar_exact_p(a, a) == 1.0


SMOKE = ["experiments", "paper", "--epochs", "1", "--subset", "1500", "--seeds", "1", "--cases", "1,5",
         "--baselines", "knn"]  # fmt: skip


def test_smoke_grid_writes_the_table_and_reuses_finished_runs(tmp_path, mnist_dir, capsys):
    out = tmp_path / "paper"
    argv = [*SMOKE, "--out", str(out), "--data-dir", str(mnist_dir), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    names = [row["name"] for row in result["rows"]]
    assert names == ["paper-case1", "paper-case5", "knn"]

    table = (out / "table.md").read_text()
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| case | epochs | seeds |") and "McNemar p vs case 1" in lines[0]
    case_rows = [line for line in lines if line.split("|")[1].strip() in {"1", "5"}]
    assert len(case_rows) == 2 and "98.61 / " in case_rows[0] and "98.82 / " in case_rows[1]
    assert any("k-nearest neighbours" in line for line in lines)
    csv_lines = (out / "table.csv").read_text().splitlines()
    assert csv_lines[0].startswith("name,kind,seeds") and len(csv_lines) == 4
    for name in ("curves-paper-case1.png", "curves-paper-case5.png", "test-accuracy.png"):
        assert (out / name).stat().st_size > 1000
    run = json.loads((out / "runs" / "paper-case5-seed0.json").read_text())
    assert run["config"]["rotation_deg"] == 10.0 and len(run["test_predictions"]) == 10_000
    assert len(run["history"]) == 1

    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()}
    assert main(argv) == 0  # everything cached: nothing retrained, records untouched
    capsys.readouterr()
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()} == stamps

    (out / "table.md").unlink()
    assert main([*argv, "--report-only", "--seeds", "2"]) == 0  # seed 1 not run: only what is recorded
    assert json.loads(capsys.readouterr().out)["rows"][0]["seeds"] == [0]
    assert (out / "table.md").exists()


def test_a_failing_run_is_reported_and_the_grid_goes_on(tmp_path, mnist_dir, monkeypatch):
    broken = baselines.Baseline("always fails", lambda seed: 1 / 0, baselines.flat_unit_pixels)
    monkeypatch.setitem(baselines.BASELINES, "broken", broken)
    grid = experiments.GridConfig(cases=[], seeds=[0], train_subset=1000, baselines=["broken", "knn"])
    records, failures = experiments.run_grid(grid, tmp_path, tmp_path / "cache", data_dir=mnist_dir)
    assert [r["name"] for r in records] == ["knn"]
    assert len(failures) == 1 and "ZeroDivisionError" in failures[0]


def test_unknown_cases_and_baselines_are_refused():
    with pytest.raises(DigitrecError, match="cases are 1-8"):
        experiments.GridConfig(cases=[9])
    with pytest.raises(DigitrecError, match="unknown baseline"):
        experiments.GridConfig(baselines=["xgboost"])
