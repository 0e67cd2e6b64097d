"""What a command prints: one line for a mistyped key, console lines without a prefix, a short
model line."""

import logging

import pytest

from butd.config import ModelConfig, compose
from butd.config.entry import composition_error
from butd.config.output import ConsoleFormatter


@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("model.activaton=relu", "model.activaton is not a model option; did you mean model.activation?"),
        (
            "trainer.max_epoch=3",
            "trainer.max_epoch is not a trainer option; did you mean trainer.max_epochs?",
        ),
        ("modle=concat", "modle is not an option of the train config; did you mean model?"),
        (
            "model.xyzzy=1",
            "model.xyzzy is not a model option; `python -m butd.train --cfg job --package model` lists them",
        ),
        (
            "model=concatt",
            "model=concatt is not a model option (concat, newatt, paper, question_only); "
            "did you mean model=concat?",
        ),
    ],
)
def test_a_composition_error_is_one_line_with_the_closest_option(override, line):
    with pytest.raises(Exception) as raised:
        compose("train", [override])
    assert composition_error(raised.value, "train") == line


def test_the_console_shows_the_message_and_names_warnings():
    formatter = ConsoleFormatter()

    def record(level: int) -> logging.LogRecord:
        return logging.LogRecord("butd.x", level, __file__, 1, "wrote %s", ("/tmp/a",), None)

    assert formatter.format(record(logging.INFO)) == "wrote /tmp/a"
    assert formatter.format(record(logging.WARNING)) == "warning: wrote /tmp/a"


def test_the_model_line_is_short_and_names_what_differs_from_the_defaults():
    assert ModelConfig(num_hid=256).summary() == "butd, newatt attention, relu, width 256"
    line = ModelConfig(attention="concat", activation="gated_tanh", emb_dim=50, output="softmax").summary()
    assert line == "butd, concat attention, gated_tanh, width 1024, emb_dim=50, output=softmax"
