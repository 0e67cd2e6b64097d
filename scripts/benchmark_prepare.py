"""Feature conversion speed and peak memory of butd's `prepare` against a single-process reader.

The input is a generated set in the official VQA v2 formats (`butd.preparation.synthetic`, the real
shapes by default: 36 boxes of 2048 float32 features per image, base64 in a TSV, about 0.39 MB
of text per image; `--adaptive` gives 10-100 boxes). It is generated once per size into
`--work-dir` and reused while its spec is the same. At each size two things convert it:

- butd: `butd.preparation.build.prepare` of the whole data config (`conf/data/realistic.yaml`, sizes
  overridden): the text stage, the streaming parallel feature conversion (worker processes
  decode byte ranges, check every row and convert it to float16, the main process writes
  train, val, test2015 and test-dev2015 files with boxes and spatial features), the
  questions, and an fsync of every file before it is renamed into place;
- single-process reader: what the original scripts did, in one process: `csv.reader` in tab
  mode (field size limit raised), each row's base64 decoded into float32 and written image
  by image into a growing HDF5 dataset (float32 features, boxes, image ids; one file per TSV,
  no split routing, no checks, no fsync). Unlike the original, which collects everything in
  RAM before writing, it streams row by row, so it is the stronger baseline for memory.

Each conversion runs in its own subprocess, so its memory is its own: a thread of this process
reads VmRSS of the subprocess and all its descendants (butd's worker processes) from /proc every
20 ms. "peak RSS" is the largest sum (pages shared between processes, such as libraries, count
once per process); "conversion MB" is how far the sum rose during the feature conversion above
its value when the conversion began, i.e. the conversion's own memory, without what the process
held before (for butd: the text stage's questions and answers).
The subprocess reports its own peak (VmHWM: its ru_maxrss starts at the size of the process that
launched it, so it is reported in the JSON only) and its CPU seconds and its workers'. Seconds
are the work's own, after the imports; the input sits in the page cache for both, as the files
were just written or read. The methods run alternately, size by size, so load changes on the
machine fall on both alike.

The growth from the smallest size to the largest, of the peak and of the conversion's own
memory, is printed next to how much the input grew: a streaming conversion stays flat.

It prints a table and, as its last line, one JSON object. It reports; it never asserts.

    python scripts/benchmark_prepare.py                          # 1,500 and 6,000 images, 36 x 2048
    python scripts/benchmark_prepare.py --images 2000 10000 --workers 2 1 0
    python scripts/benchmark_prepare.py --adaptive               # 10-100 boxes per image
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

REPO = Path(__file__).resolve().parents[1]
BASELINE = "single-process reader"
MB = 2**20


# ---------------------------------------------------------------------------------------------
# Memory of a process tree, from /proc


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out += [int(c) for c in fh.read().split()]
        except OSError:
            pass
    return out


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0  # gone, or a zombie (no VmRSS line)


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


class TreeSampler:
    """Samples the summed VmRSS of a process and its descendants every `interval` seconds.

    A process still running its parent's program is not counted: between (v)fork and exec it
    shows its parent's memory, which would count the parent twice.
    """

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval = pid, interval
        self.peak_kb = self.max_processes = self.samples = 0
        self.peak_of: dict[int, int] = {}  # pid -> its own largest sampled VmRSS
        self.timeline: list[tuple[float, int]] = []  # (time.time(), summed KiB) of every sample
        self._exec_seen: set[int] = set()  # processes seen running their own program
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _running_own_program(self, pid: int, parent: int) -> bool:
        if pid not in self._exec_seen:
            own = _cmdline(pid)
            if not own or own == _cmdline(parent):
                return False
            self._exec_seen.add(pid)
        return True

    def sample(self) -> None:
        total = count = 0
        todo = [(self.pid, os.getpid())]
        while todo:
            pid, parent = todo.pop()
            if self._running_own_program(pid, parent):
                kb = _rss_kb(pid)
                self.peak_of[pid] = max(self.peak_of.get(pid, 0), kb)
                total += kb
                count += kb > 0
            todo += [(c, pid) for c in _children(pid)]
        self.peak_kb = max(self.peak_kb, total)
        self.timeline.append((time.time(), total))
        self.max_processes = max(self.max_processes, count)
        self.samples += 1

    def start(self) -> None:
        self._thread.start()

    def rise_kb(self, start: float, end: float) -> int:
        """How far the sum rose between `start` and `end` (time.time()) above its value at `start`."""
        before = [kb for t, kb in self.timeline if t <= start]
        during = [kb for t, kb in self.timeline if start <= t <= end]
        if not during:
            return 0
        return max(during) - (before[-1] if before else during[0])

    def _run(self) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def measure(job: dict, job_file: Path) -> dict:
    """Run one conversion in a subprocess of this script; its report plus the sampled peak RSS."""
    job_file.write_text(json.dumps(job), encoding="utf-8")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(job_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    sampler = TreeSampler(proc.pid)
    sampler.start()
    out, err = proc.communicate()
    sampler.stop()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"error: the {job['method']} conversion failed (exit {proc.returncode}):\n{err[-3000:]}")
    report = json.loads(out.strip().splitlines()[-1])
    report.update(
        peak_rss_mb=sampler.peak_kb / 1024,
        worker_peak_rss_mb=max((kb for p, kb in sampler.peak_of.items() if p != proc.pid), default=0) / 1024,
        conversion_rise_mb=sampler.rise_kb(report["convert_started"], report["convert_ended"]) / 1024,
        processes=sampler.max_processes,
        rss_samples=sampler.samples,
        wall_s=wall,
    )
    return report


# ---------------------------------------------------------------------------------------------
# The two conversions (run in the subprocess)


def run_butd(data: dict) -> dict:
    import butd.preparation.build as build
    from butd.config.data import DataConfig

    cfg = DataConfig.from_dict(data)
    window: dict[str, float] = {}
    convert = build.convert_features

    def timed_convert(*args, **kwargs):  # the feature conversion's start and end, for its memory
        window["convert_started"] = time.time()
        try:
            return convert(*args, **kwargs)
        finally:
            window["convert_ended"] = time.time()

    build.convert_features = timed_convert
    started = time.perf_counter()
    info = build.prepare(cfg, force=True, progress=False)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "convert_seconds": window["convert_ended"] - window["convert_started"],
        "workers": info.manifest.conversion["workers"],
        **window,
        "images_written": sum(c.images for c in info.counts.splits.values()),
        "output_mb": sum(p.stat().st_size for p in cfg.cache_path.glob("*.h5")) / MB,
    }


def raise_field_size_limit() -> None:
    """As the original scripts did: a row's base64 features are far beyond csv's default limit."""
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 10


def run_baseline(paths: list[str], out_dir: str) -> dict:
    import h5py
    import numpy as np

    raise_field_size_limit()
    convert_started = time.time()
    started = time.perf_counter()
    images = 0
    for path in map(Path, paths):
        with open(path, newline="") as fh, h5py.File(Path(out_dir) / f"{path.stem}.h5", "w") as h5:
            features = boxes = None
            image_ids, counts = [], []
            rows = 0
            for image_id, _w, _h, num_boxes, b64_boxes, b64_features in csv.reader(fh, delimiter="\t"):
                k = int(num_boxes)
                box = np.frombuffer(base64.b64decode(b64_boxes), np.float32).reshape(k, 4)
                feat = np.frombuffer(base64.b64decode(b64_features), np.float32).reshape(k, -1)
                if features is None:
                    dim = feat.shape[1]
                    features = h5.create_dataset(
                        "features", (1024, dim), "f4", maxshape=(None, dim), chunks=(32, dim)
                    )
                    boxes = h5.create_dataset("boxes", (1024, 4), "f4", maxshape=(None, 4), chunks=(1024, 4))
                if rows + k > features.shape[0]:  # grow geometrically: few resizes
                    size = max(2 * features.shape[0], rows + k)
                    features.resize(size, axis=0)
                    boxes.resize(size, axis=0)
                features[rows : rows + k] = feat
                boxes[rows : rows + k] = box
                image_ids.append(int(image_id))
                counts.append(k)
                rows += k
            if features is not None:
                features.resize(rows, axis=0)
                boxes.resize(rows, axis=0)
            h5.create_dataset("image_id", data=np.array(image_ids, np.int64))
            h5.create_dataset("counts", data=np.array(counts, np.int64))
            images += len(image_ids)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "convert_seconds": seconds,
        "convert_started": convert_started,
        "convert_ended": time.time(),
        "workers": 0,
        "images_written": images,
        "output_mb": sum(p.stat().st_size for p in Path(out_dir).glob("*.h5")) / MB,
    }


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def child(job_file: str) -> None:
    job = json.loads(Path(job_file).read_text(encoding="utf-8"))
    if job["method"] == "butd":
        report = run_butd(job["data"])
    else:
        report = run_baseline(job["paths"], job["out_dir"])
    report["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report["hwm_mb"] = _status_kb("VmHWM") / 1024
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    report["cpu_main_s"] = own.ru_utime + own.ru_stime
    report["cpu_workers_s"] = children.ru_utime + children.ru_stime
    print(json.dumps(report))


# ---------------------------------------------------------------------------------------------
# The benchmark (this process)


def split_sizes(images: int) -> dict[str, int]:
    """Train, val and test images in the proportions of `conf/data/realistic.yaml` (6:2:1)."""
    test = max(1, images // 9)
    val = max(1, 2 * images // 9)
    return {"num_train_images": images - val - test, "num_val_images": val, "num_test_images": test}


def data_config(args: argparse.Namespace, images: int, work: Path) -> dict:
    """The realistic data config at this size, composed with Hydra like `python -m butd.prepare`.

    A plain dict: `DataConfig` is built in the subprocess, so this process never imports torch
    (a subprocess's ru_maxrss starts at the size of the process that launched it).
    """
    from omegaconf import OmegaConf

    from butd.config import compose

    overrides = [
        f"data={'realistic_adaptive' if args.adaptive else 'realistic'}",
        f"paths.data_dir={work}",
        f"data.synthetic.feature_dim={args.feature_dim}",
        f"data.synthetic.num_boxes={args.num_boxes}",
        f"data.min_answer_count={args.min_answer_count}",
        *(f"data.synthetic.{k}={v}" for k, v in split_sizes(images).items()),
    ]
    if args.adaptive:
        overrides.append(f"data.synthetic.min_boxes={min(args.min_boxes, args.num_boxes)}")
    cfg = compose("prepare", overrides)
    data = OmegaConf.to_container(cfg.data, resolve=True)
    data.pop("_target_", None)
    return data


def ensure_input(data: dict) -> list[Path]:
    """Generate the raw files unless they were made with this spec (the spec file of `ensure_raw`)."""
    from butd.preparation.synthetic import SyntheticSpec, generate

    raw = Path(data["raw_dir"])
    spec_file = raw / "synthetic_spec.json"
    wanted = json.dumps(data["synthetic"], sort_keys=True)
    if not spec_file.is_file() or spec_file.read_text() != wanted:
        spec_file.unlink(missing_ok=True)
        generate(raw, SyntheticSpec(**data["synthetic"]))
        spec_file.write_text(wanted)
    return [raw / f for f in data["features"]]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--images",
        type=int,
        nargs="+",
        default=[1500, 6000],
        help="total images (train:val:test = 6:2:1) of each size; two or more (default 1500 6000)",
    )
    p.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[None],
        help="data.prepare_workers values to measure butd with (default: every core)",
    )
    p.add_argument("--repeats", type=int, default=1, help="runs of each method at each size (median kept)")
    p.add_argument("--feature-dim", type=int, default=2048)
    p.add_argument("--num-boxes", type=int, default=None, help="default 36, or 100 with --adaptive")
    p.add_argument("--adaptive", action="store_true", help="10..num-boxes boxes per image")
    p.add_argument("--min-boxes", type=int, default=10, help="with --adaptive")
    p.add_argument("--min-answer-count", type=int, default=9, help="data.min_answer_count")
    p.add_argument(
        "--work-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "butd-benchmark-prepare",
        help="generated inputs (kept and reused) and outputs (deleted after each run)",
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.num_boxes is None:
        args.num_boxes = 100 if args.adaptive else 36
    if len(args.images) < 2:
        p.error("--images needs two or more sizes, to show how memory grows with the input")
    if any(n < 9 for n in args.images) or args.repeats < 1:
        p.error("each size needs at least 9 images, and --repeats at least 1")
    args.images = sorted(set(args.images))
    from butd.preparation.convert import default_workers

    args.workers = list(dict.fromkeys(default_workers() if w is None else w for w in args.workers))
    return args


def label(workers: int) -> str:
    return f"butd, {workers} worker{'s' if workers != 1 else ''}"


@dataclass
class InputSet:
    """One size's generated input: where it lives, its data config and its feature files."""

    images: int
    work: Path
    cfg: dict
    feature_files: list[Path]
    input_mb: float


def print_setup(
    console: Console, args: argparse.Namespace, cores: int, load: tuple[float, float, float]
) -> None:
    console.print(
        f"sizes {args.images} images, {args.num_boxes} boxes"
        + (f" ({min(args.min_boxes, args.num_boxes)}..{args.num_boxes}, adaptive)" if args.adaptive else "")
        + f" x {args.feature_dim} features; butd workers {[label(w) for w in args.workers]}; "
        f"{args.repeats} repeat(s); {cores} cores, load average {load[0]:.2f}; work dir {args.work_dir}",
        highlight=False,
    )


def input_set(console: Console, args: argparse.Namespace, images: int) -> InputSet:
    """The set of this size, generated unless the work dir already holds it."""
    adaptive = f"-adaptive{args.min_boxes}" if args.adaptive else ""
    work = args.work_dir / f"{images}img-{args.feature_dim}d-{args.num_boxes}b{adaptive}"
    cfg = data_config(args, images, work)
    t = time.perf_counter()
    feature_files = ensure_input(cfg)
    input_mb = sum(p.stat().st_size for p in feature_files) / MB
    console.print(
        f"input {images:,} images: {input_mb:,.0f} MB of TSV in {cfg['raw_dir']} "
        f"(ready in {time.perf_counter() - t:.1f} s)",
        highlight=False,
    )
    return InputSet(images, work, cfg, feature_files, input_mb)


def job_spec(method: str, workers: int | None, data: InputSet, out_dir: Path) -> tuple[dict, str]:
    """What the subprocess is to run, and the method's name in the table."""
    if method == "butd":
        cfg = dict(data.cfg)
        cfg.update(prepare_workers=workers, cache_dir=str(out_dir / "cache"))
        return {"method": method, "data": cfg}, label(workers)
    return {
        "method": method,
        "paths": [str(p) for p in data.feature_files],
        "out_dir": str(out_dir),
    }, BASELINE


def convert_once(console: Console, method: str, workers: int | None, data: InputSet) -> dict:
    """One conversion into an emptied output dir (deleted afterwards), measured and printed."""
    out_dir = data.work / "out"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    spec, name = job_spec(method, workers, data, out_dir)
    report = measure(spec, data.work / "job.json")
    shutil.rmtree(out_dir, ignore_errors=True)
    report.update(method=name, images=data.images, input_mb=data.input_mb)
    console.print(
        f"  {data.images:>7,} images  {name:<28} {report['seconds']:7.1f} s "
        f"(features {report['convert_seconds']:.1f} s)  peak RSS {report['peak_rss_mb']:7.0f} MB",
        highlight=False,
    )
    return report


def run_all(
    console: Console, args: argparse.Namespace, sets: list[InputSet]
) -> dict[tuple[int, str], list[dict]]:
    """Every method at every size, alternately, `--repeats` times: (images, method) -> reports."""
    methods = [("butd", w) for w in args.workers] + [("baseline", None)]
    runs: dict[tuple[int, str], list[dict]] = {}
    for _ in range(args.repeats):
        for data in sets:
            for method, workers in methods:
                report = convert_once(console, method, workers, data)
                runs.setdefault((data.images, report["method"]), []).append(report)
    return runs


def row(images: int, name: str, reports: list[dict]) -> dict:
    """One table row: the median time and the largest memory of the repeats."""
    seconds = statistics.median(r["seconds"] for r in reports)
    first = reports[0]
    return {
        "images": images,
        "method": name,
        "workers": first["workers"],
        "input_mb": round(first["input_mb"], 1),
        "seconds": round(seconds, 2),
        "convert_seconds": round(statistics.median(r["convert_seconds"] for r in reports), 2),
        "images_per_s": round(images / seconds, 1),
        "mb_per_s": round(first["input_mb"] / seconds, 1),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in reports), 1),
        "conversion_rise_mb": round(max(r["conversion_rise_mb"] for r in reports), 1),
        "main_peak_rss_mb": round(max(r["hwm_mb"] for r in reports), 1),
        "main_ru_maxrss_mb": round(max(r["maxrss_mb"] for r in reports), 1),
        "worker_peak_rss_mb": round(max(r["worker_peak_rss_mb"] for r in reports), 1),
        "processes": max(r["processes"] for r in reports),
        "cpu_main_s": round(statistics.median(r["cpu_main_s"] for r in reports), 1),
        "cpu_workers_s": round(statistics.median(r["cpu_workers_s"] for r in reports), 1),
        "output_mb": round(first["output_mb"], 1),
        "repeats": len(reports),
    }


