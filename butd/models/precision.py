"""The dtypes the model's parts compute in, chosen here rather than left to autocast.

- Features arrive in their stored float16 and are cast once, at the model's entry, to the
  compute dtype: autocast's (bf16 under `bf16-mixed`) where it is on, else the parameters'.
- The question GRU runs in its parameters' dtype (float32) with autocast off: CUDA autocast
  has sent cuDNN's RNN to float16 even under bf16, where no gradient scaler guards against
  underflow, and 14 steps of a 1024-wide GRU are a small part of a step.
- Everything else (the weight-normed layers, attention, classifier) follows autocast.
"""

from __future__ import annotations

import torch
from torch import nn

#: the dtype the question GRU computes in under mixed precision (documented in docs/speed.md)
GRU_DTYPE_UNDER_AUTOCAST = torch.float32


def compute_dtype(x: torch.Tensor, module: nn.Module) -> torch.dtype:
    """Autocast's dtype for `x`'s device where autocast is on, else `module`'s parameter dtype."""
    kind = x.device.type
    if torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return next(module.parameters()).dtype
