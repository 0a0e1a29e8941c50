"""The smoke lane of the scripts in local/: every benchmark (local/bench_*) runs on tiny
inputs with its --quick option and must print its closing figure line in the format its
--help documents, so that a change elsewhere that breaks a benchmark fails here instead
of going unnoticed until someone wants its figures. (local/compare.py, make_results.py
and run_ablation.sh run end to end in test_recipe.py and test_make_results.py.) Every
script of local/ answers --help with its options' defaults.

The figures of a quick run mean nothing; only the lines' format and the work behind
them (files, models, backends) are checked."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import ROOT, copy_recipe
from ser.config import load_model_config

pytestmark = pytest.mark.bench

# The closing line of each benchmark, as its --help and header document it.
CLOSING_LINES = {
    "bench_features.sh": r"rtf_nj1=\d+\.\d{4} rtf_nj2=\d+\.\d{4} overhead=-?\d+\.\d{3} mb_per_hour=\d+\.\d feat=\w+",
    "bench_lstm.py": r"ratio_at_vs_torch_lstm=\d+\.\d{3}",
    "bench_train.sh": r"bench_train corpus=casia protocol=loso seeds=1 cores=\d+ lstm_tf_at_s=\d+ svm_s=\d+ "
                      r"ratio=\d+\.\d\d",
    "bench_infer.py": r"bench_infer files=\d+ audio_s=\d+\.\d threads=\d+ copies=\d+ torchscript_s=\d+\.\d\d "
                      r"onnx_s=\d+\.\d\d torchscript_model_s=\d+\.\d{3} onnx_model_s=\d+\.\d{3} "
                      r"model_ratio=\d+\.\d\d max_diff=\d\.\de[-+]\d\d",
    "bench_devices.py": r"\w+ device=cpu threads=\d+ s_per_epoch=\d+\.\d\d",
}
EMOTIONS = ("angry", "fear", "happy", "neutral", "sad", "surprise")


def run(*command, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, command))}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def closing_line(result: subprocess.CompletedProcess, script: str) -> str:
    """The last line of stdout, which must be the script's documented figure line."""
    last = result.stdout.rstrip("\n").rsplit("\n", 1)[-1]
    assert re.fullmatch(CLOSING_LINES[script], last), f"{script}'s last line: {last!r}\n{result.stdout}"
    return last


def figures(line: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in line.split() if "=" in item)


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> Path:
    """A CASIA-layout corpus of 0.6 s tones: 2 speakers (2 LOSO folds, which run.pl trains
    at once) x 6 emotions x 3 sentences, the emotion in the pitch."""
    corpus = tmp_path_factory.mktemp("tones") / "casia"
    t = np.arange(int(0.6 * 16000)) / 16000
    for s, speaker in enumerate(("liuchanhg", "wangzhe")):
        for e, emotion in enumerate(EMOTIONS):
            (corpus / speaker / emotion).mkdir(parents=True)
            for sentence in range(3):
                pitch = 150 + 60 * e + 10 * s + 3 * sentence
                sf.write(corpus / speaker / emotion / f"20{sentence}.wav",
                         0.5 * np.sin(2 * np.pi * pitch * t), 16000, subtype="PCM_16")
    return corpus


def test_every_benchmark_has_a_smoke_test():
    benchmarks = {p.name for p in (ROOT / "local").glob("bench_*")} - {"bench_features.py"}  # run by its .sh
    assert benchmarks == set(CLOSING_LINES), "a benchmark without a closing-line pattern here has no smoke test"


def help_options(text: str) -> list[str]:
    """The entries of an options list (argparse's or utils/parse_options.sh's), each with
    its continuation lines joined."""
    entries: list[str] = []
    for line in text.split("Options (default values in brackets):")[-1].split("options:")[-1].splitlines():
        if re.match(r"  {0,4}-", line):
            entries.append(line.strip())
        elif entries and line.startswith("      "):
            entries[-1] += " " + line.strip()
        elif not line.strip():
            continue
        else:
            break
    return entries


LOCAL_SCRIPTS = sorted(p.name for p in (ROOT / "local").iterdir() if p.suffix in (".py", ".sh"))


@pytest.mark.parametrize("script", LOCAL_SCRIPTS)
def test_every_script_answers_help_with_its_defaults(script):
    command = [sys.executable, f"local/{script}"] if script.endswith(".py") else [f"local/{script}"]
    out = run(*command, "--help", timeout=120)
    options = [o for o in help_options(out.stdout) if not o.startswith(("-h,", "--help"))]
    assert options, f"{script} --help lists no options:\n{out.stdout}"
    for option in options:
        # A value option shows its default ([value] or (default: value)), says what stands in for
        # one, or is required; an argparse flag (no metavar) has none.
        takes_value = re.match(r"(-\w, )?--[\w-]+(\s+\[|[ =][A-Z{])", option)
        assert not takes_value or re.search(r"\[.*\]|default|\(required\)", option), f"{script}: {option}"


