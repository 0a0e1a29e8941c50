"""Manifests -> Kaldi data dir consistency (Kaldi's own rules included), wav.scp pipe
entries for paths with spaces, folds, and normalisation without leakage."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import kaldiio
import numpy as np
import pytest

from ser.audio import load_audio, wav_scp_entry
from ser.bin import compute_feats, infer, prepare_data
from ser.inference import Prediction
from ser.cmvn import Normalizer, accumulate, save_stats
from ser.corpora.casia import prepare_casia
from ser.datadir import read_data_dir, read_table, validate_data_dir, write_data_dir
from ser.errors import AudioError, SerError
from ser.folds import make_folds, read_fold, write_folds
from tests.fixtures_corpora import WAV, make_casia, write_tree

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


# --- Kaldi's rules: spk2gender all or none, utt2spk sorted both ways ---------------

def prepare_into(corpus: Path, data: Path) -> dict:
    manifests = prepare_casia(corpus, data / "manifests")
    write_data_dir(manifests["recordings"], manifests["supervisions"], manifests["emotions"], data)
    return manifests


def c_sorted(path: Path, *key: str) -> bool:
    """``LC_ALL=C sort -c`` of the file (by ``key``, e.g. ``-k2,2``)."""
    return subprocess.run(["sort", "-c", "-s", "-t", " ", *key, str(path)],
                          env={**os.environ, "LC_ALL": "C"}, capture_output=True).returncode == 0


def test_speaker_name_sorting_before_dash_gets_a_safe_id(tmp_path):
    # "wangzhe+2-..." sorts before "wangzhe-...", but "wangzhe+2" after "wangzhe".
    corpus = write_tree(tmp_path / "casia", {f"{speaker}/{emotion}/20{i}.wav": WAV
                                             for speaker in ("wangzhe", "wangzhe+2", "wangzhe!")
                                             for emotion in ("angry", "sad") for i in (1, 2)})
    manifests = prepare_into(corpus, tmp_path / "data")
    data = validate_data_dir(tmp_path / "data", manifests["supervisions"])
    assert data.speakers == ["wangzhe", "wangzhe_", "wangzhe_2"]
    assert c_sorted(tmp_path / "data" / "utt2spk")
    assert c_sorted(tmp_path / "data" / "utt2spk", "-k2,2")
    assert data.spk2name == {"wangzhe": "wangzhe", "wangzhe_": "wangzhe!", "wangzhe_2": "wangzhe+2"}
    names = {s.id: s.custom.get("speaker_name") for s in manifests["supervisions"]}
    assert names["wangzhe_2-angry-201"] == "wangzhe+2" and names["wangzhe-angry-201"] is None


def test_a_non_ascii_speaker_gets_a_readable_id_and_keeps_its_name(tmp_path):
    # Not "___": the code points of 王 and 哲, and the name itself in spk2name.
    corpus = write_tree(tmp_path / "casia", {f"{speaker}/{emotion}/201.wav": WAV
                                             for speaker in ("王 哲", "wangzhe") for emotion in ("angry", "sad")})
    manifests = prepare_into(corpus, tmp_path / "data")
    data = validate_data_dir(tmp_path / "data", manifests["supervisions"])
    assert data.speakers == ["u738b_u54f2", "wangzhe"]
    assert data.spk2name == {"u738b_u54f2": "王 哲", "wangzhe": "wangzhe"}
    assert "u738b_u54f2-angry-201" in data.utts and c_sorted(tmp_path / "data" / "utt2spk", "-k2,2")


def test_spk2gender_lists_every_speaker_or_is_absent(tmp_path, caplog):
    corpus = make_casia(tmp_path)  # liuchanhg (f), wangzhe (m)
    prepare_into(corpus, tmp_path / "all")
    assert read_table(tmp_path / "all" / "spk2gender") == {"liuchanhg": "f", "wangzhe": "m"}
    write_tree(corpus, {"unknown1/angry/201.wav": WAV})  # no documented gender
    manifests = prepare_into(corpus, tmp_path / "some")
    assert not (tmp_path / "some" / "spk2gender").exists()
    assert "gender of 1 of 3 speaker(s) is unknown, e.g. unknown1" in caplog.text
    assert validate_data_dir(tmp_path / "some", manifests["supervisions"]).spk2gender == {}


def write_hand_made_dir(path: Path, utt2spk: dict[str, str], spk2gender: str | None = None) -> Path:
    """A data dir written by hand: the tables sorted by key, spk2gender as given."""
    path.mkdir(parents=True)
    utts = sorted(utt2spk)
    spk2utt: dict[str, list[str]] = {}
    for utt in utts:
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    tables = {"wav.scp": {u: f"/nowhere/{u}.wav" for u in utts}, "utt2spk": utt2spk,
              "utt2emo": dict.fromkeys(utts, "angry"), "utt2dur": dict.fromkeys(utts, "1.0"),
              "spk2utt": {s: " ".join(us) for s, us in spk2utt.items()}}
    for name, table in tables.items():
        (path / name).write_text("".join(f"{k} {table[k]}\n" for k in sorted(table)))
    if spk2gender is not None:
        (path / "spk2gender").write_text(spk2gender)
    (path / "emotions.txt").write_text("angry\n")
    return path


@pytest.mark.parametrize("utt2spk, spk2gender, file, message", [
    ({"wangzhe+2-1": "wangzhe+2", "wangzhe-1": "wangzhe"}, None,
     "utt2spk", "sorted by utterance it is not sorted by speaker"),
    ({"a-1": "a", "b-1": "b"}, "a m\n", "spk2gender", "must list every speaker"),
    ({"a-1": "a", "b-1": "b"}, "a m\nb x\n", "spk2gender", "gender of b is 'x'"),
    ({"a-1": "a", "b-1": "b"}, "b m\na f\n", "spk2gender", "not sorted"),
])
def test_hand_made_dir_breaking_a_kaldi_rule_is_named(utt2spk, spk2gender, file, message, tmp_path):
    path = write_hand_made_dir(tmp_path / "data", utt2spk, spk2gender)
    with pytest.raises(SerError, match=message) as err:
        validate_data_dir(path, check_audio=False)
    assert str(path / file) in str(err.value)
    if file == "utt2spk":  # what Kaldi's own check sees
        assert c_sorted(path / "utt2spk") and not c_sorted(path / "utt2spk", "-k2,2")


def test_hand_made_dir_following_the_rules_passes(tmp_path):
    path = write_hand_made_dir(tmp_path / "data", {"wangzhe_2-1": "wangzhe_2", "wangzhe-1": "wangzhe"},
                               "wangzhe m\nwangzhe_2 m\n")
    assert validate_data_dir(path, check_audio=False).speakers == ["wangzhe", "wangzhe_2"]


# --- paths with spaces and non-ASCII characters: wav.scp pipe entries -------------

@pytest.fixture(scope="module")
def spaced_corpus(tmp_path_factory) -> tuple[Path, Path]:
    """make_casia's tree under "<tmp>/ü dir/IEMOCAP full release", prepared by stage 1."""
    root = tmp_path_factory.mktemp("paths") / "ü dir"
    corpus = make_casia(root).rename(root / "IEMOCAP full release")
    data = root.parent / "data"
    prepare_data.main(["--corpus", "casia", "--corpus-dir", str(corpus), "--data-dir", str(data)])
    return corpus, data


