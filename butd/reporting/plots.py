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
    """Epochs (0-based, as in checkpoint names, logs and metrics.json), mean, min and max over the
    configuration's runs of `key` per epoch."""
    by_epoch: dict[int, list[float]] = {}
    for run in config.runs:
        for row in run.history:
            if row.get(key) is not None:
                by_epoch.setdefault(int(row["epoch"]), []).append(float(row[key]))
    epochs = sorted(by_epoch)
    values = [by_epoch[e] for e in epochs]
    return (
        epochs,
        [statistics.fmean(v) for v in values],
        [min(v) for v in values],
        [max(v) for v in values],
    )


def plot_curves(configs: list[RunGroup], labels: list[str], path: Path, *, title: str) -> None:
    """val/score per epoch: the mean over seeds as a line, the range over seeds shaded."""
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    last = 0
    for config, name in zip(configs, labels, strict=True):
        epochs, mean, low, high = _curve(config, "val/score")
        last = max([last, *epochs])
        (line,) = ax.plot(epochs, mean, marker="o", markersize=3, label=f"{name} (n={len(config.runs)})")
        if len(config.runs) > 1:
            ax.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("epoch (0-based, as in checkpoint names and metrics.json)")
    ax.set_xlim(-0.5, last + 0.5)  # whole epochs, also for a one-epoch sweep
    if last < 20:
        ax.set_xticks(range(0, last + 1))
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
