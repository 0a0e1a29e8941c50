"""Shared fixtures: a private copy of the recipe to run stages in, and the CASIA
location for real-data tests (skipped where it is absent)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from shared_fixtures import build_once, pytest_runtest_makereport, run_command  # noqa: F401 (a hook)

ROOT = Path(__file__).resolve().parents[1]
RECIPE_FILES = ("run.sh", "path.sh", "cmd.sh", "conf", "local", "steps", "utils", "ser", "tools")


def copy_recipe(dest: Path) -> Path:
    """The recipe's code in ``dest``, sharing this checkout's virtual environment,
    so a test's data/ and exp/ never touch the checkout's."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in RECIPE_FILES:
        src = ROOT / name
        if not src.exists():
            continue
        if name == "tools":
            (dest / "tools").mkdir(exist_ok=True)
            for item in src.iterdir():
                target = dest / "tools" / item.name
                if item.name == "venv":
                    target.symlink_to(item)
                elif item.is_file():
                    shutil.copy2(item, target)
        elif src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def toy_utterances(n: int, seed: int):
    """``n`` utterances of 6-29 random 4-dim frames, 3 emotions shifted apart."""
    import numpy as np
    from ser.batching import Utterances
    rng = np.random.default_rng(seed)
    labels = [i % 3 for i in range(n)]
    feats = [(rng.normal(size=(int(rng.integers(6, 30)), 4)) + label).astype(np.float32) for label in labels]
    return Utterances([f"u{i}" for i in range(n)], feats, labels)


def run_recipe(recipe: Path, *args: str, env: dict | None = None, check: bool = True,
               timeout: float | None = None, stall: float | None = None) -> subprocess.CompletedProcess:
    """./run.sh ARGS in ``recipe``; ``timeout`` and ``stall`` as in shared_fixtures.run_command."""
    result = run_command(["./run.sh", *args], cwd=recipe, env={**os.environ, **(env or {})},
                         stall=stall, limit=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"./run.sh {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


# Small and fast: 3 speakers x 6 emotions x 4 sentences, fbank, 2 epochs, no
# speed-perturbed copies (run.sh's default adds them for recurrent models).
TINY = ("--synth-speakers", "3", "--synth-sentences", "4", "--feat", "fbank", "--model", "lstm", "--cmvn", "train",
        "--model-opts", "hidden_size=32 num_layers=1", "--train-opts", "epochs=2 batch_size=16",
        "--baseline", "", "--speed-perturb", "")
# Its system dir: named from the options, as run.sh names it.
TINY_SYSTEM = "exp/synth/fbank_lstm_cmvn-train_hidden_size32_num_layers1_batch_size16_epochs2"


@pytest.fixture(scope="session")
def tiny_recipe(tmp_path_factory) -> Path:
    """A recipe copy that has run every stage on a tiny synth corpus (once per session)."""
    recipe = copy_recipe(tmp_path_factory.mktemp("tiny") / "recipe")
    build_once("tiny_recipe", lambda: run_recipe(recipe, "--stage", "1", *TINY))
    return recipe


@pytest.fixture(scope="session")
def casia_dir() -> Path:
    path = Path(os.environ.get("SER_CASIA_DIR", ROOT.parent / "shared" / "corpora" / "casia"))
    if not (path / "manifest.csv").is_file():
        pytest.skip(f"CASIA not found at {path} (set SER_CASIA_DIR)")
    return path


# The tiny corpus with the paper's model on lld93 (time and feature attention), for
# explain and ONNX: a few epochs, as what it learns does not matter there.
ATTENTION = (*TINY, "--feat", "lld93", "--model", "lstm_tf_at", "--cmvn", "utt",
             "--model-opts", "hidden_size=32 num_layers=1", "--train-opts", "epochs=3 batch_size=16")
ATTENTION_SYSTEM = "exp/synth/lld93_lstm_tf_at_hidden_size32_num_layers1_batch_size16_epochs3"
# The svm baseline with the options run.sh gives it (so test_recipe's baseline run shares
# it): on the tiny corpus, the one model that tells synth emotions apart after seconds.
SVM = (*TINY, "--feat", "compare_functionals", "--feat-opts", "", "--model", "svm", "--model-opts", "",
       "--train-opts", "")
SVM_SYSTEM = "exp/synth/compare_functionals_svm"


@pytest.fixture(scope="session")
def attention_bundle(tiny_recipe) -> Path:
    """Stages 3-7 of ATTENTION in the tiny recipe: cross-validation (stage 6 writes the
    attention summaries) and the final model's bundle."""
    build_once("attention_bundle", lambda: run_recipe(tiny_recipe, "--stage", "3", "--stop-stage", "7", *ATTENTION))
    return tiny_recipe / ATTENTION_SYSTEM / "final"


@pytest.fixture(scope="session")
def synth_svm_bundle(tiny_recipe) -> Path:
    """Stages 3-7 of the svm baseline in the tiny recipe."""
    build_once("synth_svm_bundle", lambda: run_recipe(tiny_recipe, "--stage", "3", "--stop-stage", "7", *SVM))
    return tiny_recipe / SVM_SYSTEM / "final"
