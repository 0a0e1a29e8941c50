"""Corpus preparation on small trees in each corpus's real layout (tests/fixtures_corpora.py)."""
from __future__ import annotations

import shutil
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
import soundfile as sf

from ser.corpora import CORPORA
from ser.corpora.casia import prepare_casia
from ser.corpora.common import speaker_ids
from ser.corpora.emodb import prepare_emodb
from ser.corpora.enterface import prepare_enterface
from ser.corpora.gemep import prepare_gemep
from ser.corpora.iemocap import prepare_iemocap
from ser.corpora.ravdess import prepare_ravdess
from ser.corpora.synth import prepare_synth
from ser.errors import CorpusError, SerError
from tests.fixtures_corpora import (AVI, FLAC, WAV, iemocap_labels, make_casia, make_emodb,
                                    make_enterface, make_gemep, make_iemocap, make_ravdess,
                                    write_tree)


@contextmanager
def fails_naming(path: Path, match: str | None = None, error: type[Exception] = CorpusError):
    """Expects ``error`` with a message that matches ``match`` and names ``path``."""
    with pytest.raises(error, match=match) as raised:
        yield
    assert str(path) in str(raised.value)


def by_id(manifests: dict, field: str) -> dict[str, object]:
    return {s.id: getattr(s, field) for s in manifests["supervisions"]}


def emotions_of(manifests: dict) -> dict[str, str]:
    return {s.id: s.custom["emotion"] for s in manifests["supervisions"]}


def excluded_paths(manifests: dict) -> list[str]:
    return [Path(path).name for _, path, _ in manifests["excluded"]]


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("corpora")


# --- every corpus in the registry --------------------------------------------------

