"""The convergence rule on hand-made histories: no gain above min_delta over the last patience epochs."""

import pytest

from butd.config.convergence import ConvergenceRule
from butd.errors import ConfigError


def history(scores):
    return [{"epoch": e, "val/score": s} for e, s in enumerate(scores)]


def test_a_plateau_converges_at_the_first_epoch_of_its_streak():
    rule = ConvergenceRule(patience=3, min_delta=0.1)
    # epochs 0-2 rise; epochs 3-5 never beat 80.0 + 0.1, so the rule first holds at epoch 5
    out = rule.assess(history([70.0, 78.0, 80.0, 80.05, 79.0, 80.1, 79.5]))
    assert out["converged"] and out["converged_epoch"] == 5
    assert out["convergence_rule"] == {"monitor": "val/score", "patience": 3, "min_delta": 0.1}


def test_a_slow_creep_above_min_delta_per_window_is_not_converged():
    rule = ConvergenceRule(patience=3, min_delta=0.1)
    creeping = [70.0 + 0.05 * e for e in range(20)]  # +0.15 per 3 epochs: never within 0.1
    out = rule.assess(history(creeping))
    assert out["converged"] is False and out["converged_epoch"] is None


def test_a_late_gain_breaks_the_streak_and_a_short_run_cannot_converge():
    rule = ConvergenceRule(patience=2, min_delta=0.0)
    # holds at epochs 3 and 4, then epoch 5 jumps: not converged at the end
    assert rule.assess(history([50.0, 60.0, 59.0, 58.0, 57.0, 65.0]))["converged"] is False
    # the same, converged again two flat epochs after the jump: the streak starts at epoch 7
    out = rule.assess(history([50.0, 60.0, 59.0, 58.0, 57.0, 65.0, 64.0, 64.5]))
    assert out["converged_epoch"] == 7
    assert rule.assess(history([50.0, 50.0]))["converged"] is False  # needs patience + 1 epochs


def test_epochs_without_the_score_are_skipped_and_order_is_by_epoch():
    rule = ConvergenceRule(patience=1, min_delta=0.0)
    rows = [{"epoch": 2, "val/score": 60.0}, {"epoch": 0, "val/score": 61.0}, {"epoch": 1, "val/loss": 2.0}]
    assert rule.assess(rows)["converged_epoch"] == 2


@pytest.mark.parametrize(
    ("patience", "delta"), [(0, 0.1), (2.5, 0.1), (True, 0.1), (3, -1.0), (3, float("nan"))]
)
def test_bad_settings_are_config_errors_naming_the_key(patience, delta):
    with pytest.raises(ConfigError, match=r"convergence\.(patience|min_delta)="):
        ConvergenceRule(patience=patience, min_delta=delta)


def test_a_recorded_rule_is_read_back_and_a_bad_record_falls_back_to_the_default():
    assert ConvergenceRule.of({"monitor": "val/score", "patience": 8, "min_delta": 0.5}).patience == 8
    assert ConvergenceRule.of({"patience": -3}) == ConvergenceRule()
    assert ConvergenceRule.of(None) == ConvergenceRule()
