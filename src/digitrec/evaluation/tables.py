"""The grid's tables (Markdown, CSV) and figures (learning curves, the comparison)."""

from __future__ import annotations

from matplotlib.figure import Figure

FIGURES = ("min_train_accuracy", "min_validation_accuracy", "max_train_accuracy", "max_validation_accuracy",
           "test_accuracy")  # fmt: skip


def fmt_stat(stat: dict | None) -> str:
    if not stat:
        return "–"
    return f"{stat['mean']:.2f} ± {stat['std']:.2f}" if stat["n"] > 1 else f"{stat['mean']:.2f}"


def fmt_paper(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def fmt_p(p: float | None) -> str:
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def table_markdown(rows: list[dict]) -> str:
    lines = [
        "| case | epochs | seeds | min train % (paper / ours) | min val % | max train % | max val % "
        "| test % (paper / ours) | test 95% CI | McNemar p vs case 1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in (r for r in rows if r["kind"] == "cnn"):
        cells = [f"{fmt_paper(row['paper'][f])} / {fmt_stat(row.get(f))}" for f in FIGURES]
        test = row["test_accuracy"]
        ci = f"[{test['ci_low']:.2f}, {test['ci_high']:.2f}]"
        lines.append(
            f"| {row['case']} | {row['epochs']} | {len(row['seeds'])} | " + " | ".join(cells[:4])
            + f" | {cells[4]} | {ci} | {fmt_p(row['mcnemar_p'])} |"
        )  # fmt: skip
    baselines = [r for r in rows if r["kind"] == "baseline"]
    if baselines:
        lines += ["", "| classical baseline | seeds | test % | test 95% CI | fit s | predict s (test set) "
                      "| McNemar p vs case 1 |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for row in baselines:
            test = row["test_accuracy"]
            lines.append(
                f"| {row['description']} | {len(row['seeds'])} | {fmt_stat(test)} | "
                f"[{test['ci_low']:.2f}, {test['ci_high']:.2f}] | {row['fit_seconds']['mean']:.1f} | "
                f"{row['predict_seconds']['mean']:.1f} | {fmt_p(row['mcnemar_p'])} |"
            )
    return "\n".join(lines) + "\n"


def table_csv(rows: list[dict]) -> str:
    header = ["name", "kind", "seeds"] + [f"paper_{f}" for f in FIGURES]
    header += [f"{f}_{s}" for f in FIGURES for s in ("mean", "std", "ci_low", "ci_high")]
    header += ["mcnemar_p_vs_case1", "fit_seconds", "predict_seconds"]
    lines = [",".join(header)]
    for row in rows:
        paper = row.get("paper", {})
        cells = [row["name"], row["kind"], " ".join(map(str, row["seeds"]))]
        cells += ["" if paper.get(f) is None else f"{paper[f]}" for f in FIGURES]
        for figure in FIGURES:
            stat = row.get(figure)
            cells += [f"{stat[s]:.4f}" if stat else "" for s in ("mean", "std", "ci_low", "ci_high")]
        cells.append("" if row["mcnemar_p"] is None else f"{row['mcnemar_p']:.6g}")
        for key in ("fit_seconds", "predict_seconds"):
            cells.append(f"{row[key]['mean']:.3f}" if key in row else "")
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def learning_curve_figure(runs: list[dict], title: str) -> Figure:
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    for run in sorted(runs, key=lambda r: r["seed"]):
        epochs = [h["epoch"] for h in run["history"]]
        (line,) = axes.plot(epochs, [h["train_accuracy"] * 100 for h in run["history"]], label=f"train s{run['seed']}")
        validation = [h["validation_accuracy"] for h in run["history"]]
        if all(v is not None for v in validation):
            axes.plot(epochs, [v * 100 for v in validation], "--", color=line.get_color(), label=f"val s{run['seed']}")
    axes.set_xlabel("epoch")
    axes.set_ylabel("accuracy %")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, ncol=2)
    return figure


def comparison_figure(rows: list[dict]) -> Figure:
    figure = Figure(figsize=(8, 4))
    axes = figure.add_subplot()
    names = [r["name"].replace("paper-", "") for r in rows]
    means = [r["test_accuracy"]["mean"] for r in rows]
    errors = [r["test_accuracy"]["mean"] - r["test_accuracy"]["ci_low"] for r in rows]
    axes.bar(range(len(rows)), means, yerr=errors, capsize=4, color="tab:blue", label="ours (mean, 95% CI)")
    paper = [r.get("paper", {}).get("test_accuracy") for r in rows]
    xs = [i for i, p in enumerate(paper) if p is not None]
    axes.scatter(xs, [paper[i] for i in xs], color="tab:red", zorder=3, label="report")
    axes.set_xticks(range(len(rows)), names, rotation=30, ha="right")
    axes.set_ylim(min(means + [p for p in paper if p]) - 1, 100)
    axes.set_ylabel("test accuracy %")
    axes.legend()
    axes.grid(axis="y", alpha=0.3)
    return figure
