"""A run's first line (its machine) and its per-epoch summary lines."""

import os

import torch

from butd.training.machine import describe, machine_line
from butd.training.progress import EpochProgress, epoch_line


def test_the_machine_names_cpu_threads_device_and_versions():
    machine = describe(accelerator="cpu", devices=1)
    assert machine["cpu"] and machine["cpu"] != "unknown"
    assert machine["cpu_cores"] == os.cpu_count()
    assert machine["torch_threads"] == torch.get_num_threads()
    assert machine["device"] == "cpu"
    assert machine["torch"] == torch.__version__ and machine["cuda"] == torch.version.cuda
    line = machine_line(machine)
    assert line.startswith(f"machine: {machine['cpu']} ({os.cpu_count()} cores), torch {torch.__version__} ")
    assert f"with {torch.get_num_threads()} threads" in line and line.endswith("device cpu")
    assert describe(accelerator="cpu", devices=2)["device"] == "cpu x 2"


def test_an_epoch_line_holds_the_epochs_metrics_in_a_fixed_order():
    metrics = {
        "val/score": torch.tensor(60.046),
        "train/loss_epoch": torch.tensor(2.91449),
        "train/loss": torch.tensor(2.5),  # one step's loss: not the epoch's
        "val/loss": 3.0171,
        "train/score": 61.2,
    }
    line = epoch_line(epoch=3, max_epochs=15, metrics=metrics, seconds=9.84)
    assert line == (
        "epoch 3/14: train/loss_epoch 2.914, train/score 61.20, val/loss 3.017, val/score 60.05 (9.8 s)"
    )


def test_bars_only_where_asked():
    assert not EpochProgress(bars=False).is_enabled
    assert EpochProgress(bars=True).is_enabled
