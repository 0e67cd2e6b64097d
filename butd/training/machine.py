"""The machine a run ran on: what a CPU score depends on, recorded beside the score.

A CPU run's numbers depend on the thread count (torch sums in a different order with more
threads), and its speed on the CPU model; a GPU run's on the device and the CUDA build. Each
run records `describe(...)` in metrics.json (`machine`) and in its W&B config, and prints
`machine_line(...)` among its first lines.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

#: accelerator settings (`trainer.accelerator`) that pick a CUDA device when one is there
_CUDA_ACCELERATORS = ("auto", "gpu", "cuda")


def cpu_model() -> str:
    """The CPU's model name (`/proc/cpuinfo` on Linux), else what the platform module says."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model") and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def describe(*, accelerator: str = "auto", devices: Any = 1) -> dict[str, Any]:
    """CPU model and cores, torch's intra-op thread count, the device the run trains on
    (from `trainer.accelerator` and `trainer.devices`), torch's version and its CUDA version."""
    import torch

    cuda = accelerator in _CUDA_ACCELERATORS and torch.cuda.is_available()
    if cuda:
        device = f"cuda ({torch.cuda.get_device_name(0)})"
    elif accelerator == "mps" or (accelerator == "auto" and torch.backends.mps.is_available()):
        device = "mps"
    else:
        device = "cpu"
    if devices not in (1, "1", None):
        device += f" x {devices}"
    return {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }


def machine_line(machine: dict[str, Any]) -> str:
    """One line: `machine: AMD EPYC (2 cores), torch 2.13.0+cpu with 2 threads, CUDA none, device cpu`."""
    return (
        f"machine: {machine['cpu']} ({machine['cpu_cores']} cores), torch {machine['torch']} with "
        f"{machine['torch_threads']} threads, CUDA {machine['cuda'] or 'none'}, device {machine['device']}"
    )
