"""The report of a set of runs: one row per configuration (mean +- std over seeds), as markdown and
CSV, and the figures (`butd.reporting.plots`). `python -m butd.report` writes it.

Files written into the sweep folder (or `--out`):

- `report.md` and `report.csv`: one row per configuration, best `val/score` mean +- std over
  seeds and the number of seeds, the official accuracy per answer type when the runs logged it,
  parameter count, seconds per epoch and training throughput;
- `learning_curves.png` (val/score per epoch, one line per configuration) and `scores.png`;
- when the runs logged diagnostics (`val/diag/*`, e.g. a debias study), a `## Diagnostics` table
  in report.md and `diagnostics.png` (the prior-answer shares per epoch and answer type).

With a reference configuration (the `trick` group's `reference` row, or `--reference KEY=VALUE`)
the table is the paper's view: the reference row first, then a row per change, each with the
difference of its mean to the reference's (`Δ val/score`, `Δ VQA acc`) and that difference's 95%
interval over seeds (`butd.reporting.stats`: paired by seed, else Welch), marked `ns` where the
interval contains 0.

Every row says how many of its runs converged (`butd.config.convergence`) and their best epochs;
no unconverged row is bolded as the best. Runs that differ in their epoch cap or data without
that being an axis of the table get no Δ column, and the report says why in one line.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from butd.config.convergence import ConvergenceRule
from butd.files import atomic_open, atomic_write_text
from butd.reporting.runs import METRICS, OVERRIDES, Run, RunGroup, group_runs, settings_of
from butd.reporting.stats import MAX_SEEDS, Difference, difference, seeds_needed

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
#: the official GQA metrics (`butd.vqa.gqa`), shown when the runs logged them (data=gqa)
GQA_COLUMNS = ("accuracy", "binary", "open", "consistency", "validity", "plausibility", "distribution")
ACCURACY |= {f"val/gqa/{k}": f"GQA {k}" for k in GQA_COLUMNS}
ACCURACY |= {f"test/gqa/{k}": f"test GQA {k}" for k in GQA_COLUMNS}


#: the diagnostics (`{train,val}/diag/<name>[/<type>]`, butd.training.module), what each means
DIAGNOSTICS = {
    "prior_top": "answers the question type's most frequent training answer (%)",
    "prior_support": "answers an answer its question type has in training (%)",
    "gate": "Learned-Mixin gate g",
    "smooth": "Learned-Mixin smoothing s(w_s)",
    "mask": "RUBi mean mask s(q_pred)",
    "pseudo_weight": "GGE pseudo-label weight 2 s(-2 y b) at the top answer",
    "constant": "CF-VQA constant c",
    "tie_changed": "CF-VQA answers changed by the TIE (%)",
}
#: the columns of the diagnostics table: all questions, then per answer type
DIAGNOSTIC_TYPES = {"": "all", "/yes_no": "yes/no", "/number": "number", "/other": "other"}


#: the metrics a reference view gives a Δ column, where the runs logged them
DELTAS = {"val/score": "val/score", "val/vqa_acc": "VQA acc", "test/vqa_acc": "test VQA acc"}
#: the group whose `reference` row is the reference without being told (conf/trick/)
TRICK = ("trick", "reference")
#: settings every compared run must share unless the table varies them: (config key, override keys)
COMPARABLE = (("trainer.max_epochs", ("trainer.max_epochs",)), ("data.name", ("data", "data.name")))


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


def missing_reference(runs: list[Run], key: str, value: str) -> str:
    """One line: the reference row `key=value` has no finished run, and what became of its runs."""
    own = [r for r in runs if r.status != "finished" and settings_of(r).get(key, TRICK[1]) == value]
    what = ", ".join(f"{n} {status}" for status, n in Counter(r.status for r in own).items())
    return (
        f"the reference row {key}={value} has no finished run ({what or 'none in these folders'}): "
        "no Δ column is made against another row; rerun it and report again"
    )


def incomparable(configs: list[RunGroup], varying: list[str]) -> str | None:
    """One line naming the settings the runs differ in without the table varying them (their
    epoch cap or data), or None: such runs are not put in one Δ column."""
    found = []
    for key, axes in COMPARABLE:
        if any(a in varying for a in axes):
            continue
        values = {str(r.setting(key)) for c in configs for r in c.runs}
        if len(values) > 1:
            found.append(f"{key} ({', '.join(sorted(values))})")
    if not found:
        return None
    return (
        f"the runs differ in {' and '.join(found)} without it being an axis of the table: no Δ column; "
        "report such runs apart"
    )


def _delta(diff: Difference | None) -> str:
    """`+1.20 [+0.40, +2.00]`, `ns` where the interval contains 0; `(n=1)` where there is none."""
    if diff is None:
        return "-"
    if not diff.has_interval:
        return f"{diff.mean:+.2f} (no interval: n={min(diff.n)})"
    text = f"{diff.mean:+.2f} [{diff.low:+.2f}, {diff.high:+.2f}]"
    return f"{text} ns" if diff.contains_zero else text


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
    #: one line each: why the table has no Δ column where one was expected
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, runs: list[Run], *, reference: tuple[str, str] | None = None) -> Table:
        """`reference`: (key, value) of the reference row; None: `trick=reference` if the trick
        group is what varies (see `reference_config`)."""
        configs = group_runs(runs)
        varying, common = split_settings(configs)
        accuracy = [k for k in ACCURACY if any(c.values(k) for c in configs)]
        ref = reference_config(configs, varying, reference)
        notes = []
        if ref is None and reference is None and TRICK[0] in varying:
            notes.append(missing_reference(runs, *TRICK))
        mixed = incomparable(configs, varying)
        if mixed is not None:
            notes.append(mixed)
            ref = None
        if ref is not None:
            configs = [ref, *(c for c in configs if c is not ref)]
        return cls(configs, varying, common, accuracy, ref, notes)

    @property
    def winner(self) -> RunGroup | None:
        """The configuration with the best mean val/score, when there is a comparison and all its
        runs converged; None otherwise (an unconverged row is never called the best)."""
        if len(self.configs) < 2:
            return None
        best = max(self.configs, key=lambda c: c.mean_std("val/score")[0])
        return best if best.all_converged else None

    def difference(self, config: RunGroup, key: str) -> Difference | None:
        """`config` against the reference row on `key`, with its 95% interval over seeds."""
        if self.reference is None or config is self.reference:
            return None
        return difference(config.by_seed(key), self.reference.by_seed(key))

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
        return [_delta(self.difference(config, k)) for k in self.deltas]

    def markdown(self) -> str:
        best = self.winner
        head = [*(self.varying or ["configuration"]), "seeds", "converged", "best epoch", "best val/score"]
        head += [f"Δ {DELTAS[k]}" for k in self.deltas]
        head += [ACCURACY[k] for k in self.accuracy]
        head += ["parameters", "s / epoch", "questions / s"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for c in self.configs:
            cells = [c.settings.get(k, "default") for k in self.varying] if self.varying else ["all runs"]
            score = _fmt(*c.mean_std("val/score"))
            cells += [str(len(c.runs)), _converged(c), _epochs(c.best_epochs)]
            cells += [f"**{score}**" if c is best else score]
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
            row["converged"] = c.converged
            row["best_epochs"] = " ".join(map(str, c.best_epochs))
            for key in ("val/score", "val/upper_bound", *self.accuracy):
                mean, std = c.mean_std(key)
                row[f"{key} mean"], row[f"{key} std"] = mean, std
            for key in self.deltas:
                diff = self.difference(c, key)
                row[f"{key} delta"] = None if diff is None else diff.mean
                row[f"{key} delta low"] = None if diff is None else diff.low
                row[f"{key} delta high"] = None if diff is None else diff.high
                row[f"{key} delta method"] = None if diff is None else diff.method
            row["num_parameters"] = c.num_parameters
            row["epoch_seconds"] = c.epoch_seconds
            row["questions_per_s"] = c.questions_per_s
            row["runs"] = " ".join(str(r.path) for r in c.runs)
            rows.append(row)
        return rows


def _converged(config: RunGroup) -> str:
    """`yes (3/3)`, or `no (1/3)`: how many of the row's runs met the convergence rule."""
    return f"{'yes' if config.all_converged else 'no'} ({config.converged}/{len(config.runs)})"


