"""The benchmark script, run as a user runs it, at tiny sizes."""

import json
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # the benchmark script as a subprocess

TINY = [
    "--batch-size",
    "16",
    "--num-hid",
    "32",
    "--feature-dim",
    "64",
    "--num-boxes",
    "6",
    "--images",
    "40",
    "--questions",
    "300",
    "--num-answers",
    "50",
    "--ntoken",
    "100",
    "--warmup",
    "1",
    "--steps",
    "2",
]


def test_benchmark_prints_a_table_and_a_json_line():
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "benchmark.py"), "--device", "cpu", "--quick", *TINY],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    for key in (
        "device",
        "questions_per_s",
        "reference_questions_per_s",
        "speedup",
        "pipeline_questions_per_s",
        "reference_pipeline_questions_per_s",
        "pipeline_speedup",
        "epoch_s_estimate",
        "peak_memory_gb",
        "loop_questions_per_s",
        "loop_overhead",
        "val_s_per_epoch",
        "checkpoint_s_per_epoch",
        "loop_epoch_s_estimate",
    ):
        assert key in result, key
    assert result["device"] == "cpu" and result["precision"] == "32"
    assert result["questions_per_s"] > 0 and result["reference_questions_per_s"] > 0
    # the speedup is the ratio of the two rates, up to the rounding of all three (rates to 0.1,
    # the ratio to 0.01): a slow, loaded machine gives small rates, where that rounding weighs more
    q, r = result["questions_per_s"], result["reference_questions_per_s"]
    rounding = 0.05 / (r - 0.05) + (q + 0.05) * 0.05 / (r - 0.05) ** 2 + 0.005
    assert abs(result["speedup"] - q / r) <= rounding + 1e-9
    assert any(line.startswith("training step + input") for line in lines)
    # the full loop: real figures, each consistent with the others
    loop, val, ckpt = (
        result["loop_questions_per_s"],
        result["val_s_per_epoch"],
        result["checkpoint_s_per_epoch"],
    )
    assert loop > 0 and val > 0 and ckpt > 0
    assert result["checkpoint_files_per_epoch"] == 2  # best and last
    assert abs(result["loop_overhead"] - q / loop) <= 0.01 * q / loop + 0.001
    estimate = 443_757 / loop + val + ckpt
    assert abs(result["loop_epoch_s_estimate"] - estimate) <= 0.01 * estimate + 0.01
    assert result["loop_compile_s"] is None  # not compiled
    assert any(line.startswith("full loop (Lightning)") for line in lines)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error():
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "benchmark.py"), "--device", "cuda"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1 and "no CUDA GPU" in run.stderr and "Traceback" not in run.stderr
