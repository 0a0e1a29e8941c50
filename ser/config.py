"""Configuration helpers: YAML files in conf/ and "key=value ..." overrides from
the command line."""
from __future__ import annotations

from pathlib import Path

import yaml

from ser.errors import SerError

CONF_ROOT = Path(__file__).resolve().parents[1] / "conf"  # the recipe's conf/
MODEL_CONF_DIR = CONF_ROOT / "model"  # conf/model/<name>.yaml: the systems run.sh knows


def load_yaml(path: Path | str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SerError(f"{path}: config file not found")
    with open(path) as f:
        return yaml.safe_load(f) or {}


def parse_key_values(text: str) -> dict:
    """``"frame_shift=0.01 num_filters=40"`` -> dict with YAML-typed values."""
    options = {}
    for item in text.replace(",", " ").split():
        if "=" not in item:
            raise SerError(f"option {item!r} is not key=value")
        key, value = item.split("=", 1)
        options[key] = _typed(value)
    return options


def _typed(value: str):
    # YAML alone reads "1e-3" as a string (YAML 1.1 floats need a dot).
    for convert in (int, float):
        try:
            return convert(value)
        except ValueError:
            pass
    return yaml.safe_load(value)
