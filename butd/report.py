"""`python -m butd.report SWEEP_DIR [SWEEP_DIR ...] [--out DIR]`: compare the runs of sweeps.

Reads each run's local records (`butd.reporting.runs`), groups runs that differ only in their
seed into one configuration, writes `report.md`, `report.csv` and two figures
(`butd.reporting.tables`), prints the markdown table, and lists the runs that failed or did
not finish. A plain argparse tool rather than a Hydra entry point: it takes folders, not a config.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from butd.reporting.runs import read_runs
from butd.reporting.tables import (
    ReportError,
    nothing_found,
    problems_markdown,
    seeds_needed_lines,
    write_report,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m butd.report",
        description="Compare the runs of one or more sweeps: a markdown and CSV table, and plots.",
    )
    parser.add_argument("sweep_dirs", nargs="+", type=Path, metavar="SWEEP_DIR", help="sweep or run folders")
    parser.add_argument("--out", type=Path, help="where to write (default: the sweep folder, if one)")
    parser.add_argument("--title", help="title of the report and plots (default: the folder names)")
    parser.add_argument(
        "--reference",
        metavar="KEY=VALUE",
        help="compare every configuration with the one where KEY=VALUE: that row first, a Δ column per "
        "metric (default: trick=reference when the runs vary the trick group)",
    )
    parser.add_argument(
        "--seeds-needed",
        type=float,
        metavar="POINTS",
        help="also say how many seeds per configuration would tell a difference of POINTS of val/score "
        "(5%% two-sided, 80%% power), from the spread the runs show",
    )
    args = parser.parse_args(argv)
    if args.seeds_needed is not None and not args.seeds_needed > 0:
        parser.error(f"--seeds-needed {args.seeds_needed:g}: expected a difference in points > 0, e.g. 1.0")
    reference = None
    if args.reference is not None:
        key, sep, value = args.reference.partition("=")
        if not sep or not key:
            parser.error(f"--reference {args.reference!r}: expected KEY=VALUE, e.g. model.output=sigmoid")
        reference = (key, value)

    missing = [d for d in args.sweep_dirs if not d.is_dir()]
    if missing:
        parser.error(f"no such folder: {', '.join(map(str, missing))}")
    if args.out is None and len(args.sweep_dirs) > 1:
        parser.error("several folders: give --out DIR for the combined report")
    out = args.out or args.sweep_dirs[0]
    runs = read_runs(args.sweep_dirs)
    if not any(r.status == "finished" for r in runs):
        print(nothing_found(args.sweep_dirs, runs), file=sys.stderr)
        return 1
    title = args.title or " + ".join(
        f"{d.resolve().parent.parent.name}/{d.resolve().name}" for d in args.sweep_dirs
    )
    try:
        table, files = write_report(runs, out, title=title, reference=reference, seeds_for=args.seeds_needed)
    except ReportError as err:
        print(err, file=sys.stderr)
        return 2
    for note in table.notes:
        print(f"note: {note}")
    print(table.markdown())
    if args.seeds_needed is not None:
        print("\nseeds needed " + "\n".join(seeds_needed_lines(table, args.seeds_needed)))
    failed = [r for r in runs if r.status != "finished"]
    if failed:
        print(f"\n{len(failed)} runs not in the table:\n{problems_markdown(failed)}")
    print("\nwrote " + ", ".join(str(f) for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
