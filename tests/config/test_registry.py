"""Each switch is declared once: every registry entry has an implementation, every implementation an
entry, and an unknown value is one error line that names the valid values and the closest."""

import pytest

from butd.config.data import DATA_FORMATS, DataConfig
from butd.config.debias import DEBIAS_METHODS, DebiasConfig
from butd.config.model import ACTIVATIONS, ATTENTIONS, CLASSIFIERS, MODELS, OUTPUTS, ModelConfig
from butd.config.registry import Option, Registry
from butd.errors import ConfigError

REGISTRIES = [DEBIAS_METHODS, MODELS, ATTENTIONS, ACTIVATIONS, CLASSIFIERS, OUTPUTS, DATA_FORMATS]


def test_every_entry_is_implemented_once_the_implementing_modules_are_imported():
    import butd.models.build  # noqa: F401  (models, attention, activations, classifiers)
    import butd.preparation.formats  # noqa: F401  (the VQA-style readers)
    import butd.preparation.gqa  # noqa: F401  (GQA's own layout)
    import butd.training.debias  # noqa: F401  (debias losses; the output losses via metrics)

    for registry in REGISTRIES:
        assert set(registry.implemented) == set(registry.names), registry.key


def test_an_unknown_value_names_the_key_the_values_and_the_closest():
    with pytest.raises(
        ConfigError, match=r"^debias.name='gge_d' is invalid; expected one of \[.*\]; did you mean gge_dq\?$"
    ):
        DebiasConfig(name="gge_d")
    with pytest.raises(
        ConfigError, match=r"^model.attention='concatt' is invalid; .*; did you mean concat\?$"
    ):
        ModelConfig(attention="concatt")
    with pytest.raises(
        ConfigError, match=r"^data.format='vqa' is invalid; expected one of \['vqa2', 'vqacp', 'gqa'\]"
    ):
        DataConfig(name="x", raw_dir="r", cache_dir="c", format="vqa")


def test_an_implementation_binds_only_a_declared_name_and_only_once():
    registry = Registry("demo.key", [Option("a"), Option("b")])
    registry.implements("a")(len)
    with pytest.raises(ValueError, match="implemented twice"):
        registry.implements("a")(print)
    with pytest.raises(ValueError, match="'c', which is not declared"):
        registry.implements("c")(print)
    assert registry.implementation("a") is len and registry.implemented == ("a",)
    with pytest.raises(ConfigError, match="demo.key='z' is invalid"):
        registry.implementation("z")


def test_the_mode_check_reads_the_entries():
    two_step = [m.name for m in DEBIAS_METHODS if "iter" in m.modes]
    assert two_step == ["gge_q", "gge_dq"]
    with pytest.raises(ConfigError, match="only gge_q and gge_dq train in two steps per batch"):
        DebiasConfig(name="rubi", mode="iter")