def rows(runs: dict[tuple[int, str], list[dict]]) -> list[dict]:
    """The table's rows, each with its speedups over the single-process reader at its size."""
    results = [row(n, name, reports) for (n, name), reports in runs.items()]
    by = {(r["images"], r["method"]): r for r in results}
    for r in results:
        base = by[r["images"], BASELINE]
        r["speedup"] = round(base["seconds"] / r["seconds"], 2)
        r["features_speedup"] = round(base["convert_seconds"] / r["convert_seconds"], 2)
    return results


def growth(results: list[dict], small: int, large: int) -> tuple[float, dict[str, dict[str, float]]]:
    """How much the input grew from the smallest size to the largest, and each method's memory."""
    by = {(r["images"], r["method"]): r for r in results}
    input_growth = by[large, BASELINE]["input_mb"] - by[small, BASELINE]["input_mb"]
    memory = {
        name: {
            key: round(by[large, name][key] - by[small, name][key], 1)
            for key in ("peak_rss_mb", "conversion_rise_mb")
        }
        for name in dict.fromkeys(r["method"] for r in results)
    }
    return input_growth, memory


def print_table(console: Console, args: argparse.Namespace, cores: int, results: list[dict]) -> None:
    from rich.table import Table

    table = Table(title=f"Feature conversion, {cores} cores ({args.num_boxes} boxes x {args.feature_dim})")
    for col in (
        "images",
        "TSV MB",
        "method",
        "seconds",
        "features s",
        "images/s",
        "MB/s",
        "speedup",
        "peak RSS MB",
        "conversion MB",
        "main MB",
        "worker MB",
    ):
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in results:
        table.add_row(
            f"{r['images']:,}",
            f"{r['input_mb']:,.0f}",
            r["method"],
            f"{r['seconds']:.1f}",
            f"{r['convert_seconds']:.1f}",
            f"{r['images_per_s']:,.0f}",
            f"{r['mb_per_s']:,.0f}",
            f"{r['speedup']:.2f}x",
            f"{r['peak_rss_mb']:,.0f}",
            f"{r['conversion_rise_mb']:,.0f}",
            f"{r['main_peak_rss_mb']:,.0f}",
            f"{r['worker_peak_rss_mb']:,.0f}" if r["method"] != BASELINE else "",
        )
    console.print(table)


