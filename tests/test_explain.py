"""What the attention models look at: the weights themselves, the descriptor groups,
`ser explain` on a trained bundle and its errors, and stage 6's per-fold summaries."""
from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
import torch

from conftest import ATTENTION_SYSTEM, TINY, TINY_SYSTEM, run_recipe
from ser.bin.explain import main as explain_main
from ser.bin.infer import main as infer_main
from ser.datadir import read_data_dir
from ser.explain import DESCRIPTOR_GROUPS, descriptor_groups, explain_batch, time_profile
from ser.features import build_extractor, feature_names
from ser.errors import SerError
from ser.model import ATTENTION_VARIANTS, MODEL_VARIANTS, build_model

LLD93_NAMES = feature_names(build_extractor("lld93"), "lld93")


def cli(main, capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


@pytest.mark.parametrize("variant", MODEL_VARIANTS)
def test_attention_weights_sum_to_one_on_valid_frames_and_vanish_on_padding(variant):
    torch.manual_seed(0)
    model = build_model(93, 6, variant, hidden_size=16, num_layers=2).eval()
    k = model.frame_stack
    lengths = torch.tensor([50, 7, 1, 31])
    feats = torch.randn(4, 50, 93)
    with torch.no_grad():
        out = model.attention(feats, lengths)
        assert torch.equal(out["logits"], model(feats, lengths))  # the same computation as forward
    steps = (lengths + k - 1) // k
    assert out["valid"].shape == (4, int(steps.max())) and out["valid"].sum(1).tolist() == steps.tolist()
    if out["time"] is None:
        assert variant not in ("lstm_t", "lstm_tf", "lstm_tf_at")
    else:
        time = out["time"]
        assert time.shape == (4, (50 + k - 1) // k)  # one weight per model step
        np.testing.assert_allclose(time.sum(1).numpy(), 1.0, atol=1e-6)
        assert bool((time[~out["valid"]] == 0).all()) and bool((time[out["valid"]] > 0).all())
        for row, n in enumerate(lengths.tolist()):  # padding does not move the weights
            alone = model.attention(feats[row:row + 1, :n], lengths[row:row + 1])["time"][0]
            np.testing.assert_allclose(alone.detach().numpy(), time[row, :steps[row]].detach().numpy(), atol=1e-5)
    if out["feature"] is not None:
        np.testing.assert_allclose(out["feature"].sum(2).detach().numpy(), 1.0, atol=1e-5)
    assert model.has_attention == (variant in ATTENTION_VARIANTS)


def test_descriptor_groups_cover_the_93_columns_once():
    assert len(LLD93_NAMES) == 93
    groups = descriptor_groups(LLD93_NAMES)
    assert list(groups) == ["pitch", "voice quality", "loudness", "MFCC", "mel", "LPC/LSP", "ZCR"]
    columns = sorted(c for cols in groups.values() for c in cols)
    assert columns == list(range(93))
    assert {g: len(c) for g, c in groups.items()} == {"pitch": 4, "voice quality": 6, "loudness": 2, "MFCC": 30,
                                                      "mel": 34, "LPC/LSP": 16, "ZCR": 1}
    assert LLD93_NAMES.index("F0_sma") in groups["pitch"] and LLD93_NAMES.index("pcm_zcr") in groups["ZCR"]
    with pytest.raises(SerError, match=r"in no group: \['brand_new'\]"):
        descriptor_groups(LLD93_NAMES + ["brand_new"])
    assert len(DESCRIPTOR_GROUPS) == 7


def test_feature_group_shares_and_time_profile():
    torch.manual_seed(1)
    model = build_model(93, 4, "lstm_tf_at", hidden_size=16, num_layers=1).eval()
    feats = [np.random.default_rng(i).standard_normal((n, 93)).astype(np.float32) for i, n in enumerate((40, 90))]
    exps = explain_batch(model, feats, descriptor_groups(LLD93_NAMES))
    for exp, f in zip(exps, feats, strict=True):
        assert exp.num_steps == -(-len(f) // model.frame_stack) and exp.step_groups.shape == (exp.num_steps, 7)
        assert abs(sum(exp.groups.values()) - 1) < 1e-6 and min(exp.groups.values()) >= 0
        assert exp.selected.any() and np.all(exp.time[exp.selected] >= 1 / exp.num_steps)
        with torch.no_grad():
            ref = torch.softmax(model(torch.from_numpy(f)[None], torch.tensor([len(f)])), -1)[0].numpy()
        np.testing.assert_allclose(exp.posteriors, ref, atol=1e-5)
    np.testing.assert_allclose(time_profile(np.full(9, 1 / 9)), 1.0)
    np.testing.assert_allclose(time_profile(np.array([1.0, 0, 0, 0]), bins=8), [4, 4, 0, 0, 0, 0, 0, 0])
    with pytest.raises(SerError, match="no attention"):
        explain_batch(build_model(93, 4, "lstm_at", hidden_size=8, num_layers=1), feats, {})


@pytest.mark.slow
def test_explain_draws_and_writes_weights(attention_bundle, tiny_recipe, tmp_path, capsys):
    wavs = read_data_dir(tiny_recipe / "data" / "synth").wav
    utts = list(wavs)[:3]
    status, out, err = cli(explain_main, capsys, "--model", attention_bundle, "--out", tmp_path / "ex",
                           *[wavs[u] for u in utts])
    assert status == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    _, infer_out, _ = cli(infer_main, capsys, "--model", attention_bundle, *[wavs[u] for u in utts])
    for row, ref in zip(rows, csv.DictReader(io.StringIO(infer_out)), strict=True):
        assert row["id"] == ref["id"] and row["emotion"] == ref["emotion"]  # what ser infer says
        np.testing.assert_allclose([float(row[k]) for k in ref if k not in ("id", "emotion", "error")],
                                   [float(ref[k]) for k in ref if k not in ("id", "emotion", "error")], atol=1e-4)
    pngs = sorted((tmp_path / "ex").glob("*.png"))
    assert len(pngs) == 3 and all(p.stat().st_size > 10_000 for p in pngs)
    data = json.loads(pngs[0].with_suffix(".json").read_text())
    weights = np.array(data["time_attention"])
    assert len(weights) == data["num_steps"] == len(data["step_start"]) == -(-data["num_frames"] // 3)
    assert abs(weights.sum() - 1) < 1e-5 and data["frame_stack"] == 3 and data["frame_shift"] == 0.016
    assert set(data["feature_groups"]) == {"pitch", "voice quality", "loudness", "MFCC", "mel", "LPC/LSP", "ZCR"}
    assert abs(sum(data["feature_groups"].values()) - 1) < 1e-6
    assert sum(len(c) for c in data["group_columns"].values()) == 93
    assert data["picture"] == pngs[0].name and data["emotion"] in data["posteriors"]


@pytest.mark.slow
def test_inputs_that_flatten_alike_keep_their_own_outputs(attention_bundle, tiny_recipe, tmp_path, capsys):
    # x/y_z.wav and x_y/z.wav both flatten to x_y_z.wav: explain and the timeline
    # pictures of infer --segments --plot keep one file each, none overwritten.
    wavs = list(read_data_dir(tiny_recipe / "data" / "synth").wav.values())
    inputs = [tmp_path / "x/y_z.wav", tmp_path / "x_y/z.wav"]
    for wav, path in zip(wavs[:2], inputs):
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wav, path)
    status, _, err = cli(explain_main, capsys, "--model", attention_bundle, "--out", tmp_path / "ex", *inputs)
    assert status == 0, err
    files = sorted(json.loads(p.read_text())["file"] for p in (tmp_path / "ex").glob("*.json"))
    assert files == sorted(str(p) for p in inputs)
    pictures = {json.loads(p.read_text())["picture"] for p in (tmp_path / "ex").glob("*.json")}
    assert pictures == {p.name for p in (tmp_path / "ex").glob("*.png")} and len(pictures) == 2
    status, _, err = cli(infer_main, capsys, "--model", attention_bundle, "--segments", "--plot", tmp_path / "plots",
                         *inputs)
    assert status == 0, err
    assert len(list((tmp_path / "plots").glob("*.png"))) == 2


@pytest.mark.slow
def test_explain_reports_bad_files_as_infer_does(attention_bundle, tiny_recipe, tmp_path, capsys):
    good = next(iter(read_data_dir(tiny_recipe / "data" / "synth").wav.values()))
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF not really a wav file" * 40)
    (tmp_path / "empty.wav").touch()
    inputs = [tmp_path / "corrupt.wav", tmp_path / "empty.wav", good, tmp_path / "missing.wav"]
    status, out, _ = cli(explain_main, capsys, "--model", attention_bundle, "--out", tmp_path / "ex", *inputs)
    infer_status, infer_out, _ = cli(infer_main, capsys, "--model", attention_bundle, *inputs)
    assert status == infer_status == 1
    errors = [r["error"] for r in csv.DictReader(io.StringIO(out))]
    assert errors == [r["error"] for r in csv.DictReader(io.StringIO(infer_out))]
    assert "cannot decode" in errors[0] and errors[1] == "empty file (0 bytes)" and errors[2] == ""
    assert errors[3] == "file not found"
    assert [p.name for p in (tmp_path / "ex").glob("*.png")] != []  # the good file is still explained


@pytest.mark.slow
def test_explain_refuses_a_model_without_attention(tiny_recipe, tmp_path, capsys):
    run_recipe(tiny_recipe, "--stage", "7", "--stop-stage", "7", *TINY)  # lstm: no attention
    wav = next(iter(read_data_dir(tiny_recipe / "data" / "synth").wav.values()))
    status, out, err = cli(explain_main, capsys, "--model", tiny_recipe / TINY_SYSTEM / "final", "--out", tmp_path,
                           wav)
    assert status == 2 and out == ""
    assert "model 'lstm' has no attention layer to show; explain works with lstm_t, lstm_f" in err


@pytest.mark.slow
def test_stage6_writes_attention_per_fold_and_links_it(attention_bundle, tiny_recipe):
    system = tiny_recipe / ATTENTION_SYSTEM
    emotions = read_data_dir(tiny_recipe / "data" / "synth").emotions
    report = (system / "RESULTS.md").read_text()
    for fold in ("fold1", "fold2", "fold3"):
        run = system / "loso" / "seed1" / fold
        assert (run / "attention.png").stat().st_size > 10_000
        rows = list(csv.DictReader(open(run / "attention_time.tsv"), delimiter="\t"))
        assert [r["emotion"] for r in rows] == emotions + ["all"]
        profile = [float(v) for k, v in rows[-1].items() if k.startswith("t")]
        assert len(profile) == 20 and abs(np.mean(profile) - 1) < 1e-3  # a density: uniform is 1
        groups = list(csv.DictReader(open(run / "attention_features.tsv"), delimiter="\t"))
        shares = [float(groups[-1][g]) for g in ("pitch", "voice quality", "loudness", "MFCC", "mel", "LPC/LSP", "ZCR")]
        assert abs(sum(shares) - 1) < 1e-3
        assert sum(int(r["n"]) for r in rows[:-1]) == int(rows[-1]["n"]) == json.loads(
            (run / "results.json").read_text())["num_utts"]
        assert f"(loso/seed1/{fold}/attention.png)" in report
        assert f"(loso/seed1/{fold}/attention_features.tsv)" in report
    assert "attention" not in (tiny_recipe / TINY_SYSTEM / "RESULTS.md").read_text()  # lstm: none
