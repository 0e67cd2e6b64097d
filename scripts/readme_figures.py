"""Regenerate the README's measured figures, so they cannot drift from what the code does.

    python scripts/readme_figures.py                        # print the blocks, change nothing
    python scripts/readme_figures.py --write README.md      # replace the blocks in README.md
    python scripts/readme_figures.py --parts quickstart,tests,ablation --write README.md

Each part is a block of the README between `<!-- figures:NAME -->` and `<!-- /figures:NAME -->`:
- `quickstart`: `experiment=quickstart` with `model=newatt` and `model=question_only` (best
  `val/score`, the official accuracy per answer type, upper bound, wall time);
- `ablation`: the activation study on the study stand-in (`experiment=[standin,ablation_activation]`,
  every run until converged) through `butd.report` (9 runs: about an hour on 2 cores);
- `debias`: the bias-reduction study on the stand-in re-split by changing priors
  (`'experiment=[ablation_debias,standin]' data=synthetic_cp`, 12 methods x 3 seeds, every run until
  converged on the hold-out) through `butd.report --reference debias=none`, with the diagnostics of
  the selected epochs;
- `tips_and_tricks`: the paper's Table 1 on the stand-in (`'experiment=[standin,tips_and_tricks]'
  data=synthetic_vg`, 33 runs until converged: about 2 hours on 2 cores) through `butd.report`, with
  the paper's VQA v2 val numbers beside each row (`PAPER`);
- `tests`: the number of tests, all and the fast tier (`pytest --collect-only`).
Every block states the date, the machine and the thread count it was measured with: the scores of
a CPU run depend on the thread count (the order of float sums changes).
Extra Hydra overrides (after `--`) go to every training run, e.g. a smaller set for a quick check.
A study too long for one sitting can be run in parts (a sweep per seed, say) and given with
`--sweep PART=DIR` (repeated for each part's folder): the report then joins those folders and
nothing is trained.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARTS = ("quickstart", "ablation", "debias", "tips_and_tricks", "tests")
#: the paper's VQA v2 val number for each row of conf/trick/ (docs/studies.md; "-": no source)
PAPER = {
    "reference": "63.58 (the reference's own)",
    "gated_tanh": "63.15 with it; 61.63 with ReLU",
    "two_stream": "63.15 with it",
    "two_stream_random": "62.28",
    "vg": "63.15 with it; 62.48 without",
}
TYPES = ("yes/no", "number", "other")


def machine() -> str:
    """`2-core Intel(R) Xeon(R) ..., 1 thread (OMP_NUM_THREADS=1)`: what the figures depend on."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        model = names[0] if names else model
    threads = os.environ.get("OMP_NUM_THREADS")
    thread_text = f"{threads} thread{'s' if threads != '1' else ''} (OMP_NUM_THREADS={threads})"
    if threads is None:
        thread_text = f"{os.cpu_count()} threads (OMP_NUM_THREADS unset: torch uses every core)"
    return f"{os.cpu_count()}-core {model}, {thread_text}"


def stamp() -> str:
    return f"Measured on {dt.date.today().isoformat()}, {machine()}, by `scripts/readme_figures.py`."


def train(overrides: list[str], log_dir: Path, name: str) -> tuple[dict, float]:
    """One `python -m butd.train` run in `log_dir/name`; its metrics.json and wall seconds."""
    run_dir = log_dir / name
    started = time.monotonic()
    cmd = [
        sys.executable,
        "-m",
        "butd.train",
        *overrides,
        f"paths.log_dir={log_dir}",
        f"hydra.run.dir={run_dir}",
    ]
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    return json.loads((run_dir / "metrics.json").read_text()), seconds


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def quickstart(log_dir: Path, extra: list[str]) -> str:
    rows = [
        "| model | best `val/score` | `val/vqa_acc` (yes/no, number, other) | upper bound | wall time |",
        "|---|---|---|---|---|",
    ]
    for model, label in (("newatt", "BUTD, width 256"), ("question_only", "no image")):
        metrics, seconds = train(["experiment=quickstart", f"model={model}", *extra], log_dir, model)
        best = next(r for r in metrics["history"] if r["epoch"] == metrics["best_epoch"])
        per_type = ", ".join(_fmt(best.get(f"val/vqa_acc/{t.replace('/', '_')}")) for t in TYPES)
        rows.append(
            f"| `model={model}` ({label}) | {_fmt(metrics['val/score'])} (epoch {metrics['best_epoch']}) "
            f"| {_fmt(best.get('val/vqa_acc'))} ({per_type}) | {_fmt(metrics['val/upper_bound'])} "
            f"| {seconds:.0f} s |"
        )
    return "\n".join([stamp(), "", *rows])


