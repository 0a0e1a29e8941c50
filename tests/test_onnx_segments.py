"""ONNX export and backend (the same posteriors as TorchScript), and emotion over time
(`ser infer --segments`) on a file that changes emotion where two clips are joined."""
from __future__ import annotations

import csv
import io
import json
import subprocess

import numpy as np
import pytest
import torch

from ser import EmotionClassifier
from ser.bin.infer import main as infer_main
from ser.export import export_onnx, script_model
from ser.inference import ONNX_FILE, onnx_session, softmax, window_starts
from ser.datadir import read_data_dir
from ser.errors import SerError
from ser.model import MODEL_VARIANTS, build_model
from ser.timeline import output_name, output_names


def cli(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        infer_main([str(a) for a in args])
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


@pytest.mark.parametrize("variant", MODEL_VARIANTS)
def test_onnx_and_torchscript_agree_for_any_batch_and_length(variant, tmp_path):
    torch.manual_seed(0)
    options = dict(hidden_size=16, num_layers=2)
    if variant.endswith("_at"):
        options["peephole"] = True
    model = build_model(93, 6, variant, **options).eval()
    scripted = script_model(model)
    export_onnx(scripted, 93, tmp_path / "model.onnx")
    session = onnx_session(tmp_path / "model.onnx")
    generator = torch.Generator().manual_seed(5)
    for lengths in ([120, 3, 64], [1], [301], [2, 2]):  # batched and single, lengths unlike the export's
        lengths = torch.tensor(lengths)
        feats = torch.randn(len(lengths), int(lengths.max()), 93, generator=generator)
        with torch.no_grad():
            expected = torch.softmax(scripted(feats, lengths), -1).numpy()
        got = softmax(session.run(None, {"feats": feats.numpy(), "lengths": lengths.numpy()})[0])
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
        assert got.shape == (len(lengths), 6)


@pytest.mark.slow
def test_onnx_backend_matches_torchscript_on_audio(attention_bundle, tiny_recipe, capsys, tmp_path):
    assert json.loads((attention_bundle / "bundle.json").read_text())["model"]["onnx"] == ONNX_FILE
    assert f"  {ONNX_FILE}\n" in (attention_bundle / "SHA256SUMS").read_text()
    wavs = list(read_data_dir(tiny_recipe / "data" / "synth").wav.values())[:10]
    script = EmotionClassifier.load(attention_bundle, batch_size=4)
    onnx = EmotionClassifier.load(attention_bundle, backend="onnx", batch_size=4)
    for batch, single in zip(onnx.predict_batch(wavs), script.predict_batch(wavs), strict=True):
        assert batch.label == single.label
        np.testing.assert_allclose(list(batch.posteriors.values()), list(single.posteriors.values()), atol=1e-4)
    status, out, err = cli(capsys, "--model", attention_bundle, "--backend", "onnx", "--format", "json", wavs[0])
    assert status == 0, err
    line = json.loads(out)
    np.testing.assert_allclose(list(line["posteriors"].values()),
                               list(script.predict(wavs[0]).posteriors.values()), atol=1e-4)
    bundle = tmp_path / "old"
    subprocess.run(["cp", "-r", attention_bundle, bundle], check=True)
    (bundle / ONNX_FILE).unlink()  # a bundle exported before ONNX: its SHA256SUMS lacks model.onnx
    sums = bundle / "SHA256SUMS"
    sums.write_text("".join(line for line in sums.read_text().splitlines(True) if ONNX_FILE not in line))
    with pytest.raises(SerError, match="model.onnx: not in the bundle"):
        EmotionClassifier.load(bundle, backend="onnx")


def test_window_starts_and_output_names():
    assert output_name("/data/rec ordings/a b.wav") == "data_rec_ordings_a_b.wav"
    assert output_name("spk01-happy-003") == "spk01-happy-003"
    assert window_starts(100, 200, 50) == [0]
    assert window_starts(200, 200, 50) == [0]
    assert window_starts(330, 200, 50) == [0, 50, 100, 130]
    assert window_starts(300, 200, 50) == [0, 50, 100]


def test_output_names_are_distinct_for_distinct_inputs():
    items = [("x/y_z.wav", "x/y_z.wav"), ("x_y/z.wav", "x_y/z.wav"), ("a.wav", "a.wav"), ("a.wav", "a.wav"),
             ("utt1", "/one/a.wav"), ("utt1", "/two/a.wav")]
    names = output_names(items)
    assert names[2] == names[3] == "a.wav"  # the same input twice, and no other of that name: as it was
    assert names[0].startswith("x_y_z.wav-") and names[1].startswith("x_y_z.wav-") and names[0] != names[1]
    assert names[4] != names[5] and all(n.startswith("utt1-") for n in names[4:])
    assert len(set(names)) == 5
    assert output_names(items[:1]) == ["x_y_z.wav"] and output_names([]) == []
    # A plain name spelt as another input's hashed one is numbered, not shared.
    clash = [("p/q", "1"), ("p_q", "2")]
    hashed = output_names(clash)[0]
    names = output_names([*clash, (hashed, "3")])
    assert len(set(names)) == 3 and names[2] == f"{hashed}-2"


@pytest.fixture(scope="module")
def sad_then_angry(synth_svm_bundle, tiny_recipe, tmp_path_factory):
    """sox's concatenation of the synth 'sad' and 'angry' clips that the svm bundle is
    surest about, and the time of the join."""
    data = read_data_dir(tiny_recipe / "data" / "synth")
    classifier = EmotionClassifier.load(synth_svm_bundle)
    chosen = {}
    for emotion in ("sad", "angry"):
        utts = [u for u in data.utts if data.emotions[data.label(u)] == emotion]
        results = classifier.predict_batch([data.wav[u] for u in utts])
        chosen[emotion] = data.wav[max(zip(utts, results), key=lambda ur: ur[1].posteriors[emotion])[0]]
    out = tmp_path_factory.mktemp("segments") / "sad_then_angry.wav"
    subprocess.run(["sox", chosen["sad"], chosen["angry"], out], check=True)
    join = float(subprocess.run(["soxi", "-D", chosen["sad"]], capture_output=True, text=True, check=True).stdout)
    return out, join


@pytest.mark.slow
def test_segments_follow_a_change_of_emotion(synth_svm_bundle, sad_then_angry, tmp_path, capsys):
    wav, join = sad_then_angry
    status, out, err = cli(capsys, "--model", synth_svm_bundle, "--segments", "--plot", tmp_path / "plots", wav)
    assert status == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0])[:4] == ["id", "start", "end", "emotion"] and list(rows[0])[-1] == "error"
    starts, ends = [float(r["start"]) for r in rows], [float(r["end"]) for r in rows]
    assert starts[:3] == [0.0, 0.5, 1.0] and all(e - s == pytest.approx(2.0) for s, e in zip(starts, ends))
    labels = [r["emotion"] for r in rows]
    assert len(rows) >= 2 and len(set(labels)) >= 2, labels
    assert labels[0] == "sad" and labels[-1] == "angry", labels
    # The change from sad to angry: between the last sad window and the first angry one,
    # both within one window (2 s) of the join.
    last_sad = max(i for i, label in enumerate(labels) if label == "sad")
    first_angry = min(i for i, label in enumerate(labels) if label == "angry")
    centres = [(s + e) / 2 for s, e in zip(starts, ends)]
    assert last_sad < first_angry, labels
    assert abs(centres[last_sad] - join) <= 2.0 and abs(centres[first_angry] - join) <= 2.0, (labels, join)
    assert (tmp_path / "plots" / f"{output_name(str(wav))}.png").stat().st_size > 5_000


@pytest.mark.slow
def test_segments_json_errors_and_options(attention_bundle, sad_then_angry, tmp_path, capsys):
    wav, _ = sad_then_angry
    (tmp_path / "empty.wav").touch()
    status, out, _ = cli(capsys, "--model", attention_bundle, "--segments", "--format", "json", "--window", "1",
                         "--hop", "1", tmp_path / "empty.wav", wav)
    assert status == 1
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["error"] == "empty file (0 bytes)" and lines[0]["start"] is None
    assert [line["start"] for line in lines[1:4]] == [0.0, 1.0, 2.0]
    assert all(abs(sum(line["posteriors"].values()) - 1) < 1e-5 for line in lines[1:])
    assert cli(capsys, "--model", attention_bundle, "--plot", tmp_path, wav)[0] == 2  # --plot needs --segments
    assert cli(capsys, "--model", attention_bundle, "--segments", "--hop", "0", wav)[0] == 2