def _epochs(epochs: list[int]) -> str:
    """The runs' best epochs, `12, 14, 14` (a median and range beyond five runs)."""
    if not epochs:
        return "-"
    if len(epochs) <= 5:
        return ", ".join(map(str, epochs))
    return f"{statistics.median(epochs):g} ({min(epochs)}-{max(epochs)})"


def diagnostics_markdown(table: Table, *, stage: str = "val") -> str | None:
    """The hold-out diagnostics of the selected epoch, mean over seeds, per configuration and
    answer type (None when the runs logged none): what explains a debias method's answers."""
    rows = []
    for c in table.configs:
        for name, meaning in DIAGNOSTICS.items():
            cells = [c.mean_std(f"{stage}/diag/{name}{suffix}")[0] for suffix in DIAGNOSTIC_TYPES]
            if all(v is None for v in cells):
                continue
            config = label(c, table.varying) if table.varying else "all runs"
            rows.append(f"| {config} | {meaning} | " + " | ".join(_fmt(v) for v in cells) + " |")
    if not rows:
        return None
    head = ["configuration", "diagnostic", *DIAGNOSTIC_TYPES.values()]
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *rows])


def _reference_note(table: Table) -> str:
    if table.reference is None:
        return ""
    return (
        f" Each row is one change against the reference row ({label(table.reference, table.varying)}, "
        "first); Δ is the difference of the means over seeds to the reference's, in points, with its "
        "95% interval (paired by seed where both rows ran the same seeds, else Welch's); `ns`: the "
        "interval contains 0, so the row is not told apart from the reference with these seeds."
    )


