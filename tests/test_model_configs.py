"""conf/model/: every model's resolved config is the one it had before the recurrent models
shared their keys in conf/model/base/recurrent.yaml (tests/golden/model_configs.json,
recorded at b2a971e), key order included, since run records keep it."""
from __future__ import annotations

import json

import pytest

from conftest import ROOT
from ser.config import MODEL_CONF_DIR, list_models, load_model_config
from ser.errors import SerError
from ser.model import MODEL_VARIANTS, build_model

GOLDEN = json.loads((ROOT / "tests/golden/model_configs.json").read_text())


def test_the_models_are_those_recorded_and_bases_are_not_models():
    assert list_models() == sorted(GOLDEN)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_resolved_configs_are_unchanged(name):
    config = load_model_config(name)
    assert list(config.items()) == list(GOLDEN[name]["file"].items())
    if name in MODEL_VARIANTS:
        built = build_model(93, 6, **config).config
        assert list(built.items()) == list(GOLDEN[name]["built"].items())


def test_a_model_key_overrides_its_base_and_a_missing_base_is_named(tmp_path):
    own = tmp_path / "wide.yaml"
    own.write_text("base: recurrent\nvariant: lstm\nhidden_size: 512\n")
    config = load_model_config(str(own))
    assert list(config)[:2] == ["variant", "hidden_size"] and config["hidden_size"] == 512
    assert config["num_layers"] == load_model_config("lstm")["num_layers"]
    own.write_text("base: recurent\nvariant: lstm\n")
    with pytest.raises(SerError, match=f"base 'recurent' has no config {MODEL_CONF_DIR}/base/recurent.yaml"):
        load_model_config(str(own))
    own.write_text("- lstm\n")
    with pytest.raises(SerError, match="expected a mapping with a 'variant' key"):
        load_model_config(str(own))
