"""The one registry of corpora the recipe can prepare.

Each entry names a ``prepare_<corpus>(corpus_dir, output_dir, **options)`` function
in Lhotse's style: it reads the corpus, returns ``{"recordings", "supervisions",
"excluded", "emotions"}`` and writes nothing outside ``output_dir``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ser.errors import SerError


@dataclass(frozen=True)
class CorpusInfo:
    name: str
    prepare_function: str  # "module:function", imported on use
    description: str
    default_protocol: str = "loso"

    def prepare(self, corpus_dir: Path | str, output_dir: Path | str | None = None,
                **options) -> dict:
        module, function = self.prepare_function.split(":")
        prepare: Callable = getattr(importlib.import_module(module), function)
        return prepare(corpus_dir, output_dir, **options)


CORPORA = {info.name: info for info in (
    CorpusInfo("synth", "ser.corpora.synth:prepare_synth",
               "synthetic acted emotions (espeak-ng), made by the recipe"),
    CorpusInfo("casia", "ser.corpora.casia:prepare_casia",
               "CASIA Chinese emotional speech, 4 speakers, 6 emotions"),
    CorpusInfo("emodb", "ser.corpora.emodb:prepare_emodb",
               "Berlin EmoDB German acted speech, 10 speakers, 7 emotions"),
    CorpusInfo("enterface", "ser.corpora.enterface:prepare_enterface",
               "eNTERFACE'05 English audio-visual, 42 subjects, 6 emotions (audio from .avi)"),
    CorpusInfo("gemep", "ser.corpora.gemep:prepare_gemep",
               "GEMEP French actor portrayals, 10 actors, 12 core (or all 18) categories"),
    CorpusInfo("iemocap", "ser.corpora.iemocap:prepare_iemocap",
               "IEMOCAP English dyadic sessions, 10 speakers, 4 classes (happy + excited)",
               default_protocol="session"),
    CorpusInfo("ravdess", "ser.corpora.ravdess:prepare_ravdess",
               "RAVDESS English acted speech, 24 actors, 8 (or 6) emotions"),
)}


def get_corpus(name: str) -> CorpusInfo:
    try:
        return CORPORA[name]
    except KeyError:
        raise SerError(f"unknown corpus {name!r}; known: {', '.join(sorted(CORPORA))}") from None
