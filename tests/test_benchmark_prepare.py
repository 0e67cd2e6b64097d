"""The conversion benchmark script, run as a user runs it, at tiny sizes."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # the conversion benchmark script as a subprocess

TINY = ["--images", "40", "80", "--feature-dim", "64", "--num-boxes", "6", "--min-answer-count", "2"]


def _consistent(rate: float, amount: float, seconds: float, *, amount_digits: int | None) -> bool:
    """`rate` (rounded to 0.1) is `amount / s` for some s that rounds to `seconds` (at 0.01), the
    amount itself rounded to `amount_digits` decimals, or exact when None."""
    amount_err = 0 if amount_digits is None else 0.5 * 10**-amount_digits
    if rate < 0:
        return False
    low = max(amount - amount_err, 0) / (seconds + 0.005) - 0.05
    high = (amount + amount_err) / (seconds - 0.005) + 0.05 if seconds > 0.005 else float("inf")
    return low - 1e-9 <= rate <= high + 1e-9


def test_benchmark_prepare_prints_a_table_and_a_json_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "benchmark_prepare.py"),
            *TINY,
            "--workers",
            "1",
            "--work-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.strip().splitlines()
    for header in ("images/s", "MB/s", "peak RSS MB", "speedup", "grew by"):
        assert header in run.stdout, header
    result = json.loads(lines[-1])
    assert result["sizes"] == [40, 80] and result["feature_dim"] == 64 and result["num_boxes"] == 6
    assert result["methods"] == ["butd, 1 worker", "single-process reader"]
    assert len(result["runs"]) == 4
    assert {(r["images"], r["method"]) for r in result["runs"]} == {
        (n, m) for n in (40, 80) for m in result["methods"]
    }
    by = {(r["images"], r["method"]): r for r in result["runs"]}
    for r in result["runs"]:
        # speeds depend on the machine and its load (a busy machine rounds MB/s of these tiny
        # inputs to 0.0): check that they agree with the amounts and seconds, not their size
        assert r["seconds"] > 0 and r["input_mb"] > 0, r  # the script divides by both
        assert _consistent(r["images_per_s"], r["images"], r["seconds"], amount_digits=None), r
        assert _consistent(r["mb_per_s"], r["input_mb"], r["seconds"], amount_digits=1), r
        base = by[r["images"], "single-process reader"]["seconds"]
        assert r["speedup"] == round(base / r["seconds"], 2), r
        assert r["peak_rss_mb"] > 10 and r["main_peak_rss_mb"] > 10 and r["output_mb"] > 0, r
        assert r["peak_rss_mb"] >= r["main_peak_rss_mb"] * 0.9, r  # the tree holds the main process
        assert 0 <= r["conversion_rise_mb"] <= r["peak_rss_mb"], r
    butd = [r for r in result["runs"] if r["method"].startswith("butd")]
    assert all(r["workers"] == 1 and r["processes"] >= 2 and r["worker_peak_rss_mb"] > 0 for r in butd)
    assert result["speedup"] == {str(r["images"]): r["speedup"] for r in butd}
    assert set(result["memory_growth_mb"]) == set(result["methods"])
    assert all(set(g) == {"peak_rss_mb", "conversion_rise_mb"} for g in result["memory_growth_mb"].values())
    assert result["input_growth_mb"] > 0
    # the generated inputs stay for the next run; the converted outputs do not
    assert sorted(p.name for p in tmp_path.iterdir()) == ["40img-64d-6b", "80img-64d-6b"]
    assert not any((tmp_path / d / "out").exists() for d in ("40img-64d-6b", "80img-64d-6b"))
