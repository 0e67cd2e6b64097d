"""The report of a set of runs: one row per configuration (mean +- std over seeds), as markdown and
CSV, and the figures (`butd.reporting.plots`). `python -m butd.report` writes it.

Files written into the sweep folder (or `--out`):

- `report.md` and `report.csv`: one row per configuration, best `val/score` mean +- std over
  seeds and the number of seeds, the official accuracy per answer type when the runs logged it,
  parameter count, seconds per epoch and training throughput;
- `learning_curves.png` (val/score per epoch, one line per configuration) and `scores.png`.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from butd.reporting.runs import METRICS, OVERRIDES, Run, RunGroup, group_runs

#: the official VQA accuracy (overall and per answer type), shown when the runs logged it
ACCURACY = {
    "val/vqa_acc": "VQA acc",
    "val/vqa_acc/yes_no": "yes/no",
    "val/vqa_acc/number": "number",
    "val/vqa_acc/other": "other",
    # the test split evaluated once at the end with the selected checkpoint (data.test_split, VQA-CP)
    "test/vqa_acc": "test VQA acc",
    "test/vqa_acc/yes_no": "test yes/no",
    "test/vqa_acc/number": "test number",
    "test/vqa_acc/other": "test other",
}


def split_settings(configs: list[RunGroup]) -> tuple[list[str], dict[str, str]]:
    """The keys whose values differ between configurations, and the settings all share."""
    keys: list[str] = []
    for c in configs:
        keys += [k for k in c.settings if k not in keys]
    varying = [k for k in keys if len({c.settings.get(k) for c in configs}) > 1]
    common = {k: configs[0].settings[k] for k in keys if k not in varying and k in configs[0].settings}
    return varying, common


def label(config: RunGroup, varying: list[str]) -> str:
    """A configuration as its varying settings, `model.activation=glu`; `default` where unset."""
    return ", ".join(f"{k}={config.settings.get(k, 'default')}" for k in varying) or "all runs"


def _fmt(value: float | None, std: float | None = None, digits: int = 2) -> str:
    if value is None:
        return "-"
    text = f"{value:.{digits}f}"
    return f"{text} ± {std:.{digits}f}" if std is not None else text


@dataclass
class Table:
    """The comparison: configurations, which settings vary, and which accuracy columns exist."""

    configs: list[RunGroup]
    varying: list[str]
    common: dict[str, str]
    accuracy: list[str]

    @classmethod
    def of(cls, runs: list[Run]) -> Table:
        configs = group_runs(runs)
        varying, common = split_settings(configs)
        accuracy = [k for k in ACCURACY if any(c.values(k) for c in configs)]
        return cls(configs, varying, common, accuracy)

    def markdown(self) -> str:
        best = max(self.configs, key=lambda c: c.mean_std("val/score")[0])
        head = [*(self.varying or ["configuration"]), "seeds", "best val/score"]
        head += [ACCURACY[k] for k in self.accuracy]
        head += ["parameters", "s / epoch", "questions / s"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for c in self.configs:
            cells = [c.settings.get(k, "default") for k in self.varying] if self.varying else ["all runs"]
            score = _fmt(*c.mean_std("val/score"))
            cells += [str(len(c.runs)), f"**{score}**" if c is best and len(self.configs) > 1 else score]
            cells += [_fmt(*c.mean_std(k)) for k in self.accuracy]
            params = c.num_parameters
            cells += [f"{params:,}" if params is not None else "-", _fmt(c.epoch_seconds, digits=1)]
            cells += [_fmt(c.questions_per_s, digits=0)]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def csv_rows(self) -> list[dict[str, object]]:
        rows = []
        for c in self.configs:
            row: dict[str, object] = {k: c.settings.get(k, "default") for k in self.varying}
            row["configuration"] = label(c, self.varying)
            row["n_seeds"] = len(c.runs)
            row["seeds"] = " ".join(c.seeds)
            for key in ("val/score", "val/upper_bound", *self.accuracy):
                mean, std = c.mean_std(key)
                row[f"{key} mean"], row[f"{key} std"] = mean, std
            row["num_parameters"] = c.num_parameters
            row["epoch_seconds"] = c.epoch_seconds
            row["questions_per_s"] = c.questions_per_s
            row["runs"] = " ".join(str(r.path) for r in c.runs)
            rows.append(row)
        return rows


def problems_markdown(runs: list[Run]) -> str:
    """The runs left out of the table, with why."""
    lines = ["| run | status | detail |", "|---|---|---|"]
    lines += [f"| `{r.path}` | {r.status} | {r.detail} |" for r in runs if r.status != "finished"]
    return "\n".join(lines)


def nothing_found(roots: list[Path], runs: list[Run]) -> str:
    """Says what the report looked for, and what it found instead."""
    where = ", ".join(str(r) for r in roots)
    if not runs:
        return (
            f"no runs under {where}: looked for run folders holding {OVERRIDES} (Hydra's record of a "
            f"run) with a {METRICS}; give a sweep folder such as outputs/<task>/multiruns/<date>"
        )
    counts = ", ".join(f"{n} {status}" for status, n in Counter(r.status for r in runs).items())
    return (
        f"no finished runs under {where}: looked for {METRICS} with a val/score in the "
        f"{len(runs)} run folders found ({counts}):\n" + problems_markdown(runs)
    )


def write_report(runs: list[Run], out: Path, *, title: str) -> tuple[Table, list[Path]]:
    """Write report.md, report.csv and the two plots into `out`; returns the table and the files."""
    from butd.reporting.plots import plot_curves, plot_scores

    table = Table.of(runs)
    out.mkdir(parents=True, exist_ok=True)
    failed = [r for r in runs if r.status != "finished"]
    common = ", ".join(f"{k}={v}" for k, v in table.common.items()) or "none"
    parts = [
        f"# {title}",
        f"{sum(r.status == 'finished' for r in runs)} finished runs in {len(table.configs)} "
        f"configurations. Settings common to all: {common}. Best val/score: mean ± std over seeds "
        "(percent), the reference's soft score of the argmax answer.",
        table.markdown(),
        "![learning curves](learning_curves.png)\n\n![best val/score](scores.png)",
    ]
    if failed:
        parts += [f"## Runs not in the table ({len(failed)})", problems_markdown(failed)]
    files = [out / "report.md", out / "report.csv", out / "learning_curves.png", out / "scores.png"]
    files[0].write_text("\n\n".join(parts) + "\n")
    rows = table.csv_rows()
    with files[1].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    labels = [label(c, table.varying) for c in table.configs]
    plot_curves(table.configs, labels, files[2], title=title)
    plot_scores(table.configs, labels, files[3], title=title)
    return table, files
