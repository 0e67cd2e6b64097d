"""When a run has converged: one rule, read by the run's record (metrics.json), its optional early
stop, and `butd.report` (which applies it to the history of runs recorded before the rule).

The rule, for the monitored score s (val/score, higher is better), epochs counted 0-based as in
metrics.json: the rule holds at epoch e when at least `patience` epochs came before the last
`patience` ones' window and that window brought no gain above `min_delta` points:

    max(s[e - patience + 1 .. e]) <= max(s[0 .. e - patience]) + min_delta

A run is converged when the rule holds at its last epoch; `converged_epoch` is the first epoch of
the streak of epochs, ending at the last, at which it holds (where an early stop would have
stopped). A score that still creeps up by more than `min_delta` per `patience` epochs is not
converged, however small each step.

Never imports torch: the report reads it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

from butd.errors import ConfigError


@dataclass(frozen=True)
class ConvergenceRule:
    """No gain above `min_delta` (points of `monitor`) over the last `patience` epochs."""

    monitor: str = "val/score"
    patience: int = 10
    min_delta: float = 0.1

    def __post_init__(self) -> None:
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1:
            raise ConfigError(f"convergence.patience={self.patience!r} is invalid; expected an integer >= 1")
        delta = self.min_delta
        if isinstance(delta, bool) or not isinstance(delta, Real) or not math.isfinite(delta) or delta < 0:
            raise ConfigError(f"convergence.min_delta={delta!r} is invalid; expected a number >= 0")

    def holds(self, scores: Sequence[float]) -> bool:
        """Whether the rule holds after the epochs whose scores are `scores` (in epoch order)."""
        if len(scores) <= self.patience:
            return False
        window, before = scores[-self.patience :], scores[: -self.patience]
        return max(window) <= max(before) + self.min_delta

    def assess(self, history: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """What metrics.json records: `converged`, `converged_epoch` and the rule itself."""
        rows = sorted((r for r in history if _finite(r.get(self.monitor))), key=lambda r: r["epoch"])
        scores = [float(r[self.monitor]) for r in rows]
        first = None
        for end in range(len(scores), 0, -1):  # walk back over the streak that ends at the last epoch
            if not self.holds(scores[:end]):
                break
            first = rows[end - 1]["epoch"]
        return {
            "converged": first is not None,
            "converged_epoch": first,
            "convergence_rule": {
                "monitor": self.monitor,
                "patience": self.patience,
                "min_delta": self.min_delta,
            },
        }

    @classmethod
    def of(cls, record: Mapping[str, Any] | None) -> ConvergenceRule:
        """The rule a run recorded (`convergence_rule` in its metrics.json), else the default."""
        if not isinstance(record, Mapping):
            return cls()
        try:
            return cls(
                monitor=str(record.get("monitor", cls.monitor)),
                patience=record.get("patience", cls.patience),
                min_delta=record.get("min_delta", cls.min_delta),
            )
        except ConfigError:
            return cls()


def _finite(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