def _convergence_note(table: Table) -> str:
    """What `converged` means for these runs, and what the table can say when some did not."""
    counts = Counter(
        ConvergenceRule.of(r.metrics.get("convergence_rule")) for c in table.configs for r in c.runs
    )
    computed = any(r.convergence["computed"] for c in table.configs for r in c.runs)
    if len(counts) <= 1:
        rule = next(iter(counts), ConvergenceRule())
        text = (
            f" Converged: the runs whose {rule.monitor} gained no more than {rule.min_delta:g} points over "
            f"their last {rule.patience} epochs"
        )
    else:  # runs recorded under different rules: each is judged by its own, and the table says so
        rules = "; ".join(
            f"{n} run{'s' if n > 1 else ''} no more than {rule.min_delta:g} points over the last "
            f"{rule.patience} epochs"
            for rule, n in sorted(counts.items(), key=lambda kv: (kv[0].patience, kv[0].min_delta))
        )
        text = f" Converged: the runs ran under different convergence rules, each judged by its own ({rules})"
    text += (
        " (applied to the history of runs that did not record it)" if computed else ""
    ) + "; best epoch: 0-based, per run."
    unconverged = sum(not c.all_converged for c in table.configs)
    if unconverged:
        text += (
            f" {unconverged} of {len(table.configs)} rows did not converge: their scores were still "
            "changing, so their differences may measure speed rather than an effect, and no unconverged "
            "row is marked as the best."
        )
    return text


def seeds_needed_lines(table: Table, delta: float, key: str = "val/score") -> list[str]:
    """How many seeds per configuration would tell a difference of `delta` points of `key`, from the
    spread the runs show (5% two-sided, 80% power; `butd.reporting.stats.seeds_needed`)."""
    power = "5% two-sided test, 80% power"
    if table.reference is not None:
        ref = table.reference.by_seed(key)
        lines = []
        for c in table.configs[1:]:
            own = c.by_seed(key)
            name = label(c, table.varying)
            if set(own) == set(ref) and len(own) >= 2:
                sigma, paired, what = _sd([own[s] - ref[s] for s in own]), True, "per-seed differences"
            elif len(own) >= 2 and len(ref) >= 2:
                sigma, paired = math.sqrt((_sd(own.values()) ** 2 + _sd(ref.values()) ** 2) / 2), False
                what = "per-seed scores, unpaired"
            else:
                lines.append(f"{name}: needs two seeds of it and of the reference to measure the spread")
                continue
            lines.append(_needed_line(name, seeds_needed(delta, sigma, paired=paired), sigma, what))
        return [f"against the reference row, {delta:g} points of {key} ({power}):", *lines]
    spread = [c for c in table.configs if len(c.values(key)) >= 2]
    if not spread:
        return [
            f"seeds needed for {delta:g} points of {key}: no configuration has two seeds to measure "
            "the spread"
        ]
    sigma = math.sqrt(statistics.fmean(_sd(c.values(key)) ** 2 for c in spread))
    n = seeds_needed(delta, sigma, paired=False)
    what = f"pooled per-seed SD over {len(spread)} configurations, unpaired"
    return [
        f"two configurations {delta:g} points of {key} apart ({power}):",
        _needed_line("any row", n, sigma, what),
    ]


