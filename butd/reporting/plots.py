"""The report's figures: learning curves and best scores, one colour per configuration."""

from __future__ import annotations

import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from butd.reporting.runs import RunGroup  # noqa: E402


def _curve(config: RunGroup, key: str) -> tuple[list[int], list[float], list[float], list[float]]:
    """Epochs (1-based), mean, min and max over the configuration's runs of `key` per epoch."""
    by_epoch: dict[int, list[float]] = {}
    for run in config.runs:
        for row in run.history:
            if row.get(key) is not None:
                by_epoch.setdefault(int(row["epoch"]), []).append(float(row[key]))
    epochs = sorted(by_epoch)
    values = [by_epoch[e] for e in epochs]
    return (
        [e + 1 for e in epochs],
        [statistics.fmean(v) for v in values],
        [min(v) for v in values],
        [max(v) for v in values],
    )


def plot_curves(configs: list[RunGroup], labels: list[str], path: Path, *, title: str) -> None:
    """val/score per epoch: the mean over seeds as a line, the range over seeds shaded."""
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    last = 1
    for config, name in zip(configs, labels, strict=True):
        epochs, mean, low, high = _curve(config, "val/score")
        last = max([last, *epochs])
        (line,) = ax.plot(epochs, mean, marker="o", markersize=3, label=f"{name} (n={len(config.runs)})")
        if len(config.runs) > 1:
            ax.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("epoch")
    ax.set_xlim(0.5, last + 0.5)  # whole epochs, also for a one-epoch sweep
    if last <= 20:
        ax.set_xticks(range(1, last + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("val/score (%)")
    ax.set_title(f"{title}\nvalidation score per epoch (line: mean over seeds, band: min-max)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_scores(configs: list[RunGroup], labels: list[str], path: Path, *, title: str) -> None:
    """Best val/score per configuration: mean over seeds, error bar one std, seeds as dots."""
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.5 * len(configs)), layout="constrained")
    ys = list(range(len(configs)))[::-1]
    for y, config in zip(ys, configs, strict=True):
        mean, std = config.mean_std("val/score")
        ax.barh(y, mean, xerr=std or 0.0, color="tab:blue", alpha=0.6, capsize=4)
        ax.scatter(config.values("val/score"), [y] * len(config.runs), color="black", s=10, zorder=3)
        text = f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "")
        ax.text(mean / 2, y, text, va="center", ha="center", fontsize=8)
    ax.set_yticks(ys, labels, fontsize=8)
    ax.set_xlabel("best val/score (%)")
    ax.set_title(f"{title}\nbest validation score (bar: mean over seeds, dots: seeds)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_diagnostics(configs: list[RunGroup], labels: list[str], path: Path, *, title: str) -> None:
    """Per answer type (columns), the validation share of questions answered with the question
    type's most frequent training answer (top row) and with an answer the type has at all (bottom
    row), per epoch: mean over seeds, one line per configuration."""
    types = {"yes_no": "yes/no", "number": "number", "other": "other"}
    rows = {"prior_top": "most frequent answer (%)", "prior_support": "an answer of the type (%)"}
    fig, axes = plt.subplots(len(rows), len(types), figsize=(11, 6), layout="constrained", squeeze=False)
    for r, (name, ylabel) in enumerate(rows.items()):
        for col, (key, type_label) in enumerate(types.items()):
            ax = axes[r][col]
            for config, text in zip(configs, labels, strict=True):
                epochs, mean, _, _ = _curve(config, f"val/diag/{name}/{key}")
                if epochs:
                    ax.plot(epochs, mean, marker="o", markersize=2, label=text)
            ax.set_ylim(-3, 103)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            if r == 0:
                ax.set_title(type_label, fontsize=9)
            if col == 0:
                ax.set_ylabel(ylabel, fontsize=8)
            if r == len(rows) - 1:
                ax.set_xlabel("epoch")
    handles, names = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, fontsize=7, loc="outside lower center", ncols=min(len(names), 5))
    fig.suptitle(f"{title}\nvalidation questions answered with the prior (mean over seeds)", fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)
