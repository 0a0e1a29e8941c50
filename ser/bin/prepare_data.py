"""Prepares a corpus: Lhotse manifests in ``<data_dir>/manifests`` and a checked Kaldi
data dir in ``<data_dir>``. For ``synth``, first makes the corpus if it is missing.

The audio is checked (ser/audio_checks.py): files of a sample rate below
--min-sample-rate, near-silent or heavily clipped files are listed with the reason in
``<data_dir>/audio_warnings.txt``; --exclude-low-rate leaves the low-rate files out,
listed in ``<data_dir>/manifests/<corpus>_excluded.txt``.

The corpus's labels are mapped to the shared names of conf/emotions.yaml (ser/emotions.py)
with the variants of --emotion-variants that are for this corpus; utterances of labels
mapped to null are left out and listed in the same excluded file."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ser.audio_checks import (LOW_RATE, MIN_SAMPLE_RATE, check_corpus_audio,
                              write_audio_warnings)
from ser.bin import HelpFormatter, run_tool
from ser.config import parse_key_values
from ser.corpora import CORPORA, get_corpus
from ser.corpora.common import exclude_utterances, excluded_file, write_manifests
from ser.datadir import validate_data_dir, write_data_dir
from ser.emotions import apply_mapping, corpus_mapping


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--corpus", required=True, choices=sorted(CORPORA), help="the corpus's name")
    p.add_argument("--corpus-dir", required=True, type=Path, help="the corpus as distributed")
    p.add_argument("--data-dir", required=True, type=Path, help="output, e.g. data/casia")
    p.add_argument("--corpus-opts", default="",
                   help="options of the corpus's prepare function, 'key=value ...'")
    p.add_argument("--synth-speakers", type=int,
                   help="synth: the number of speakers (at most 6) [default: conf/corpus/synth.conf]")
    p.add_argument("--synth-sentences", type=int,
                   help="synth: sentences per speaker and emotion (at most 24) [default: conf/corpus/synth.conf]")
    p.add_argument("--synth-seed", type=int, default=0, help="synth: the seed of the generator")
    p.add_argument("--min-sample-rate", type=int, default=MIN_SAMPLE_RATE,
                   help="audio of a lower sample rate gets a warning (it is upsampled)")
    p.add_argument("--emotion-variants", default="",
                   help="variants of conf/emotions.yaml, '<corpus>:<variant> ...' (those of "
                        "other corpora are ignored), e.g. 'ravdess:calm_as_neutral'")
    p.add_argument("--exclude-low-rate", action="store_true",
                   help="leave out audio of a sample rate below --min-sample-rate")
    return p


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    # Absolute, so that wav.scp works from any directory; not resolved, so that a
    # symlink keeps a path with spaces (which needs a pipe entry) out of wav.scp.
    args.corpus_dir = args.corpus_dir.absolute()
    manifest_dir = args.data_dir.absolute() / "manifests"  # enterface extracts audio there
    if args.corpus == "synth" and not args.corpus_dir.is_dir():
        from ser.corpora.synth import generate_synth_corpus
        logging.info("making the synth corpus in %s", args.corpus_dir)
        generate_synth_corpus(args.corpus_dir, args.synth_speakers, args.synth_sentences,
                              args.synth_seed)
    manifests = get_corpus(args.corpus).prepare(args.corpus_dir, manifest_dir,
                                                **parse_key_values(args.corpus_opts))
    mapped = apply_mapping(manifests, args.corpus,
                           corpus_mapping(args.corpus, args.emotion_variants.split()))
    if mapped is not manifests:
        left_out = len(mapped["excluded"]) - len(manifests["excluded"])
        logging.info("%s: emotions mapped by conf/emotions.yaml to %s; %d utterance(s) of "
                     "labels mapped to null left out, listed in %s", args.corpus, ", ".join(mapped["emotions"]),
                     left_out, excluded_file(manifest_dir, args.corpus))
        manifests = mapped
        write_manifests(manifests, args.corpus, manifest_dir)
    warnings = check_corpus_audio(manifests["recordings"], manifests["supervisions"],
                                  min_sample_rate=args.min_sample_rate)
    if args.exclude_low_rate:
        low_rate = {w.utt: (w.path, w.problems[LOW_RATE]) for w in warnings if LOW_RATE in w.problems}
        if low_rate:
            logging.warning("%s: %d file(s) of a sample rate below %d Hz excluded, e.g. %s; all are "
                            "listed with the reason in %s", args.corpus, len(low_rate), args.min_sample_rate,
                            next(iter(low_rate.values()))[0], excluded_file(manifest_dir, args.corpus))
            manifests = exclude_utterances(manifests, low_rate, args.corpus)
            write_manifests(manifests, args.corpus, manifest_dir)
            warnings = [w for w in warnings if w.utt not in low_rate]
    write_data_dir(manifests["recordings"], manifests["supervisions"], manifests["emotions"],
                   args.data_dir)
    data = validate_data_dir(args.data_dir, manifests["supervisions"])
    logging.info("%s: %d utterances, %d speakers, %d emotions (%d excluded) in %s", args.corpus,
                 len(data.utts), len(data.speakers), len(data.emotions),
                 len(manifests["excluded"]), args.data_dir)
    # Last, so that the count is the stage's last word.
    write_audio_warnings(args.data_dir / "audio_warnings.txt", warnings)


if __name__ == "__main__":
    run_tool(main)
