"""Cross-corpus and multi-corpus data dirs (ser/multicorpus.py), their folds and their
normalisation statistics, on a pair of fixture corpora with partly different label
sets: a CASIA-shaped one (angry, sad) and an EmoDB-shaped one (7 emotions, one file
of each, and a corrupt file)."""
from __future__ import annotations

import json
from pathlib import Path

import kaldiio
import numpy as np
import pytest

from ser.bin import compute_cmvn, make_folds as make_folds_tool, prepare_data
from ser.cmvn import Normalizer, accumulate
from ser.datadir import read_data_dir, read_table
from ser.errors import SerError
from ser.folds import Fold, check_speaker_disjoint, list_folds, make_folds, read_fold
from ser.multicorpus import combine_data_dirs, combined_name, read_roles
from tests.fixtures_corpora import make_casia, make_emodb

EMODB_KEPT = {"emodb03-03a01Wa": "angry", "emodb08-08a05Ta": "sad"}
EMODB_LEFT_OUT = {"emodb03-03a01Fa": "happy", "emodb03-03b10Nc": "neutral", "emodb08-08a02Ab": "fear",
                  "emodb08-08a04Lc": "boredom", "emodb08-08b01Ea": "disgust"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("multicorpus")
    dirs = {}
    for name, make in (("casia", make_casia), ("emodb", make_emodb)):
        corpus = make(root / "corpora")
        dirs[name] = root / "data" / name
        prepare_data.main(["--corpus", name, "--corpus-dir", str(corpus), "--data-dir", str(dirs[name])])
    return dirs


def test_cross_corpus_data_dir_keeps_the_shared_classes_and_lists_the_rest(prepared, tmp_path):
    out = tmp_path / combined_name(["casia"], "emodb")
    assert out.name == "casia_to_emodb"
    roles = combine_data_dirs([("casia", prepared["casia"])], ("emodb", prepared["emodb"]), out)
    data = read_data_dir(out)
    assert data.emotions == ["angry", "sad"] == roles["classes"]
    assert {u: e for u, e in data.utt2emo.items() if u.startswith("emodb")} == EMODB_KEPT
    assert sum(1 for u in data.utts if data.utt2corpus[u] == "casia") == 8
    excluded = [line.split("\t") for line in (out / "excluded.txt").read_text().splitlines()]
    assert {(u, c, e) for u, c, e, _ in excluded} == {(u, "emodb", e) for u, e in EMODB_LEFT_OUT.items()}
    assert all("not shared" in reason for *_, reason in excluded)
    assert roles["num_excluded"] == {"casia": 0, "emodb": 5}
    assert roles["num_utts"] == {"casia": 8, "emodb": 2}
    assert read_roles(out)["test"] == "emodb" and read_roles(out)["train"] == ["casia"]
    assert read_roles(prepared["casia"]) is None


def test_reverse_direction_has_the_same_classes_in_the_training_corpus_order(prepared, tmp_path):
    roles = combine_data_dirs([("emodb", prepared["emodb"])], ("casia", prepared["casia"]), tmp_path / "r")
    assert roles["classes"] == ["angry", "sad"]
    assert roles["test"] == "casia" and roles["num_excluded"]["emodb"] == 5


def test_cross_corpus_fold_tests_on_the_test_corpus_and_validates_on_the_training_ones(prepared, tmp_path):
    out = tmp_path / "casia_to_emodb"
    combine_data_dirs([("casia", prepared["casia"])], ("emodb", prepared["emodb"]), out)
    data = read_data_dir(out)
    (fold,) = make_folds(data, "cross_corpus")
    assert sorted(fold.test) == sorted(EMODB_KEPT)
    assert fold.valid and all(data.utt2corpus[u] == "casia" for u in fold.train + fold.valid)
    assert sorted(fold.train + fold.valid) == sorted(u for u in data.utts if data.utt2corpus[u] == "casia")
    # Any other protocol would train on the test corpus.
    for protocol in ("loso", "speaker_kfold", "random"):
        with pytest.raises(SerError, match="test corpus emodb"):
            make_folds(data, protocol)
    with pytest.raises(SerError, match="needs a data dir with a test corpus"):
        make_folds(read_data_dir(prepared["casia"]), "cross_corpus")


def test_multi_corpus_folds_keep_each_speaker_on_one_side(prepared, tmp_path):
    out = tmp_path / "casia+emodb"
    roles = combine_data_dirs([("casia", prepared["casia"]), ("emodb", prepared["emodb"])], None, out)
    assert roles["test"] is None and roles["classes"] == ["angry", "sad"]
    data = read_data_dir(out)
    make_folds_tool.main(["--data-dir", str(out), "--protocol", "loso", "--out-dir", str(tmp_path / "loso")])
    folds = [read_fold(tmp_path / "loso", f) for f in list_folds(tmp_path / "loso")]
    assert len(folds) == len(data.speakers) == 4  # 2 CASIA + 2 EmoDB speakers
    for protocol, folds in (("loso", folds), ("speaker_kfold", make_folds(data, "speaker_kfold", 2))):
        tested = set()
        for fold in folds:
            test_speakers = {data.utt2spk[u] for u in fold.test}
            train_speakers = {data.utt2spk[u] for u in fold.train + fold.valid}
            assert test_speakers and not test_speakers & train_speakers, protocol
            assert sorted(fold.train + fold.valid + fold.test) == data.utts
            tested |= test_speakers
        assert tested == set(data.speakers)
        check_speaker_disjoint(folds, data)
    bad = Fold("fold1", ["casia_liuchanhg-x"], [], ["casia_liuchanhg-y"], [])

    class Spk:
        path = out
        utt2spk = {"casia_liuchanhg-x": "liuchanhg", "casia_liuchanhg-y": "liuchanhg"}
    with pytest.raises(SerError, match="liuchanhg on both sides"):
        check_speaker_disjoint([bad], Spk())


def test_combining_refuses_meeting_ids_and_too_few_shared_classes(prepared, tmp_path):
    with pytest.raises(SerError, match="speaker id .* is in both casia and again"):
        combine_data_dirs([("casia", prepared["casia"]), ("again", prepared["casia"])], None, tmp_path / "a")
    with pytest.raises(SerError, match="given twice"):
        combine_data_dirs([("casia", prepared["casia"])], ("casia", prepared["casia"]), tmp_path / "b")
    # EmoDB-shaped corpus without its sad file: one shared class is not enough.
    emodb = read_data_dir(prepared["emodb"])
    one = tmp_path / "emodb1"
    one.mkdir()
    for name in ("wav.scp", "utt2spk", "utt2emo", "utt2dur"):
        table = read_table(prepared["emodb"] / name)
        (one / name).write_text("".join(f"{k} {v}\n" for k, v in sorted(table.items()) if k != "emodb08-08a05Ta"))
    spk2utt = {}
    for utt, spk in sorted(read_table(one / "utt2spk").items()):
        spk2utt.setdefault(spk, []).append(utt)
    (one / "spk2utt").write_text("".join(f"{s} {' '.join(u)}\n" for s, u in sorted(spk2utt.items())))
    (one / "emotions.txt").write_text("\n".join(emodb.emotions) + "\n")
    with pytest.raises(SerError, match="share 1 class"):
        combine_data_dirs([("casia", prepared["casia"])], ("emodb", one), tmp_path / "c")


def _fake_features(data_dir: Path, feat_dir: Path) -> dict[str, np.ndarray]:
    """Random frames per utterance, each corpus around its own mean."""
    data = read_data_dir(data_dir)
    rng = np.random.default_rng(0)
    feats = {u: (rng.normal(size=(5 + i % 3, 4)) + (10.0 if data.utt2corpus[u] == "emodb" else 0.0)).astype(np.float32)
             for i, u in enumerate(data.utts)}
    feat_dir.mkdir(parents=True)
    with kaldiio.WriteHelper(f"ark,scp:{feat_dir / 'feats.ark'},{feat_dir / 'feats.scp'}") as writer:
        for utt, mat in feats.items():
            writer(utt, mat)
    return feats


def test_no_test_corpus_statistic_is_used_unless_asked(prepared, tmp_path):
    data_dir = tmp_path / "casia_to_emodb"
    combine_data_dirs([("casia", prepared["casia"])], ("emodb", prepared["emodb"]), data_dir)
    feats = _fake_features(data_dir, tmp_path / "feats")
    make_folds_tool.main(["--data-dir", str(data_dir), "--protocol", "cross_corpus",
                          "--out-dir", str(tmp_path / "folds")])
    fold = read_fold(tmp_path / "folds", "fold1")
    common = ["--data-dir", str(data_dir), "--feat-dir", str(tmp_path / "feats"),
              "--folds-dir", str(tmp_path / "folds")]
    compute_cmvn.main(["--mode", "train", *common, "--out-dir", str(tmp_path / "train")])
    with np.load(tmp_path / "train" / "fold1.npz") as npz:
        expected = accumulate(fold.train, feats.__getitem__, lambda _: "train")
        assert npz["count"][0] == expected["count"][0]
        np.testing.assert_allclose(npz["sum"], expected["sum"])
        # the EmoDB utterances (offset by 10) would move the mean far from 0
        assert abs(npz["sum"][0] / npz["count"][0]).max() < 2.0
    # Asked for: each corpus by its own statistics, the test corpus's from its test utterances.
    compute_cmvn.main(["--mode", "corpus", *common, "--out-dir", str(tmp_path / "corpus")])
    normalizer = Normalizer.load("corpus", tmp_path / "corpus" / "fold1.npz")
    emodb_frames = np.concatenate([feats[u] for u in fold.test])
    np.testing.assert_allclose(normalizer.shift["emodb"], emodb_frames.mean(0), rtol=1e-5)
    casia_frames = np.concatenate([feats[u] for u in fold.train])
    np.testing.assert_allclose(normalizer.shift["casia"], casia_frames.mean(0), rtol=1e-5, atol=1e-6)
    normed = normalizer(feats[fold.test[0]], "emodb03")
    assert abs(normed.mean()) < 3.0  # by EmoDB's statistics, not CASIA's (which leave ~10)
    with pytest.raises(SerError, match="needs each speaker's corpus"):
        Normalizer("corpus", {k: v for k, v in accumulate(fold.train, feats.__getitem__, lambda _: "x").items()})


def test_reports_flag_test_corpus_statistics():
    from ser.report import _cmvn_note
    assert "the test corpus's from its own unlabelled features" in _cmvn_note("corpus")
    assert "test corpus" not in _cmvn_note("train")
    from ser.cmvn import USES_TEST_SPEAKER_STATS
    assert USES_TEST_SPEAKER_STATS["corpus"] and not USES_TEST_SPEAKER_STATS["train"]
