"""The report's figures: learning curves and best scores, one colour per configuration."""

from __future__ import annotations

import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from butd.reporting.runs import RunGroup  # noqa: E402

#: the learning-curve panels, where the runs logged them: (metric, panel title)
PANELS = (
    ("val/score", "val/score (soft score, all questions)"),
    ("val/vqa_acc/yes_no", "yes/no (official accuracy)"),
    ("val/vqa_acc/number", "number (official accuracy)"),
    ("val/vqa_acc/other", "other (official accuracy)"),
)


def _curve(config: RunGroup, key: str) -> tuple[list[int], list[float], list[float], list[float]]:
    """Epochs (0-based, as metrics.json and checkpoint names count), mean, min and max over the
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


def converged_epoch(config: RunGroup) -> int | None:
    """The epoch by which every run of the configuration had converged; None if one did not."""
    epochs = [r.convergence["converged_epoch"] for r in config.runs]
    if not epochs or any(e is None for e in epochs):
        return None
    return max(int(e) for e in epochs)


def _style(i: int) -> dict[str, object]:
    """A colour (tab20's 20) and, past 10 rows, a dashed line, so that 11+ rows stay apart."""
    return {"color": plt.get_cmap("tab20")(i % 20), "linestyle": "-" if i < 10 else "--"}


def plot_curves(configs: list[RunGroup], labels: list[str], path: Path, *, title: str) -> None:
    """One panel per answer type (and val/score), a line per configuration (mean over seeds, the
    range over seeds shaded), a star where the configuration converged."""
    panels = [(k, t) for k, t in PANELS if any(_curve(c, k)[0] for c in configs)]
    cols = 2 if len(panels) > 1 else 1
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(6 * cols, 3.6 * rows + 0.3 * len(configs) / cols + 1),
        squeeze=False,
        layout="constrained",
    )
    last = 0
    handles = []
    for ax, (key, panel) in zip(axes.flat, panels, strict=False):
        for i, config in enumerate(configs):
            epochs, mean, low, high = _curve(config, key)
            if not epochs:
                continue
            last = max([last, *epochs])
            (line,) = ax.plot(epochs, mean, linewidth=1.3, **_style(i))
            if len(config.runs) > 1:
                ax.fill_between(epochs, low, high, color=line.get_color(), alpha=0.12, linewidth=0)
            done = converged_epoch(config)
            if done is not None and done in epochs:
                ax.plot(
                    done,
                    mean[epochs.index(done)],
                    marker="*",
                    markersize=11,
                    color=line.get_color(),
                    markeredgecolor="black",
                    linewidth=0,
                )
            if key == panels[0][0]:
                state = f"converged at {done}" if done is not None else "not converged"
                line.set_label(f"{labels[i]} (n={len(config.runs)}, {state})")
                handles.append(line)
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel("epoch (0-based)")
        ax.set_ylabel("%")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    for ax in axes.flat:
        ax.set_xlim(-0.5, last + 0.5)
    fig.suptitle(
        f"{title}\nper epoch: line = mean over seeds, band = min-max, ★ = converged (every seed)", fontsize=9
    )
    fig.legend(
        handles=handles, loc="outside lower center", ncols=min(2, len(handles)) if handles else 1, fontsize=7
    )
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_scores(configs: list[RunGroup], labels: list[str], path: Path, *, title: str) -> None:
    """Best val/score per configuration: mean over seeds, error bar one std, seeds as dots; a
    hatched bar: not every run of the configuration converged."""
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.5 * len(configs)), layout="constrained")
    ys = list(range(len(configs)))[::-1]
    for y, config in zip(ys, configs, strict=True):
        mean, std = config.mean_std("val/score")
        ax.barh(
            y,
            mean,
            xerr=std or 0.0,
            color="tab:blue",
            alpha=0.6,
            capsize=4,
            hatch=None if config.all_converged else "//",
        )
        ax.scatter(config.values("val/score"), [y] * len(config.runs), color="black", s=10, zorder=3)
        text = f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "")
        ax.text(mean / 2, y, text, va="center", ha="center", fontsize=8)
    ax.set_yticks(ys, labels, fontsize=8)
    ax.set_xlabel("best val/score (%)")
    ax.set_title(
        f"{title}\nbest validation score (bar: mean over seeds, dots: seeds, hatched: not converged)",
        fontsize=9,
    )
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
            for i, (config, text) in enumerate(zip(configs, labels, strict=True)):
                epochs, mean, _, _ = _curve(config, f"val/diag/{name}/{key}")
                if epochs:
                    ax.plot(epochs, mean, marker="o", markersize=2, label=text, **_style(i))
            ax.set_ylim(-3, 103)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            if r == 0:
                ax.set_title(type_label, fontsize=9)
            if col == 0:
                ax.set_ylabel(ylabel, fontsize=8)
            if r == len(rows) - 1:
                ax.set_xlabel("epoch (0-based)")
    handles, names = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, fontsize=7, loc="outside lower center", ncols=min(len(names), 5))
    fig.suptitle(f"{title}\nvalidation questions answered with the prior (mean over seeds)", fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)
