"""Facts run.sh asks of the Python side, so that each lives in one place.

  recipe_info.py default-protocol CORPUS   the corpus registry's protocol
  recipe_info.py tag "k=v ..."             the dir-name tag of option overrides
  recipe_info.py emotion-map CORPUS [--variants "corpus:variant ..."]
                                           '' for an identity emotion mapping, else its hash
  recipe_info.py speed-factors auto|"F ..."   the speed factors (auto: the recipe's default)
  recipe_info.py speed-tag auto|"F ..."       their dir-name suffix, e.g. sp0.9_1.1 ('' for none)
  recipe_info.py corpus-digest DIR [--cache FILE]  hash of a corpus's files (paths, sizes, contents)
"""
from __future__ import annotations

import argparse

from ser.bin import run_tool
from ser.bin.perturb_wav_scp import factors_tag, split_factors
from ser.corpora import get_corpus
from ser.emotions import mapping_tag
from ser.provenance import corpus_digest, options_tag


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("default-protocol", "tag", "emotion-map", "speed-factors", "speed-tag",
                                      "corpus-digest"))
    p.add_argument("value")
    p.add_argument("--variants", default="", help="emotion-map: '<corpus>:<variant> ...'")
    p.add_argument("--cache", help="corpus-digest: the file that keeps each file's hash between calls")
    args = p.parse_args(argv)
    if args.what == "default-protocol":
        print(get_corpus(args.value).default_protocol)
    elif args.what == "emotion-map":
        print(mapping_tag(args.value, args.variants.split()))
    elif args.what == "speed-factors":
        print(" ".join(split_factors(args.value)))
    elif args.what == "speed-tag":
        print(factors_tag(args.value))
    elif args.what == "corpus-digest":
        print(corpus_digest(args.value, args.cache))
    else:
        print(options_tag(args.value))


if __name__ == "__main__":
    run_tool(main)