def test_registry_protocols():
    protocols = {name: CORPORA[name].default_protocol
                 for name in ("emodb", "enterface", "gemep", "iemocap", "ravdess")}
    assert protocols == {"emodb": "loso", "enterface": "loso", "gemep": "loso",
                         "iemocap": "session", "ravdess": "loso"}


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_missing_directory_names_the_path(name, tmp_path):
    missing = tmp_path / "not-there"
    with fails_naming(missing):
        CORPORA[name].prepare(missing, tmp_path / "out")


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_empty_corpus_names_the_path(name, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with fails_naming(empty):
        CORPORA[name].prepare(empty, tmp_path / "out")


def upper_case_suffixes(corpus: Path) -> Path:
    """Renames every .wav to .WAV, but the first one to .Wav."""
    for index, path in enumerate(sorted(corpus.rglob("*.wav"))):
        path.rename(path.with_suffix(".Wav" if index == 0 else ".WAV"))
    return corpus


@pytest.mark.parametrize("make, prepare, count", [
    (make_casia, prepare_casia, 8), (make_casia, prepare_synth, 8), (make_emodb, prepare_emodb, 7),
    (make_gemep, prepare_gemep, 5), (make_ravdess, prepare_ravdess, 15),
    (make_iemocap, prepare_iemocap, 6)])
def test_upper_case_suffixes_are_found(make, prepare, count, tmp_path):
    corpus = upper_case_suffixes(make(tmp_path))
    manifests = prepare(corpus)
    assert len(manifests["recordings"]) == count
    suffixes = {Path(r.sources[0].source).suffix for r in manifests["recordings"]}
    assert suffixes <= {".WAV", ".Wav"} and ".WAV" in suffixes


def test_enterface_upper_case_suffix(tmp_path):
    corpus = write_tree(tmp_path / "e", {"subject 1/anger/sentence 1/s1_an_1.AVI": AVI})
    assert len(prepare_enterface(corpus, tmp_path / "out")["recordings"]) == 1


def test_flac_is_found(tmp_path):
    corpus = write_tree(tmp_path / "c", {"a/angry/1.flac": FLAC, "a/sad/2.FLAC": FLAC, "a/sad/3.wav": WAV})
    manifests = prepare_casia(corpus)
    assert sorted(s.id for s in manifests["supervisions"]) == ["a-angry-1", "a-sad-2", "a-sad-3"]


# --- speaker ids ------------------------------------------------------------------

def test_speaker_ids_are_kaldi_safe():
    names = ["wangzhe", "wangzhe+2", "Müller", "a_b", "a+b", "a,b", "张三", "李四", "spk.1"]
    ids = speaker_ids(names)
    assert ids["wangzhe"] == "wangzhe" and ids["spk.1"] == "spk.1" and ids["a_b"] == "a_b"
    assert ids["wangzhe+2"] == "wangzhe_2" and ids["Müller"] == "Muller"
    # Names that meet once made safe keep apart by a hash of the name.
    assert ids["a+b"].startswith("a_b_") and ids["a,b"].startswith("a_b_") and ids["a+b"] != ids["a,b"]
    assert ids["张三"] == "u5f20_u4e09" and ids["李四"] == "u674e_u56db"  # code points, not "__"
    assert all(c.isascii() and (c.isalnum() or c in "_.") for sid in ids.values() for c in sid)
    assert len(set(ids.values())) == len(names)
    assert speaker_ids(reversed(names)) == ids


def test_utterance_ids_follow_the_speaker_id(tmp_path):
    corpus = write_tree(tmp_path / "c", {"wangzhe+2/angry/201 copy.wav": WAV,
                                         "wangzhe/angry/201.wav": WAV})
    manifests = prepare_casia(corpus)
    assert {s.id: s.speaker for s in manifests["supervisions"]} == {
        "wangzhe_2-angry-201_copy": "wangzhe_2", "wangzhe-angry-201": "wangzhe"}
    assert by_id(manifests, "gender") == {"wangzhe_2-angry-201_copy": None, "wangzhe-angry-201": "m"}
    assert [r.id for r in manifests["recordings"]] == sorted(by_id(manifests, "speaker"))


# --- CASIA and the synthetic corpus (same layout) ---------------------------------

@pytest.mark.parametrize("name", ["casia", "synth"])
def test_speaker_emotion_layout(name, tmp_path):
    manifests = CORPORA[name].prepare(make_casia(tmp_path), tmp_path / "out")
    assert len(manifests["recordings"]) == 8
    assert (tmp_path / "out" / f"{name}_supervisions.jsonl.gz").is_file()


@pytest.mark.parametrize("prepare", [prepare_casia, prepare_synth])
def test_speaker_emotion_layout_unknown_emotion_folder(prepare, tmp_path):
    corpus = make_casia(tmp_path)
    write_tree(corpus, {"wangzhe/bored/201.wav": WAV})
    with fails_naming(corpus / "wangzhe" / "bored", "emotion folder 'bored'"):
        prepare(corpus)


@pytest.mark.parametrize("prepare", [prepare_casia, prepare_synth])
def test_speaker_emotion_layout_duplicate_id(prepare, tmp_path):
    # <speaker>-<emotion>-<stem>: "a/angry/angry-1" and "a-angry/angry/1" meet.
    corpus = write_tree(tmp_path / "c", {"a/angry/angry-1.wav": WAV, "a-angry/angry/1.wav": WAV})
    with fails_naming(corpus / "a-angry" / "angry" / "1.wav",
                      "duplicate utterance id 'a-angry-angry-1'"):
        prepare(corpus)


# --- eNTERFACE'05 -----------------------------------------------------------------

@pytest.fixture(scope="module")
def enterface(trees) -> tuple[Path, Path, dict]:
    corpus, output = make_enterface(trees), trees / "enterface_out"
    return corpus, output, prepare_enterface(corpus, output, num_jobs=2)


def test_enterface_irregular_names(enterface):
    corpus, output, manifests = enterface
    speakers = Counter(s.speaker for s in manifests["supervisions"])
    assert speakers == {"subject01": 12, "subject06": 3, "subject12": 3, "subject23": 2}
    emotions = emotions_of(manifests)
    assert emotions["subject06-angry-2"] == "angry"  # s7_an_2.avi in subject 6's folder
    assert emotions["subject12-happy-3"] == "happy"  # "Happiness" folder
    assert {"subject12-angry-1", "subject23-fear-1", "subject23-fear-2"} <= set(emotions)
    assert set(emotions.values()) == set(manifests["emotions"])
    assert set(by_id(manifests, "gender").values()) == {None}
    assert manifests["excluded"][0][:2] == ("subject23-sad-4",
                                            str(corpus / "subject 23/sadness/s23_sa_4.avi"))
    assert "ffmpeg" in manifests["excluded"][0][2]
    assert "subject23-sad-4" in (output / "enterface_excluded.txt").read_text()
    info = sf.info(str(output / "wav" / "subject01-angry-1.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert not list((output / "wav").glob("*.tmp"))


def test_enterface_extracts_once(enterface, tmp_path):
    corpus, output, _ = enterface
    wav_dir = shutil.copytree(output / "wav", tmp_path / "wav")
    kept, broken = wav_dir / "subject01-angry-1.wav", wav_dir / "subject01-angry-2.wav"
    kept_mtime = kept.stat().st_mtime_ns
    broken.write_bytes(broken.read_bytes()[:30])  # as if an old run died mid-write
    manifests = prepare_enterface(corpus, tmp_path, num_jobs=2)
    assert kept.stat().st_mtime_ns == kept_mtime
    assert sf.info(str(broken)).frames > 0
    assert len(manifests["recordings"]) == 20


def test_enterface_drop_subject6(enterface, tmp_path):
    corpus, output, _ = enterface
    shutil.copytree(output / "wav", tmp_path / "wav")  # skip re-extracting
    manifests = prepare_enterface(corpus, tmp_path, drop_subject6=True)
    assert "subject06" not in {s.speaker for s in manifests["supervisions"]}
    assert len(manifests["recordings"]) == 17


def test_enterface_bad_inputs(tmp_path):
    corpus = write_tree(tmp_path / "e", {"subject 2/boredom/sentence 1/s2_bo_1.avi": AVI})
    with fails_naming(corpus / "subject 2" / "boredom", "emotion folder 'boredom'"):
        prepare_enterface(corpus, tmp_path / "out")
    # Two names for subject 23's first fear sentence, with no sentence folder.
    corpus = write_tree(tmp_path / "d", {"subject 23/fear/s23_fe_1.avi": AVI,
                                         "subject 23/fear/s23fe1.avi": AVI})
    with fails_naming(corpus / "subject 23" / "fear" / "s23fe1.avi",
                      "duplicate utterance id 'subject23-fear-1'"):
        prepare_enterface(corpus, tmp_path / "out")
    with pytest.raises(SerError, match="output_dir"):
        prepare_enterface(corpus)


# --- EmoDB --------------------------------------------------------------------------

def test_emodb(trees):
    corpus = make_emodb(trees)
    manifests = prepare_emodb(corpus, trees / "emodb_out")
    assert set(emotions_of(manifests).values()) == set(manifests["emotions"])
    assert emotions_of(manifests)["emodb03-03a01Wa"] == "angry"
    assert by_id(manifests, "gender") == {**dict.fromkeys(
        ["emodb03-03a01Fa", "emodb03-03a01Wa", "emodb03-03b10Nc"], "m"), **dict.fromkeys(
        ["emodb08-08a02Ab", "emodb08-08a04Lc", "emodb08-08b01Ea", "emodb08-08a05Ta"], "f")}
    assert by_id(manifests, "text")["emodb03-03a01Fa"] == "Der Lappen liegt auf dem Eisschrank."
    assert excluded_paths(manifests) == ["03a02Wb.wav"]
    # The wav folder itself is accepted too.
    assert len(prepare_emodb(corpus / "wav")["recordings"]) == 7


@pytest.mark.parametrize("name, message", [("03a01Xa", "unknown emotion letter 'X'"),
                                           ("03-a01-F", "does not follow")])
def test_emodb_bad_names(name, message, tmp_path):
    corpus = write_tree(tmp_path / "emodb", {"wav/03a01Fa.wav": WAV, f"wav/{name}.wav": WAV})
    with fails_naming(corpus / "wav" / f"{name}.wav", message):
        prepare_emodb(corpus)


# --- RAVDESS ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ravdess_dir(trees) -> Path:
    return make_ravdess(trees)


def test_ravdess_eight_classes(ravdess_dir):
    manifests = prepare_ravdess(ravdess_dir)
    emotions = emotions_of(manifests)
    assert len(emotions) == 15 and set(emotions.values()) == set(manifests["emotions"])
    assert emotions["ravdess01-03-01-06-01-01-01-01"] == "fear"
    assert set(by_id(manifests, "gender").items()) >= {
        ("ravdess01-03-01-01-01-01-01-01", "m"), ("ravdess02-03-01-01-01-01-01-02", "f")}
    assert by_id(manifests, "text")["ravdess02-03-01-01-01-01-01-02"] == \
        "Kids are talking by the door"
    assert excluded_paths(manifests) == ["03-01-04-01-01-01-02.wav"]


def test_ravdess_six_classes(ravdess_dir):
    manifests = prepare_ravdess(ravdess_dir, num_classes=6)
    assert manifests["emotions"] == ("angry", "disgust", "fear", "happy", "sad", "surprise")
    assert Counter(emotions_of(manifests).values()) == {
        "angry": 2, "disgust": 2, "fear": 2, "happy": 2, "sad": 1, "surprise": 2}


def test_ravdess_bad_inputs(ravdess_dir, tmp_path):
    with pytest.raises(SerError, match="num_classes"):
        prepare_ravdess(ravdess_dir, num_classes=7)
    corpus = write_tree(tmp_path / "r", {"Actor_03/03-01-09-01-01-01-03.wav": WAV})
    with fails_naming(corpus / "Actor_03" / "03-01-09-01-01-01-03.wav",
                      "unknown emotion code '09'"):
        prepare_ravdess(corpus)
    corpus = write_tree(tmp_path / "d", {"Actor_03/03-01-05-01-01-01-03.wav": WAV,
                                         "Actor_04/03-01-05-01-01-01-03.wav": WAV})
    with fails_naming(corpus / "Actor_04", "duplicate utterance id"):
        prepare_ravdess(corpus)


# --- GEMEP --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gemep_dir(trees) -> Path:
    return make_gemep(trees)


def test_gemep_core12(gemep_dir):
    manifests = prepare_gemep(gemep_dir)
    assert len(manifests["emotions"]) == 12
    assert emotions_of(manifests) == {
        "gemep01-01amu1": "amusement", "gemep01-01col2": "hot_anger",
        "gemep01-01tri3": "sadness", "gemep02-02irr1": "cold_anger",
        "gemep02-02peu2": "panic_fear"}
    assert excluded_paths(manifests) == ["02sou1.wav"]
    assert set(by_id(manifests, "gender").values()) == {None}


def test_gemep_all_categories(gemep_dir):
    manifests = prepare_gemep(gemep_dir, categories="all")
    assert len(manifests["emotions"]) == 18
    assert {"admiration", "disgust"} <= set(emotions_of(manifests).values())


def test_gemep_bad_inputs(gemep_dir, tmp_path):
    with pytest.raises(SerError, match="categories"):
        prepare_gemep(gemep_dir, categories="core")
    corpus = write_tree(tmp_path / "g", {"01amu1.wav": WAV, "01xyz1.wav": WAV})
    with fails_naming(corpus / "01xyz1.wav", "unknown emotion code 'xyz'"):
        prepare_gemep(corpus)
    corpus = write_tree(tmp_path / "d", {"a/01amu1.wav": WAV, "b/01amu1.wav": WAV})
    with fails_naming(corpus / "b" / "01amu1.wav", "duplicate utterance id 'gemep01-01amu1'"):
        prepare_gemep(corpus)


# --- IEMOCAP ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def iemocap_dir(trees) -> Path:
    return make_iemocap(trees)


def test_iemocap(iemocap_dir, trees):
    manifests = prepare_iemocap(iemocap_dir, trees / "iemocap_out")
    assert emotions_of(manifests) == {
        "Ses01_F-Ses01F_impro01_F000": "neutral", "Ses01_M-Ses01F_impro01_M000": "happy",
        "Ses01_M-Ses01F_script01_1_M000": "angry", "Ses01_F-Ses01F_script01_1_F000": "sad",
        "Ses02_M-Ses02M_impro02_M000": "happy", "Ses02_F-Ses02M_impro02_F000": "sad"}
    sessions = {s.id: (s.speaker, s.gender, s.custom["session"])
                for s in manifests["supervisions"]}
    assert sessions["Ses01_M-Ses01F_impro01_M000"] == ("Ses01_M", "m", "Session1")
    assert sessions["Ses02_F-Ses02M_impro02_F000"] == ("Ses02_F", "f", "Session2")
    assert excluded_paths(manifests) == ["Ses02M_impro02_F001.wav"]


def test_iemocap_improvised_only(iemocap_dir):
    manifests = prepare_iemocap(iemocap_dir, include_scripted=False)
    assert all("_impro" in s.id for s in manifests["supervisions"])
    assert len(manifests["recordings"]) == 4


def test_iemocap_bad_inputs(tmp_path):
    labels = "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"
    wav = "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav"
    corpus = write_tree(tmp_path / "u", {labels: iemocap_labels(("Ses01F_impro01_F000", "zzz")),
                                         wav: WAV})
    with fails_naming(corpus / labels, "unknown label 'zzz'"):
        prepare_iemocap(corpus)
    corpus = write_tree(tmp_path / "d", {labels: iemocap_labels(
        ("Ses01F_impro01_F000", "neu"), ("Ses01F_impro01_F000", "neu")), wav: WAV})
    with fails_naming(corpus / wav, "duplicate utterance id 'Ses01_F-Ses01F_impro01_F000'"):
        prepare_iemocap(corpus)