def print_legend(
    console: Console, small: int, large: int, input_growth: float, memory: dict[str, dict[str, float]]
) -> None:
    """What the columns mean, and how memory grew with the input."""
    console.print(
        "seconds: the whole run (butd: prepare, its text stage and fsync included); features s: the "
        "feature conversion alone; speedup: the reader's seconds over these. peak RSS: the largest "
        "summed RSS of the process tree; conversion MB: how far that sum rose during the feature "
        "conversion; main, worker MB: each process's own peak.\n"
        f"From {small:,} to {large:,} images (TSV +{input_growth:,.0f} MB), "
        "peak RSS / conversion MB grew by: "
        + "; ".join(
            f"{name} {g['peak_rss_mb']:+,.0f} / {g['conversion_rise_mb']:+,.0f} MB"
            for name, g in memory.items()
        ),
        highlight=False,
    )


def summary(
    args: argparse.Namespace,
    cores: int,
    load: tuple[float, float, float],
    results: list[dict],
    input_growth: float,
    memory: dict[str, dict[str, float]],
) -> dict:
    """The JSON line: the setup, every row, and the growth (the load average read now, at the end)."""
    return {
        "cores": cores,
        "load_average": [round(x, 2) for x in load],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "feature_dim": args.feature_dim,
        "num_boxes": args.num_boxes,
        "adaptive": args.adaptive,
        "sizes": args.images,
        "methods": list(memory),
        "runs": results,
        # the first --workers setting over the single-process reader, per size
        "speedup": {str(r["images"]): r["speedup"] for r in results if r["method"] == label(args.workers[0])},
        "input_growth_mb": round(input_growth, 1),
        "memory_growth_mb": memory,
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    from rich.console import Console

    # a table this wide wraps at rich's default of 80 columns when the output is not a terminal
    console = Console(width=None if sys.stdout.isatty() else 150)
    cores = len(os.sched_getaffinity(0))
    load = os.getloadavg()
    print_setup(console, args, cores, load)
    sets = [input_set(console, args, n) for n in args.images]
    results = rows(run_all(console, args, sets))
    small, large = args.images[0], args.images[-1]
    input_growth, memory = growth(results, small, large)
    print_table(console, args, cores, results)
    print_legend(console, small, large, input_growth, memory)
    result = summary(args, cores, load, results, input_growth, memory)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    if "--child" in sys.argv:
        child(sys.argv[sys.argv.index("--child") + 1])
    else:
        main()
