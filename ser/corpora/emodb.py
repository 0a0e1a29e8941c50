"""Berlin Database of Emotional Speech, EmoDB (Burkhardt et al., 2005).

10 actors (5 male, 5 female) speak 10 German sentences in 7 emotions (535 files).
Layout::

    <corpus_dir>/wav/<SS><TTT><E><V>.wav        e.g. wav/03a01Fa.wav

``corpus_dir`` may be the EmoDB root or its ``wav`` folder. SS is the speaker (03,
08 to 16), TTT the text (a01 to a07, b01 to b10), E the emotion by its German name
and V the version (a, b, c...). Emotions: W (Wut) angry, L (Langeweile) boredom,
E (Ekel) disgust, A (Angst) fear, F (Freude) happy, T (Trauer) sad, N neutral.

Genders as the corpus documents them: male 03, 10, 11, 12, 15; female 08, 09, 13,
14, 16. Speaker ids are ``emodb<SS>`` (bare numbers would clash with other corpora's),
utterance ids ``emodb<SS>-<file name>``; the text is the German sentence.
"""
from __future__ import annotations

import re
from pathlib import Path

from ser.corpora.common import Utterance, build_manifests, check_corpus_dir, list_audio
from ser.errors import CorpusError

EMOTIONS = ("angry", "boredom", "disgust", "fear", "happy", "sad", "neutral")
EMOTION_LETTERS = {"W": "angry", "L": "boredom", "E": "disgust", "A": "fear", "F": "happy",
                   "T": "sad", "N": "neutral"}
SPEAKER_GENDERS = {"03": "m", "10": "m", "11": "m", "12": "m", "15": "m",
                   "08": "f", "09": "f", "13": "f", "14": "f", "16": "f"}
TEXTS = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}
LAYOUT = "wav/<speaker><text><emotion><version>.wav, e.g. wav/03a01Fa.wav"
FILE_NAME = re.compile(r"(\d\d)([ab]\d\d)([A-Z])([a-z])")


def prepare_emodb(corpus_dir: Path | str, output_dir: Path | str | None = None) -> dict:
    """Returns the EmoDB manifests (and writes them to ``output_dir`` if given)."""
    corpus_dir = check_corpus_dir(corpus_dir, "emodb", LAYOUT)
    wav_dir = corpus_dir / "wav" if (corpus_dir / "wav").is_dir() else corpus_dir
    utterances = []
    for wav in list_audio(wav_dir):
        name = FILE_NAME.fullmatch(wav.stem)
        if name is None:
            raise CorpusError(f"emodb: {wav}: file name does not follow {LAYOUT}")
        number, text, letter, _version = name.groups()
        if letter not in EMOTION_LETTERS:
            raise CorpusError(f"emodb: {wav}: unknown emotion letter {letter!r} (known: "
                              f"{', '.join(EMOTION_LETTERS)})")
        utterances.append(Utterance(
            utt_id=f"emodb{number}-{wav.stem}", path=wav, speaker=f"emodb{number}",
            emotion=EMOTION_LETTERS[letter], gender=SPEAKER_GENDERS.get(number),
            text=TEXTS.get(text)))
    return build_manifests(utterances, "emodb", corpus_dir, EMOTIONS, output_dir)