#: study part -> sweep folders already run (`--sweep PART=DIR`): reported, not trained again
SWEEPS: dict[str, list[Path]] = {}


def study(log_dir: Path, name: str, overrides: list[str], report_args: tuple[str, ...] = ()) -> str:
    """A multirun of `overrides` in `log_dir/name` (or the folders given with `--sweep`), then the
    markdown table of its report (with the report's one-line notes above it, if any)."""
    sweeps = SWEEPS.get(name)
    if not sweeps:
        sweeps = [log_dir / name]
        cmd = [sys.executable, "-m", "butd.train", "-m", *overrides,
               f"paths.log_dir={log_dir}", f"hydra.sweep.dir={sweeps[0]}"]  # fmt: skip
        subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    out = log_dir / f"{name}_report"
    if len(sweeps) > 1:  # the parts' own folder names: full paths of many parts overflow the figure
        report_args = ("--title", " + ".join(p.name for p in sweeps), *report_args)
    report = subprocess.run(
        [sys.executable, "-m", "butd.report", *map(str, sweeps), "--out", str(out), *report_args],
        cwd=REPO, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return report.stdout.split("\n\n", 1)[0].strip()


def report_section(log_dir: Path, name: str, heading: str) -> str:
    """The section `## heading` of the study's report.md (without its heading and figure)."""
    text = (log_dir / f"{name}_report" / "report.md").read_text()
    found = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if found is None:
        return ""
    return "\n".join(line for line in found.group(1).strip().splitlines() if not line.startswith("!["))


def ablation(log_dir: Path, extra: list[str]) -> str:
    overrides = ["experiment=[standin,ablation_activation]", *extra]
    table = study(log_dir, "ablation", overrides, ("--reference", "model.activation=relu"))
    note = (
        "On the study stand-in (`experiment=standin`: docs/studies.md), every run until converged "
        "(at most 100 epochs). Best `val/score` mean ± std over the seeds; converged: the runs that met "
        "the convergence rule; best epoch 0-based, per run; Δ against ReLU (the reference's) with its "
        "95% interval over the seeds (paired by seed), `ns` where it contains 0."
    )
    return "\n".join([stamp(), "", note, "", table])


def debias(log_dir: Path, extra: list[str]) -> str:
    overrides = ["experiment=[ablation_debias,standin]", "data=synthetic_cp", *extra]
    table = study(log_dir, "debias", overrides, ("--reference", "debias=none"))
    diagnostics = report_section(log_dir, "debias", "Diagnostics")
    note = (
        "On the study stand-in re-split by changing priors (`'experiment=[ablation_debias,standin]' "
        "data=synthetic_cp`: docs/studies.md), every run until converged on the hold-out (at most 100 "
        "epochs). Checkpoints are selected on the hold-out (`val/*`, the training prior); `test` is the "
        "VQA-CP-style test (the other prior), evaluated once per run at that checkpoint. Δ against "
        "`debias=none` with its 95% interval over the seeds (paired by seed), `ns` where it contains 0."
    )
    parts = [stamp(), "", note, "", table]
    if diagnostics:
        parts += ["", diagnostics]
    return "\n".join(parts)


def with_paper_column(table: str) -> str:
    """The report's trick table with a last column, the paper's VQA v2 val number of each row."""
    lines = table.splitlines()
    out = [lines[0] + " paper, VQA v2 val |", lines[1] + "---|"]
    for line in lines[2:]:
        trick = line.split("|")[1].strip()
        out.append(f"{line} {PAPER.get(trick, '-')} |")
    return "\n".join(out)


def tips_and_tricks(log_dir: Path, extra: list[str]) -> str:
    overrides = ["experiment=[standin,tips_and_tricks]", "data=synthetic_vg", *extra]
    table = with_paper_column(study(log_dir, "tips_and_tricks", overrides))
    before = (
        "On the study stand-in (`experiment=standin`: docs/studies.md), every run until converged (at "
        "most 100 epochs). Best `val/score` mean ± std over the seeds; converged: the runs that met the "
        "convergence rule; best epoch 0-based, per run; Δ against the reference row with its 95% interval "
        "over the seeds (paired by seed), `ns` where it contains 0."
    )
    after = (
        "The stand-in says nothing about VQA v2: the last column is the paper's number on VQA v2 val "
        "(docs/studies.md), beside the row, not comparable with it. The batch rows keep the reference's "
        "learning rate, so they take 2x and 8x fewer steps per epoch; trained to convergence, their Δ is "
        "where they settle, not how fast."
    )
    return "\n".join([stamp(), "", before, "", table, "", after])


def tests(tests_dir: Path) -> str:
    def count(*args: str) -> int:
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", *args, str(tests_dir)],
            cwd=REPO, check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        found = re.search(r"(\d+)(?:/\d+)? tests? (?:collected|selected)", out)
        if found is None:
            raise SystemExit(f"error: cannot find the test count in pytest's output:\n{out[-2000:]}")
        return int(found.group(1))

    everything, fast = count(), count("-m", "not slow")
    return "\n".join(
        [
            "```bash",
            f"python -m pytest -q                  # everything, on CPU ({everything} tests)",
            f'python -m pytest -q -m "not slow"    # the fast tier for development ({fast} tests)',
            "```",
            f"Counted on {dt.date.today().isoformat()} by `scripts/readme_figures.py`. In a clone one "
            "fast test is skipped: the one that compares `tests/golden` with the copy it was made "
            "from, which only the development machines keep (`../shared/golden`).",
        ]
    )


def replace_block(text: str, name: str, body: str) -> str:
    """`text` with the block `name` replaced by `body`; a missing block is an error naming it."""
    start, end = f"<!-- figures:{name} -->", f"<!-- /figures:{name} -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"error: the README has no block {start} ... {end}; add the two markers first")
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text, count=1)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        extra, argv = argv[argv.index("--") + 1 :], argv[: argv.index("--")]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="quickstart,tests", help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--write", type=Path, metavar="README", help="replace the blocks in this file")
    parser.add_argument("--log-dir", type=Path, default=REPO / "outputs" / "readme_figures")
    parser.add_argument("--tests-dir", type=Path, default=REPO / "tests")
    parser.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="PART=DIR",
        help="report this sweep folder for a study part instead of running it (repeat: several parts)",
    )
    args = parser.parse_args(argv)
    for item in args.sweep:
        part, sep, folder = item.partition("=")
        if not sep or part not in ("ablation", "debias", "tips_and_tricks") or not Path(folder).is_dir():
            parser.error(f"--sweep {item!r}: expected PART=DIR, PART a study part, DIR a sweep folder")
        SWEEPS.setdefault(part, []).append(Path(folder))
    parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)}")

    print(machine())
    stamp_dir = args.log_dir / dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    makers = {
        "quickstart": lambda: quickstart(stamp_dir / "quickstart", extra),
        "ablation": lambda: ablation(stamp_dir, extra),
        "debias": lambda: debias(stamp_dir, extra),
        "tips_and_tricks": lambda: tips_and_tricks(stamp_dir, extra),
        "tests": lambda: tests(args.tests_dir),
    }
    blocks = {name: makers[name]() for name in parts}
    for name, body in blocks.items():
        print(f"<!-- figures:{name} -->\n{body}\n<!-- /figures:{name} -->")
    if args.write is not None:
        text = args.write.read_text()
        for name, body in blocks.items():
            text = replace_block(text, name, body)
        args.write.write_text(text)
        print(f"wrote {args.write.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
