"""Manifests -> Kaldi data dir consistency, folds, and normalisation without leakage."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ser.cmvn import Normalizer, accumulate, save_stats
from ser.corpora.casia import prepare_casia
from ser.datadir import read_data_dir, validate_data_dir, write_data_dir
from ser.errors import SerError
from ser.folds import make_folds, read_fold, write_folds

EMOTIONS = ("angry", "fear", "happy", "neutral", "sad", "surprise")


@pytest.fixture(scope="module")
def casia_like(tmp_path_factory) -> Path:
    """A CASIA-layout tree: 4 speakers x 6 emotions x 5 sentences of short tones."""
    root = tmp_path_factory.mktemp("casia_like")
    tone = root / "tone.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(tone), "synth", "0.5",
                    "sine", "300"], check=True)
    for speaker in ("liuchanhg", "wangzhe", "zhaoquanyin", "ZhaoZuoxiang"):
        for emotion in EMOTIONS:
            (root / "corpus" / speaker / emotion).mkdir(parents=True)
            for sentence in range(201, 206):
                shutil.copy(tone, root / "corpus" / speaker / emotion / f"{sentence}.wav")
    return root / "corpus"


@pytest.fixture()
def data_dir(casia_like, tmp_path):
    m = prepare_casia(casia_like, tmp_path / "manifests")
    write_data_dir(m["recordings"], m["supervisions"], m["emotions"], tmp_path / "data")
    return tmp_path / "data", m


def test_data_dir_agrees_with_manifests(data_dir):
    path, m = data_dir
    data = validate_data_dir(path, m["supervisions"])
    assert len(data.utts) == 120 and len(m["recordings"]) == 120
    assert data.speakers == sorted(["liuchanhg", "wangzhe", "zhaoquanyin", "ZhaoZuoxiang"])
    assert data.spk2gender == {"liuchanhg": "f", "zhaoquanyin": "f", "wangzhe": "m", "ZhaoZuoxiang": "m"}
    assert data.emotions == list(EMOTIONS)
    for sup in m["supervisions"]:
        assert data.utt2spk[sup.id] == sup.speaker
        assert data.utt2emo[sup.id] == sup.custom["emotion"]
        assert data.utt2dur[sup.id] == pytest.approx(sup.duration, abs=1e-4)
    assert (path / "spk2utt").read_text().split("\n")[0].startswith("ZhaoZuoxiang ZhaoZuoxiang-angry-201")


@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / "utt2spk").write_text("\n".join(reversed((p / "utt2spk").read_text().split("\n")[:-1])) + "\n"),
     "not sorted"),
    (lambda p: (p / "utt2emo").write_text("".join((p / "utt2emo").read_text().splitlines(True)[1:])),
     "utt2emo: utterances differ"),
    (lambda p: (p / "spk2utt").write_text((p / "spk2utt").read_text().replace("liuchanhg-angry-201 ", "", 1)),
     "spk2utt: does not match utt2spk"),
    (lambda p: (p / "utt2emo").write_text((p / "utt2emo").read_text().replace(" angry\n", " bored\n", 1)),
     "labels not in emotions.txt"),
    (lambda p: (p / "emotions.txt").unlink(), "missing emotions.txt"),
])
def test_inconsistent_data_dir_is_named(data_dir, damage, message):
    path, _ = data_dir
    damage(path)
    with pytest.raises(SerError, match=message) as err:
        validate_data_dir(path)
    assert str(path) in str(err.value)


def test_data_dir_disagreeing_with_manifests(data_dir):
    path, m = data_dir
    text = (path / "utt2emo").read_text().replace("liuchanhg-angry-201 angry", "liuchanhg-angry-201 sad")
    (path / "utt2emo").write_text(text)
    with pytest.raises(SerError, match="manifest says"):
        validate_data_dir(path, m["supervisions"])


def test_missing_audio_is_named(data_dir, casia_like, tmp_path):
    path, _ = data_dir
    (path / "wav.scp").write_text((path / "wav.scp").read_text().replace(str(casia_like), str(tmp_path / "gone")))
    with pytest.raises(SerError, match="audio file.* missing"):
        validate_data_dir(path)


def test_loso_folds(data_dir):
    data = read_data_dir(data_dir[0])
    folds = make_folds(data, "loso")
    assert [f.test_groups for f in folds] == [[s] for s in data.speakers]
    covered = []
    for f in folds:
        test_spk = {data.utt2spk[u] for u in f.test}
        assert test_spk == set(f.test_groups)
        assert not test_spk & {data.utt2spk[u] for u in f.train + f.valid}
        assert not set(f.train) & set(f.valid)
        assert len(f.train) + len(f.valid) + len(f.test) == len(data.utts)
        # validation: stratified, every training speaker and emotion present
        assert {data.utt2emo[u] for u in f.valid} == set(EMOTIONS)
        covered += f.test
    assert sorted(covered) == data.utts


def test_random_folds_are_stratified_repeatable_and_seeded(data_dir):
    data = read_data_dir(data_dir[0])
    folds = make_folds(data, "random", num_folds=3, seed=5, test_share=0.2)
    assert [len(f.test) for f in folds] == [24, 24, 24]
    for f in folds:
        counts = {e: sum(data.utt2emo[u] == e for u in f.test) for e in EMOTIONS}
        assert set(counts.values()) == {4}
        assert not set(f.test) & set(f.train + f.valid)
    assert folds[0].test != folds[1].test
    again = make_folds(data, "random", num_folds=3, seed=5, test_share=0.2)
    assert [f.test for f in again] == [f.test for f in folds]


def test_speaker_kfold_and_bad_protocols(data_dir, tmp_path):
    data = read_data_dir(data_dir[0])
    folds = make_folds(data, "speaker_kfold", num_folds=2)
    assert sorted(g for f in folds for g in f.test_groups) == data.speakers
    with pytest.raises(SerError, match="needs utt2session"):
        make_folds(data, "session")
    with pytest.raises(SerError, match="speaker_kfold with K=5"):
        make_folds(data, "speaker_kfold", num_folds=5)
    one = read_data_dir(data_dir[0])
    one.utt2spk = {u: "liuchanhg" for u in one.utt2spk}
    with pytest.raises(SerError, match="loso needs at least 2 speakers"):
        make_folds(one, "loso")
    write_folds(folds, tmp_path / "folds", {"protocol": "speaker_kfold"})
    assert read_fold(tmp_path / "folds", "fold1").test == folds[0].test
    assert not (tmp_path / "folds.tmp").exists()


def test_train_cmvn_never_sees_valid_or_test_frames(tmp_path):
    """Test utterances with huge values must not move the training statistics."""
    rng = np.random.default_rng(0)
    feats = {f"s1-{i}": rng.normal(1.0, 2.0, (50, 3)) for i in range(10)}
    feats.update({f"s2-{i}": rng.normal(1000.0, 50.0, (50, 3)) for i in range(5)})
    train = [u for u in feats if u.startswith("s1")]
    stats = accumulate(train, feats.__getitem__, lambda _: "train")
    save_stats(stats, tmp_path / "fold1.npz", "train")
    norm = Normalizer.load("train", tmp_path / "fold1.npz")
    train_frames = np.concatenate([feats[u] for u in train])
    np.testing.assert_allclose(norm.shift["train"], train_frames.mean(0), rtol=1e-5)
    np.testing.assert_allclose(1 / norm.scale["train"], train_frames.std(0), rtol=1e-4)
    normed = np.concatenate([norm(feats[u]) for u in train])
    np.testing.assert_allclose(normed.mean(0), 0, atol=1e-5)
    # The test speaker is far away after train normalisation: nothing was learned from it.
    assert norm(feats["s2-0"]).mean() > 100


def test_speaker_cmvn_uses_each_speakers_own_statistics(tmp_path):
    rng = np.random.default_rng(1)
    feats = {"a-1": rng.normal(5, 1, (40, 2)), "a-2": rng.normal(5, 1, (40, 2)),
             "b-1": rng.normal(-7, 3, (40, 2))}
    stats = accumulate(feats, feats.__getitem__, lambda u: u.split("-")[0])
    save_stats(stats, tmp_path / "speaker.npz", "speaker")
    norm = Normalizer.load("speaker", tmp_path / "speaker.npz")
    np.testing.assert_allclose(norm(feats["b-1"], "b").mean(0), 0, atol=1e-5)
    with pytest.raises(SerError, match="holds speaker statistics, not train"):
        Normalizer.load("train", tmp_path / "speaker.npz")
    with pytest.raises(SerError, match="no speaker normalisation statistics for 'c'"):
        norm(feats["a-1"], "c")
    assert Normalizer.load("none", None)(feats["a-1"]).dtype == np.float32


def test_all_protocol_keeps_every_utterance_for_training(data_dir):
    data = read_data_dir(data_dir[0])
    (fold,) = make_folds(data, "all", valid_share=0.1)
    assert fold.test == [] and sorted(fold.train + fold.valid) == data.utts
    assert len(fold.valid) == 12
