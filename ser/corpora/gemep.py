"""GEMEP, the GEneva Multimodal Emotion Portrayals (Bänziger, Mortillaro & Scherer, 2012).

10 French-speaking actors (5 male, 5 female), numbered 01 to 10, portray 18
affective states. The audio files are taken from anywhere under ``corpus_dir``; a
file name starts with the actor and a three-letter emotion code, whatever follows::

    <corpus_dir>/**/<AA><code><anything>.wav        e.g. 01amu1.wav

The codes abbreviate the French emotion words. The 12 core categories:

    amu amusement, anx anxiety, irr cold_anger (irritation), des despair,
    joi elation (joie), col hot_anger (colère), int interest, peu panic_fear (peur),
    pla pleasure (plaisir), fie pride (fierté), sou relief (soulagement),
    tri sadness (tristesse)

and the 6 extended ones: adm admiration, mep contempt (mépris), deg disgust (dégoût),
hon shame (honte), sur surprise, ten tenderness (tendresse). ``CODES`` is the one
table to correct should a copy spell a code otherwise. Labels are GEMEP's own
category names: this corpus is not mapped onto the basic emotions.

``categories="core12"`` (the default) keeps the 12 core categories, the ones every
actor portrayed, as the recipe's reference paper does (its 1080 utterances are 12
categories x 10 actors x 9 portrayals); files of the 6 extended categories, which not
every actor portrayed, are skipped and counted in the log. ``categories="all"`` keeps
all 18. A code in neither list is an error.

Genders are left unknown: the corpus has 5 male and 5 female actors, but we have no
documented list of which actor number is which. Speaker ids are ``gemep<AA>``,
utterance ids ``gemep<AA>-<file name>``.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

from ser.corpora.common import Utterance, build_manifests, check_corpus_dir, list_audio
from ser.errors import CorpusError, SerError

CORE_CODES = {"amu": "amusement", "anx": "anxiety", "irr": "cold_anger", "des": "despair",
              "joi": "elation", "col": "hot_anger", "int": "interest", "peu": "panic_fear",
              "pla": "pleasure", "fie": "pride", "sou": "relief", "tri": "sadness"}
EXTENDED_CODES = {"adm": "admiration", "mep": "contempt", "deg": "disgust", "hon": "shame",
                  "sur": "surprise", "ten": "tenderness"}
CODES = {**CORE_CODES, **EXTENDED_CODES}
CATEGORIES = {"core12": tuple(sorted(CORE_CODES.values())),
              "all": tuple(sorted(CODES.values()))}
LAYOUT = "**/<actor 2 digits><emotion code 3 letters>....wav, e.g. 01amu1.wav"
FILE_NAME = re.compile(r"(\d\d)([a-z]{3})", re.IGNORECASE)


def prepare_gemep(corpus_dir: Path | str, output_dir: Path | str | None = None,
                  categories: str = "core12") -> dict:
    """Returns the GEMEP manifests of the 12 core or all 18 categories (and writes
    them to ``output_dir`` if given)."""
    if categories not in CATEGORIES:
        raise SerError(f"gemep: categories must be one of {', '.join(CATEGORIES)}, "
                       f"got {categories!r}")
    emotions = CATEGORIES[categories]
    corpus_dir = check_corpus_dir(corpus_dir, "gemep", LAYOUT)
    utterances, skipped = [], 0
    for wav in list_audio(corpus_dir, recursive=True):
        name = FILE_NAME.match(wav.stem)
        if name is None:
            raise CorpusError(f"gemep: {wav}: file name does not follow {LAYOUT}")
        actor, code = name[1], name[2].lower()
        if code not in CODES:
            raise CorpusError(f"gemep: {wav}: unknown emotion code {code!r} (known: "
                              f"{', '.join(CODES)})")
        if CODES[code] not in emotions:
            skipped += 1
            continue
        speaker = f"gemep{actor}"
        utterances.append(Utterance(utt_id=f"{speaker}-{wav.stem}", path=wav,
                                    speaker=speaker, emotion=CODES[code]))
    logging.info("gemep: skipped %d file(s) of the extended categories", skipped)
    return build_manifests(utterances, "gemep", corpus_dir, emotions, output_dir)
