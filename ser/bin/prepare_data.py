"""Prepares a corpus: Lhotse manifests in ``<data_dir>/manifests`` and a checked Kaldi
data dir in ``<data_dir>``. For ``synth``, first makes the corpus if it is missing."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ser.bin import run_tool
from ser.config import parse_key_values
from ser.corpora import CORPORA, get_corpus
from ser.datadir import validate_data_dir, write_data_dir



def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--corpus", required=True, choices=sorted(CORPORA))
    p.add_argument("--corpus-dir", required=True, type=Path, help="the corpus as distributed")
    p.add_argument("--data-dir", required=True, type=Path, help="output, e.g. data/casia")
    p.add_argument("--corpus-opts", default="",
                   help="options of the corpus's prepare function, 'key=value ...'")
    p.add_argument("--synth-speakers", type=int, default=4)
    p.add_argument("--synth-sentences", type=int, default=20)
    p.add_argument("--synth-seed", type=int, default=0)
    return p


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    args.corpus_dir = args.corpus_dir.resolve()  # wav.scp must work from any directory
    if args.corpus == "synth" and not args.corpus_dir.is_dir():
        from ser.corpora.synth import generate_synth_corpus
        logging.info("making the synth corpus in %s", args.corpus_dir)
        generate_synth_corpus(args.corpus_dir, args.synth_speakers, args.synth_sentences,
                              args.synth_seed)
    manifests = get_corpus(args.corpus).prepare(args.corpus_dir, args.data_dir / "manifests",
                                                **parse_key_values(args.corpus_opts))
    write_data_dir(manifests["recordings"], manifests["supervisions"], manifests["emotions"],
                   args.data_dir)
    data = validate_data_dir(args.data_dir, manifests["supervisions"])
    logging.info("%s: %d utterances, %d speakers, %d emotions (%d excluded) in %s", args.corpus,
                 len(data.utts), len(data.speakers), len(data.emotions),
                 len(manifests["excluded"]), args.data_dir)


if __name__ == "__main__":
    run_tool(main)
