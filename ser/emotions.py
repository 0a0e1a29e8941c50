"""The one emotion vocabulary (``conf/emotions.yaml``): each corpus's labels mapped to
shared names, with optional variants, and the class intersection of several corpora.

A corpus module (ser/corpora/) names its labels; :func:`corpus_mapping` gives the map
from those labels to the shared names (``None``: left out) for a corpus and the chosen
variants (``"<corpus>:<variant>"``, e.g. ``"ravdess:calm_as_neutral"``), and
:func:`apply_mapping` relabels a corpus's manifests with it, listing the utterances left
out. With the default (identity) mappings a corpus keeps its labels and their order.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Iterable, Sequence

from ser.config import CONF_ROOT, load_yaml
from ser.errors import SerError

VOCABULARY_FILE = CONF_ROOT / "emotions.yaml"


def load_vocabulary(path: Path | str | None = None) -> dict:
    vocabulary = load_yaml(path or VOCABULARY_FILE)
    if not isinstance(vocabulary.get("corpora"), dict):
        raise SerError(f"{path or VOCABULARY_FILE}: needs a 'corpora' mapping")
    vocabulary.setdefault("variants", {})
    return vocabulary


def variants_of(corpus: str, variants: Iterable[str]) -> list[str]:
    """The variant names of ``"<corpus>:<variant>"`` items that are for ``corpus``."""
    chosen = []
    for item in variants:
        if ":" not in item:
            raise SerError(f"emotion variant {item!r} is not '<corpus>:<variant>', "
                           "e.g. ravdess:calm_as_neutral")
        name, variant = item.split(":", 1)
        if name == corpus:
            chosen.append(variant)
    return chosen


def corpus_mapping(corpus: str, variants: Iterable[str] = (),
                   vocabulary: dict | None = None, source: str | None = None) -> dict[str, str | None]:
    """Label -> shared name (None: left out) of ``corpus`` with the variants of
    ``variants`` that are for it (``"<corpus>:<variant>"``; others are ignored)."""
    source = source or str(VOCABULARY_FILE)
    vocabulary = vocabulary or load_vocabulary()
    if corpus not in vocabulary["corpora"]:
        raise SerError(f"{source}: no emotion mapping for corpus {corpus!r}; add one under 'corpora'")
    mapping = dict(vocabulary["corpora"][corpus])
    defined = vocabulary["variants"].get(corpus, {}) or {}
    for variant in variants_of(corpus, variants):
        if variant not in defined:
            raise SerError(f"{source}: corpus {corpus} has no emotion variant {variant!r}; "
                           f"known: {', '.join(sorted(defined)) or 'none'}")
        unknown = set(defined[variant]) - set(mapping)
        if unknown:
            raise SerError(f"{source}: variant {corpus}:{variant} maps labels the corpus does "
                           f"not have: {sorted(unknown)}")
        mapping.update(defined[variant])
    return mapping


def mapping_tag(corpus: str, variants: Iterable[str] = (), vocabulary: dict | None = None) -> str:
    """'' for an identity mapping (today's labels), else a short hash of the mapping:
    what the corpus stage's record holds, so a changed mapping prepares the corpus again."""
    mapping = corpus_mapping(corpus, variants, vocabulary)
    if all(label == name for label, name in mapping.items()):
        return ""
    return hashlib.sha1(json.dumps(mapping, sort_keys=True).encode()).hexdigest()[:12]


def map_labels(emotions: Sequence[str], mapping: dict[str, str | None], corpus: str,
               source: str | None = None) -> list[str]:
    """The shared names of ``emotions`` in their order, each once, without the left-out ones."""
    missing = [e for e in emotions if e not in mapping]
    if missing:
        raise SerError(f"{source or VOCABULARY_FILE}: the mapping of corpus {corpus} does not "
                       f"list its label(s) {missing}; every label must be mapped (or to null)")
    names: list[str] = []
    for emotion in emotions:
        name = mapping[emotion]
        if name is not None and name not in names:
            names.append(name)
    return names


def apply_mapping(manifests: dict, corpus: str, mapping: dict[str, str | None]) -> dict:
    """The manifests with each supervision's emotion mapped; utterances of labels mapped
    to None join ``excluded`` (with the reason). Unchanged for an identity mapping."""
    from lhotse import RecordingSet, SupervisionSet

    emotions = map_labels(manifests["emotions"], mapping, corpus)
    if list(emotions) == list(manifests["emotions"]) and all(mapping[e] == e for e in emotions):
        return manifests
    if not emotions:
        raise SerError(f"{VOCABULARY_FILE}: every label of corpus {corpus} is left out")
    kept, excluded = [], list(manifests["excluded"])
    for sup in manifests["supervisions"]:
        label = sup.custom["emotion"]
        name = mapping[label]
        if name is None:
            path = manifests["recordings"][sup.recording_id].sources[0].source
            excluded.append((sup.id, str(path), f"emotion {label} left out by conf/emotions.yaml"))
            continue
        if name != label:
            sup = dataclasses.replace(sup, custom={**sup.custom, "emotion": name,
                                                   "corpus_emotion": label})
        kept.append(sup)
    if not kept:
        raise SerError(f"{corpus}: every utterance was left out by the emotion mapping")
    ids = {s.recording_id for s in kept}
    return {**manifests, "supervisions": SupervisionSet.from_segments(kept),
            "recordings": RecordingSet.from_recordings(r for r in manifests["recordings"] if r.id in ids),
            "excluded": sorted(excluded), "emotions": tuple(emotions)}


def shared_classes(train: Sequence[Sequence[str]], test: Sequence[str] | None = None) -> list[str]:
    """The classes every training corpus (and the test corpus, if any) has, in the
    order of the first training corpus."""
    sets = [set(e) for e in train] + ([set(test)] if test is not None else [])
    return [e for e in train[0] if all(e in s for s in sets)]