def test_paths_with_spaces_become_pipe_entries(spaced_corpus):
    corpus, data = spaced_corpus
    wavs = read_table(data / "wav.scp")
    assert len(wavs) == 8
    entry = wavs["liuchanhg-angry-201"]
    path = corpus / "liuchanhg" / "angry" / "201.wav"
    assert entry == f"sox '{path}' -t wav - |"
    assert all(e.startswith("sox '") and e.endswith(" -t wav - |") for e in wavs.values())
    np.testing.assert_array_equal(load_audio(entry), load_audio(path))
    validate_data_dir(data)


def test_compute_feats_reads_pipe_entries(spaced_corpus, tmp_path):
    corpus, data = spaced_corpus
    compute_feats.main(["--feat", "fbank", "--wav-scp", str(data / "wav.scp"),
                        "--out", str(tmp_path / "raw.1")])
    feats = dict(kaldiio.load_scp(str(tmp_path / "raw.1.scp")))
    assert sorted(feats) == sorted(read_table(data / "wav.scp"))
    assert (tmp_path / "raw.1.failed").read_text() == ""
    assert feats["wangzhe-sad-202"].shape[1] == 80


def test_symlink_without_spaces_gives_plain_entries(spaced_corpus, tmp_path):
    corpus, _ = spaced_corpus
    (tmp_path / "casia").symlink_to(corpus)
    prepare_data.main(["--corpus", "casia", "--corpus-dir", str(tmp_path / "casia"),
                       "--data-dir", str(tmp_path / "data")])
    wavs = read_table(tmp_path / "data" / "wav.scp")
    assert wavs["wangzhe-sad-202"] == str(tmp_path / "casia" / "wangzhe" / "sad" / "202.wav")
    # Relative, it is made absolute but not resolved.
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        prepare_data.main(["--corpus", "casia", "--corpus-dir", "casia", "--data-dir", "rel"])
    finally:
        os.chdir(cwd)
    assert read_table(tmp_path / "rel" / "wav.scp") == wavs