@pytest.mark.slow
def test_bench_features_times_the_feature_stage_and_the_extractor(tones):
    out = run("local/bench_features.sh", "--corpus-dir", tones, "--quick")
    fig = figures(closing_line(out, "bench_features.sh"))
    # --quick: 6 of the 54 files, prepared by the corpus stage and then subset.
    assert "(6 files, 3.6 s of audio); feat lld93;" in out.stdout
    assert fig["feat"] == "lld93" and "lld93 extractor direct, 1 process:" in out.stdout
    # 93 float32 per 16 ms frame is 83.7 MB an hour, less a frame per 0.6 s file, plus the
    # archives' headers: a figure far from it is in other units.
    assert 70 < float(fig["mb_per_hour"]) < 90, fig


@pytest.mark.slow
def test_bench_features_takes_any_feature_type_and_its_options(tones):
    out = run("local/bench_features.sh", "--corpus-dir", tones, "--quick", "--feat", "fbank",
              "--feat-opts", "num_filters=40")
    fig = figures(closing_line(out, "bench_features.sh"))
    assert fig["feat"] == "fbank" and "feat fbank (num_filters=40)" in out.stdout
    # 40 float32 every 10 ms: 57.6 MB an hour (80 filters would be twice that).
    assert 50 < float(fig["mb_per_hour"]) < 62, fig


def test_bench_features_stops_on_a_feature_type_it_does_not_know(tones):
    out = subprocess.run(["local/bench_features.sh", "--corpus-dir", tones, "--quick", "--feat", "lld39"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "'lld39' is not a feature type" in out.stderr
    assert "rtf_nj1=" not in out.stdout


@pytest.mark.slow
@pytest.mark.real_data
def test_bench_features_on_casia(casia_dir):
    out = run("local/bench_features.sh", "--corpus-dir", casia_dir, "--quick")
    closing_line(out, "bench_features.sh")
    assert "(6 files," in out.stdout


def test_bench_lstm_builds_the_models_from_their_configs():
    out = run(sys.executable, "local/bench_lstm.py", "--quick")
    closing_line(out, "bench_lstm.py")
    frame_stack = load_model_config("lstm_at")["frame_stack"]
    # --quick's hidden_size=8 over conf/model/lstm_at.yaml; its frame stacking from there (or its base):
    # 12 frames of 93 features are ceil(12 / k) steps of 93k.
    assert f"frame_stack={frame_stack} steps={-(-12 // frame_stack)} step_dim={93 * frame_stack} hidden=8" \
        in out.stdout
    assert re.search(r"^epoch_s .* lstm_tf_at=\d+\.\d\d lstm_tf=\d+\.\d\d$", out.stdout, re.M)
    bad = subprocess.run([sys.executable, "local/bench_lstm.py", "--quick", "--model-opts", "hiden_size=8"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "hiden_size is an option of none of" in bad.stderr


def test_bench_devices_trains_with_the_recipes_loop():
    out = run(sys.executable, "local/bench_devices.py", "--quick", "--devices", "cpu")
    assert closing_line(out, "bench_devices.py").startswith("lstm_tf_at device=cpu threads=1 ")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_bench_devices_ratio_line_on_cuda():
    out = run(sys.executable, "local/bench_devices.py", "--quick")
    assert re.fullmatch(r"ratio_cpu_over_cuda lstm_tf_at=\d+\.\d\d", out.stdout.rstrip("\n").rsplit("\n", 1)[-1])


@pytest.mark.slow
def test_bench_infer_runs_both_backends(attention_bundle, tones):
    out = run(sys.executable, "local/bench_infer.py", "--quick", "--model", attention_bundle, tones)
    fig = figures(closing_line(out, "bench_infer.py"))
    assert fig["files"] == "4" and float(fig["audio_s"]) == pytest.approx(2.4)
    assert float(fig["max_diff"]) < 1e-3  # the two backends' posteriors agree


@pytest.mark.slow
def test_bench_train_times_stage_5_of_both_systems(tones, tmp_path):
    recipe = copy_recipe(tmp_path / "recipe")
    out = run("local/bench_train.sh", "--casia-dir", tones, "--quick", "true", cwd=recipe)
    closing_line(out, "bench_train.sh")
    logs = {p.name: p.read_text() for p in (recipe / "exp" / "casia").glob("bench_*.log")}
    assert {"bench_lstm_tf_at.log", "bench_svm.log"} <= set(logs)
    # --quick's settings reached run.sh: the timed runs are those of the tiny model, one per fold.
    assert re.search(r"trained 2 run\(s\) in exp/casia/fbank_lstm_tf_at_\S*hidden_size8\S*_epochs1_bench-\d+/loso",
                     logs["bench_lstm_tf_at.log"]), logs["bench_lstm_tf_at.log"]
    assert "trained 2 run(s) in exp/casia/compare_functionals_svm_bench-" in logs["bench_svm.log"]
    assert not list((recipe / "exp" / "casia").glob("*_bench-*")), "the bench exp dirs are removed"
