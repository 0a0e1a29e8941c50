"""Configuration helpers: YAML files in conf/ and "key=value ..." overrides from
the command line."""
from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any, Dict, List

import yaml

from ser.errors import SerError

CONF_ROOT = Path(__file__).resolve().parents[1] / "conf"  # the recipe's conf/
MODEL_CONF_DIR = CONF_ROOT / "model"  # conf/model/<name>.yaml: the systems run.sh knows
# conf/model/base/<name>.yaml: keys shared by several models, named by their "base" key
MODEL_BASE_DIR = MODEL_CONF_DIR / "base"


def load_yaml(path: Path | str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SerError(f"{path}: config file not found")
    with open(path) as f:
        return yaml.safe_load(f) or {}


def shell_assignments(path: Path, stop_at: str = "") -> dict[str, str]:
    """The ``name=value`` lines of a shell file (up to the first line containing ``stop_at``),
    the lines utils/parse_options.sh lists as options: a lower-case name, a plain or quoted
    value, an optional comment."""
    values = {}
    for line in Path(path).read_text().splitlines():
        if stop_at and stop_at in line:
            break
        if not re.match(r"\s*[a-z][a-z0-9_]*=", line):
            continue
        words = shlex.split(line, comments=True)
        if len(words) != 1 or any(c in words[0] for c in "$`"):
            raise SerError(f"{path}: {line.strip()!r} is not a plain name=value line")
        name, value = words[0].split("=", 1)
        values[name] = value
    return values


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


def list_models() -> List[str]:
    """The models run.sh knows: the names of conf/model/*.yaml."""
    return sorted(p.stem for p in MODEL_CONF_DIR.glob("*.yaml"))


def load_model_config(name: str) -> Dict[str, Any]:
    """conf/model/<name>.yaml (or the YAML file ``name``) as a plain dict: its variant, then
    the keys of its base (conf/model/base/<base>.yaml), then its own, which win."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else MODEL_CONF_DIR / f"{name}.yaml"
    if not path.is_file():
        raise SerError(f"no model config {path}; variants: {', '.join(list_models())}")
    own = load_yaml(path)
    if not isinstance(own, dict) or "variant" not in own:
        raise SerError(f"{path}: expected a mapping with a 'variant' key")
    base = {}
    if "base" in own:
        base_path = MODEL_BASE_DIR / f"{own['base']}.yaml"
        if not base_path.is_file():
            raise SerError(f"{path}: base {own['base']!r} has no config {base_path}")
        base = load_yaml(base_path)
    # The variant first and the base's keys in their order: the order the configs had
    # before they shared a base, which the run records (run_config.json) keep.
    return {"variant": own["variant"], **base, **{k: v for k, v in own.items() if k not in ("base", "variant")}}
