"""The report of a set of runs: one row per configuration (mean +- std over seeds), as markdown and
CSV, and the figures (`butd.reporting.plots`). `python -m butd.report` writes it.

Files written into the sweep folder (or `--out`):

- `report.md` and `report.csv`: one row per configuration, best `val/score` mean +- std over
  seeds and the number of seeds, the official accuracy per answer type when the runs logged it,
  parameter count, seconds per epoch and training throughput;
- `learning_curves.png` (val/score per epoch, one line per configuration) and `scores.png`.

With a reference configuration (the `trick` group's `reference` row, or `--reference KEY=VALUE`)
the table is the paper's view: the reference row first, then a row per change, each with the
difference of its mean to the reference's (`Δ val/score`, `Δ VQA acc`).
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
#: the official GQA metrics (`butd.data.gqa`), shown when the runs logged them (data=gqa)
GQA_COLUMNS = ("accuracy", "binary", "open", "consistency", "validity", "plausibility", "distribution")
ACCURACY |= {f"val/gqa/{k}": f"GQA {k}" for k in GQA_COLUMNS}
ACCURACY |= {f"test/gqa/{k}": f"test GQA {k}" for k in GQA_COLUMNS}


#: the metrics a reference view gives a Δ column, where the runs logged them
DELTAS = {"val/score": "val/score", "val/vqa_acc": "VQA acc", "test/vqa_acc": "test VQA acc"}
#: the group whose `reference` row is the reference without being told (conf/trick/)
TRICK = ("trick", "reference")


class ReportError(ValueError):
    """A report that cannot be made as asked (e.g. a reference that matches no configuration)."""


def reference_config(
    configs: list[RunGroup], varying: list[str], reference: tuple[str, str] | None
) -> RunGroup | None:
    """The configuration the others are compared with: the one whose `key` is `value`.

    Without `reference`: the `trick=reference` row (or the row that leaves `trick` unset, which
    is the same) when the trick group is what varies, else none. A given reference that matches
    no configuration, or several, is a ReportError naming the values found.
    """
    if reference is None:
        if varying != [TRICK[0]]:
            return None
        unset = [c for c in configs if c.settings.get(TRICK[0], TRICK[1]) == TRICK[1]]
        return unset[0] if len(unset) == 1 else None
    key, value = reference
    matches = [c for c in configs if c.settings.get(key, "default") == value]
    if len(matches) != 1:
        found = sorted({c.settings.get(key, "default") for c in configs})
        what = "no configuration" if not matches else f"{len(matches)} configurations (other keys vary too)"
        raise ReportError(
            f"--reference {key}={value}: {what} has it; the runs have {key} in {found} and vary {varying}"
        )
    return matches[0]


def _delta(value: float | None, reference: float | None) -> str:
    return "-" if value is None or reference is None else f"{value - reference:+.2f}"


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
    #: the row the others are compared with (first in `configs`), or None: no Δ columns
    reference: RunGroup | None = None

    @classmethod
    def of(cls, runs: list[Run], *, reference: tuple[str, str] | None = None) -> Table:
        """`reference`: (key, value) of the reference row; None: `trick=reference` if the trick
        group is what varies (see `reference_config`)."""
        configs = group_runs(runs)
        varying, common = split_settings(configs)
        accuracy = [k for k in ACCURACY if any(c.values(k) for c in configs)]
        ref = reference_config(configs, varying, reference)
        if ref is not None:
            configs = [ref, *(c for c in configs if c is not ref)]
        return cls(configs, varying, common, accuracy, ref)

    @property
    def deltas(self) -> list[str]:
        """The metrics with a Δ column: none without a reference."""
        if self.reference is None:
            return []
        return [k for k in DELTAS if k == "val/score" or k in self.accuracy]

    def delta_cells(self, config: RunGroup) -> list[str]:
        """`+0.52`-style differences of the config's means to the reference's; `reference` on its row."""
        if config is self.reference:
            return ["reference"] * len(self.deltas)
        ref = self.reference
        return [_delta(config.mean_std(k)[0], ref.mean_std(k)[0]) for k in self.deltas]

    def markdown(self) -> str:
        best = max(self.configs, key=lambda c: c.mean_std("val/score")[0])
        head = [*(self.varying or ["configuration"]), "seeds", "best val/score"]
        head += [f"Δ {DELTAS[k]}" for k in self.deltas]
        head += [ACCURACY[k] for k in self.accuracy]
        head += ["parameters", "s / epoch", "questions / s"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for c in self.configs:
            cells = [c.settings.get(k, "default") for k in self.varying] if self.varying else ["all runs"]
            score = _fmt(*c.mean_std("val/score"))
            cells += [str(len(c.runs)), f"**{score}**" if c is best and len(self.configs) > 1 else score]
            cells += self.delta_cells(c)
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
            for key in self.deltas:
                ref = None if c is self.reference else self.reference.mean_std(key)[0]
                mean = c.mean_std(key)[0]
                row[f"{key} delta"] = None if ref is None or mean is None else mean - ref
            row["num_parameters"] = c.num_parameters
            row["epoch_seconds"] = c.epoch_seconds
            row["questions_per_s"] = c.questions_per_s
            row["runs"] = " ".join(str(r.path) for r in c.runs)
            rows.append(row)
        return rows


def _reference_note(table: Table) -> str:
    if table.reference is None:
        return ""
    return (
        f" Each row is one change against the reference row ({label(table.reference, table.varying)}, "
        "first); Δ is the difference of the means over seeds to the reference's, in points."
    )


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


def write_report(
    runs: list[Run], out: Path, *, title: str, reference: tuple[str, str] | None = None
) -> tuple[Table, list[Path]]:
    """Write report.md, report.csv and the two plots into `out`; returns the table and the files.
    `reference`: the (key, value) of the row the others are compared with (`Table.of`)."""
    from butd.reporting.plots import plot_curves, plot_scores

    table = Table.of(runs, reference=reference)
    out.mkdir(parents=True, exist_ok=True)
    failed = [r for r in runs if r.status != "finished"]
    common = ", ".join(f"{k}={v}" for k, v in table.common.items()) or "none"
    parts = [
        f"# {title}",
        f"{sum(r.status == 'finished' for r in runs)} finished runs in {len(table.configs)} "
        f"configurations. Settings common to all: {common}. Best val/score: mean ± std over seeds "
        "(percent), the reference's soft score of the argmax answer." + _reference_note(table),
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
