"""The one emotion vocabulary (conf/emotions.yaml, ser/emotions.py) and its use by
corpus preparation."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from ser.bin import prepare_data
from ser.corpora import CORPORA
from ser.datadir import read_data_dir
from ser.emotions import (corpus_mapping, load_vocabulary, map_labels, mapping_tag,
                          shared_classes, variants_of)
from ser.errors import SerError
from tests.fixtures_corpora import make_emodb, make_gemep, make_ravdess

MODULE_LABELS = {"synth": "EMOTIONS", "casia": "EMOTIONS", "emodb": "EMOTIONS", "enterface": "EMOTIONS",
                 "ravdess": "EMOTIONS", "iemocap": "EMOTIONS", "gemep": "CODES"}


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_every_corpus_label_is_mapped(corpus):
    module = importlib.import_module(f"ser.corpora.{corpus}")
    labels = getattr(module, MODULE_LABELS[corpus])
    labels = list(labels.values()) if isinstance(labels, dict) else list(labels)
    mapping = corpus_mapping(corpus)
    assert set(mapping) == set(labels)
    # The defaults keep today's labels and order.
    assert map_labels(labels, mapping, corpus) == list(dict.fromkeys(labels))
    assert mapping_tag(corpus) == ""


def test_variants_replace_entries_and_unknown_ones_fail():
    mapping = corpus_mapping("ravdess", ["ravdess:calm_as_neutral", "gemep:basic"])
    assert mapping["calm"] == "neutral" and mapping["angry"] == "angry"
    assert mapping_tag("ravdess", ["ravdess:calm_as_neutral"]) != ""
    assert corpus_mapping("gemep", ["gemep:basic"])["hot_anger"] == "angry"
    assert corpus_mapping("gemep", ["gemep:basic"])["pride"] is None
    with pytest.raises(SerError, match="no emotion variant 'nope'"):
        corpus_mapping("ravdess", ["ravdess:nope"])
    with pytest.raises(SerError, match="<corpus>:<variant>"):
        variants_of("ravdess", ["calm_as_neutral"])
    with pytest.raises(SerError, match="does not list its label"):
        map_labels(["angry", "joy"], corpus_mapping("casia"), "casia")
    vocabulary = load_vocabulary()
    vocabulary["variants"]["casia"] = {"bad": {"joy": "happy"}}
    with pytest.raises(SerError, match="labels the corpus does not have"):
        corpus_mapping("casia", ["casia:bad"], vocabulary)


def test_shared_classes_follow_the_first_training_corpus():
    assert shared_classes([["sad", "angry", "fear"]], ["angry", "sad", "boredom"]) == ["sad", "angry"]
    assert shared_classes([["a", "b", "c"], ["c", "b"]]) == ["b", "c"]


def test_prepare_maps_ravdess_calm_to_neutral_as_an_option(tmp_path):
    corpus = make_ravdess(tmp_path)
    prepare_data.main(["--corpus", "ravdess", "--corpus-dir", str(corpus), "--data-dir", str(tmp_path / "plain")])
    plain = read_data_dir(tmp_path / "plain")
    assert "calm" in plain.emotions and sorted(plain.utt2emo.values()).count("neutral") == 2
    prepare_data.main(["--corpus", "ravdess", "--corpus-dir", str(corpus), "--data-dir", str(tmp_path / "mapped"),
                       "--emotion-variants", "ravdess:calm_as_neutral casia:whatever"])
    mapped = read_data_dir(tmp_path / "mapped")
    assert "calm" not in mapped.emotions and len(mapped.emotions) == 7
    assert sorted(mapped.utt2emo.values()).count("neutral") == 4  # 2 neutral + 2 calm
    assert mapped.utts == plain.utts


def test_prepare_leaves_out_and_lists_labels_mapped_to_null(tmp_path):
    corpus = make_gemep(tmp_path)
    prepare_data.main(["--corpus", "gemep", "--corpus-dir", str(corpus), "--data-dir", str(tmp_path / "g"),
                       "--emotion-variants", "gemep:basic", "--corpus-opts", "categories=all"])
    data = read_data_dir(tmp_path / "g")
    # amusement -> happy, hot_anger -> angry, sadness -> sad, cold_anger -> angry,
    # panic_fear -> fear, disgust stays; admiration -> null; relief is corrupt.
    assert sorted(data.utt2emo.values()) == ["angry", "angry", "disgust", "fear", "happy", "sad"]
    # in the order of the categories they come from (sorted GEMEP names)
    assert data.emotions == ["happy", "fear", "angry", "sad", "disgust", "surprise"]
    excluded = (tmp_path / "g" / "manifests" / "gemep_excluded.txt").read_text().splitlines()
    assert any(line.startswith("gemep01-01adm1\t") and "emotion admiration left out by conf/emotions.yaml"
               in line for line in excluded)
    assert any("unreadable" in line for line in excluded)


def test_identity_mapping_keeps_emodb_as_it_was(tmp_path):
    corpus = make_emodb(tmp_path)
    prepare_data.main(["--corpus", "emodb", "--corpus-dir", str(corpus), "--data-dir", str(tmp_path / "e")])
    data = read_data_dir(tmp_path / "e")
    assert data.emotions == ["angry", "boredom", "disgust", "fear", "happy", "sad", "neutral"]
