#!/usr/bin/env bash
# The GPU checks of butd's speed and precision choices (docs/speed.md), as one script for a fresh
# H100/H200 machine (under 8 minutes): install, the dtypes each part runs in under autocast, the GRU's
# dtype and bf16-mixed gradients against fp32, CUDA synchronisations per training step, 2 epochs of
# `butd.train` on data=realistic eager and compiled, and the benchmark at full shapes.
#
#   bash scripts/gpu_check.sh [OUT_DIR]      # default outputs/gpu_check; its figures land there too
#
# Each stage prints a header with the time; the benchmark's JSON lines go to OUT_DIR/*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${1:-outputs/gpu_check}")
mkdir -p "$OUT"
export WANDB_MODE=offline WANDB_SILENT=true BUTD_DATA_DIR="$OUT/data"
START=$SECONDS
stage() { printf '\n== %s (%ds)\n' "$*" $((SECONDS - START)); }

stage "install"
python -m pip install -q -e ".[dev]"
python - <<'EOF'
import sys

import torch

if not torch.cuda.is_available():
    sys.exit("error: torch sees no CUDA GPU here; this script checks what only a GPU shows")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name()}, "
      f"bf16 supported: {torch.cuda.is_bf16_supported()}, cuDNN {torch.backends.cudnn.version()}")
EOF

stage "dtypes of each part under CUDA autocast (tests/models/test_precision.py, cpu and cuda)"
python -m pytest -q -p no:cacheprovider tests/models/test_precision.py

stage "GRU dtype and bf16-mixed gradients against fp32 (width 1024, batch 512, one step)"
python - <<'EOF'
import torch

from butd.models import ModelConfig, build_model

torch.manual_seed(1111)
model = build_model(ModelConfig(num_hid=1024), ntoken=19_901, v_dim=2048, num_answers=3129).cuda().eval()
v = torch.rand(512, 36, 2048, device="cuda").half()  # as the stores hand features over
q = torch.randint(0, 19_902, (512, 14), device="cuda")
target = (torch.rand(512, 3129, device="cuda") > 0.999).float()
seen = {}
model.q_encoder.rnn.register_forward_hook(lambda m, i, o: seen.setdefault("gru", (i[0].dtype, o[0].dtype)))


def grads(autocast: bool) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        logits = model(v, q)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), target) * 3129
    loss.backward()
    return {n: p.grad.detach().float().clone() for n, p in model.named_parameters() if p.grad is not None}


fp32 = grads(False)
seen.clear()
bf16 = grads(True)
print(f"GRU under bf16-mixed: input {seen['gru'][0]}, output {seen['gru'][1]}")
print(f"{'parameter':<40}{'cosine':>10}{'rel. error':>12}{'zero in bf16':>14}")
for name, g in fp32.items():
    h = bf16[name]
    cos = torch.nn.functional.cosine_similarity(g.flatten(), h.flatten(), dim=0).item()
    rel = ((g - h).norm() / g.norm().clamp_min(1e-30)).item()
    lost = ((h == 0) & (g != 0)).float().mean().item()
    print(f"{name:<40}{cos:>10.5f}{rel:>12.4f}{lost:>13.2%}")
EOF

stage "prepare data=realistic"
python -m butd.prepare data=realistic

stage "CUDA synchronisations per training step (torch.cuda.set_sync_debug_mode, 1 epoch of data=realistic)"
python - <<'EOF'
import warnings
from collections import Counter

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from butd.config import compose
from butd.config.output import quiet_libraries
from butd.train import build
from butd.training.run import instantiate_group
from butd.training.validate import validate_train_config

quiet_libraries()
cfg = compose("train", ["data=realistic", "trainer.max_epochs=1", "logger=csv", "paths.output_dir=/tmp/butd-syncs"])
per_step: Counter[int] = Counter()


class CountSyncs(pl.Callback):
    """CUDA's sync debug mode on from each training batch's start to its end (step, hooks, logging)."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.step = batch_idx
        per_step[batch_idx] += 0
        torch.cuda.set_sync_debug_mode("warn")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        torch.cuda.set_sync_debug_mode("default")


counter = CountSyncs()
original = warnings.showwarning


def record(message, category, *args, **kwargs):
    if "synchronizing" in str(message):
        per_step[counter.step] += 1
    else:
        original(message, category, *args, **kwargs)


warnings.showwarning = record
warnings.simplefilter("always")
module, datamodule = build(validate_train_config(cfg))
trainer = instantiate(cfg.trainer, callbacks=[*instantiate_group(cfg.callbacks), counter], logger=False)
trainer.fit(module, datamodule=datamodule)
steps = len(per_step)
quiet = sum(1 for n in per_step.values() if n == 0)
every = cfg.trainer.log_every_n_steps
print(f"{sum(per_step.values())} synchronisations in {steps} training steps; {quiet} steps with none; "
      f"most in one step {max(per_step.values())}; log_every_n_steps={every}")
print("per step:", dict(sorted(per_step.items())))
EOF

for compiled in false true; do
  stage "2 epochs of butd.train data=realistic compile=$compiled"
  t=$SECONDS
  python -m butd.train data=realistic trainer.max_epochs=2 compile=$compiled \
    paths.log_dir="$OUT/logs" task_name="gpu_check_compile_$compiled"
  echo "compile=$compiled: $((SECONDS - t)) s for 2 epochs with validation and checkpoints, start-up included"
done

stage "benchmark at full shapes (eager, then compiled)"
python scripts/benchmark.py --device cuda | tee "$OUT/benchmark.txt"
tail -n 1 "$OUT/benchmark.txt" > "$OUT/benchmark.json"
python scripts/benchmark.py --device cuda --compile | tee "$OUT/benchmark_compile.txt"
tail -n 1 "$OUT/benchmark_compile.txt" > "$OUT/benchmark_compile.json"

stage "done"