def _sd(values) -> float:
    values = list(values)
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _needed_line(name: str, n: int | None, sigma: float, what: str) -> str:
    count = f"{n} seeds" if n is not None else f"more than {MAX_SEEDS} seeds"
    return f"{name}: {count} per row (SD {sigma:.2f} of {what})"


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


def _data_note(table: Table) -> str:
    """`Data: synthetic, at most 15 epochs. ` from the runs' composed configs, where they agree."""
    runs = [r for c in table.configs for r in c.runs]
    data = {str(r.setting("data.name")) for r in runs} - {"None"}
    epochs = {str(r.setting("trainer.max_epochs")) for r in runs} - {"None"}
    parts = []
    if data:
        parts.append(f"Data: {', '.join(sorted(data))}")
    if epochs:
        parts.append(f"at most {', '.join(sorted(epochs, key=int))} epochs")
    return ", ".join(parts) + ". " if parts else ""


def write_report(
    runs: list[Run],
    out: Path,
    *,
    title: str,
    reference: tuple[str, str] | None = None,
    seeds_for: float | None = None,
) -> tuple[Table, list[Path]]:
    """Write report.md, report.csv and the two plots into `out`; returns the table and the files.
    `reference`: the (key, value) of the row the others are compared with (`Table.of`);
    `seeds_for`: a difference in points for a "seeds needed" section (`seeds_needed_lines`)."""
    from butd.reporting.plots import plot_curves, plot_diagnostics, plot_scores

    table = Table.of(runs, reference=reference)
    out.mkdir(parents=True, exist_ok=True)
    failed = [r for r in runs if r.status != "finished"]
    common = ", ".join(f"{k}={v}" for k, v in table.common.items()) or "none"
    parts = [
        f"# {title}",
        f"{sum(r.status == 'finished' for r in runs)} finished runs in {len(table.configs)} "
        f"configurations. Settings common to all: {common}. {_data_note(table)}Best val/score: mean ± std "
        "over seeds (percent), the reference's soft score of the argmax answer."
        + _convergence_note(table)
        + _reference_note(table),
        *(f"Note: {n}." for n in table.notes),
        table.markdown(),
        "![learning curves](learning_curves.png)\n\n![best val/score](scores.png)",
    ]
    if seeds_for is not None:
        lines = seeds_needed_lines(table, seeds_for)
        parts += ["## Seeds needed", lines[0] + "\n\n" + "\n".join(f"- {line}" for line in lines[1:])]
    diagnostics = diagnostics_markdown(table)
    if diagnostics is not None:
        parts += [
            "## Diagnostics",
            "On the validation split at the selected epoch, mean over seeds, for all questions and per "
            "answer type (`val/diag/*`; docs/debias.md says what each measures).",
            diagnostics,
            "![diagnostics per epoch](diagnostics.png)",
        ]
    if failed:
        parts += [f"## Runs not in the table ({len(failed)})", problems_markdown(failed)]
    files = [out / "report.md", out / "report.csv", out / "learning_curves.png", out / "scores.png"]
    atomic_write_text(files[0], "\n\n".join(parts) + "\n")
    rows = table.csv_rows()
    with atomic_open(files[1], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    labels = [label(c, table.varying) for c in table.configs]
    plot_curves(table.configs, labels, files[2], title=title)
    plot_scores(table.configs, labels, files[3], title=title)
    if diagnostics is not None:
        files.append(out / "diagnostics.png")
        plot_diagnostics(table.configs, labels, files[-1], title=title)
    return table, files