def test_pipe_to_a_missing_file(spaced_corpus, tmp_path):
    corpus, data = spaced_corpus
    missing = corpus / "wangzhe" / "sad" / "gone 1.wav"
    entry = wav_scp_entry(missing)
    with pytest.raises(AudioError) as err:
        load_audio(entry)
    assert err.value.path == entry and "command failed" in err.value.reason
    assert str(missing) in err.value.reason and "file not found" not in str(err.value)
    with pytest.raises(AudioError, match="command wrote no audio"):
        load_audio("true |")
    # The data dir check names the file, and does not run other commands.
    shutil.copytree(data, tmp_path / "data")
    wavs = read_table(data / "wav.scp")
    (tmp_path / "data" / "wav.scp").write_text("".join(
        f"{utt} {entry if utt == 'wangzhe-sad-202' else wavs[utt]}\n" for utt in sorted(wavs)))
    with pytest.raises(SerError, match=f"1 audio file\\(s\\) missing, e.g. {missing}$"):
        validate_data_dir(tmp_path / "data")
    (tmp_path / "data" / "wav.scp").write_text("".join(f"{utt} false |\n" for utt in sorted(wavs)))
    validate_data_dir(tmp_path / "data")


def test_infer_reads_pipe_entries(spaced_corpus, tmp_path, monkeypatch, capsys):
    """`ser infer` on a wav.scp hands each entry, pipes included, to the one reader."""
    corpus, data = spaced_corpus

    class Classifier:  # a stand-in model: the label says how long the audio is
        labels = ["short", "long"]

        @classmethod
        def load(cls, *args, **kwargs):
            return cls()

        def predict_batch(self, audios):
            results = []
            for audio in audios:
                try:
                    label = "long" if load_audio(audio).size > 4000 else "short"
                    results.append(Prediction(label=label, posteriors={"short": 0.0, "long": 1.0}))
                except AudioError as err:
                    results.append(err)
            return results

    monkeypatch.setattr(infer, "EmotionClassifier", Classifier)
    scp = tmp_path / "wav.scp"
    wavs = read_table(data / "wav.scp")
    scp.write_text(f"a {wavs['liuchanhg-angry-201']}\nb {wav_scp_entry(corpus / 'no such.wav')}\n")
    with pytest.raises(SystemExit) as exit_info:
        infer.main([str(scp), "--model", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert exit_info.value.code == 1
    assert lines[1] == "a,long,0.000000,1.000000,"
    assert lines[2].startswith("b,,,,command failed") and "no such.wav" in lines[2]
