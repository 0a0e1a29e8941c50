"""Facts run.sh and the steps ask of the Python side, so that each lives in one place.

  recipe_info.py names RUN.SH-OPTIONS...   checks run.sh's settings and prints the names of its
                                           data, fold, feature and exp dirs (ser/recipe.py) as
                                           bash assignments, for run.sh to eval
  recipe_info.py emotion-map CORPUS [--variants "corpus:variant ..."]
                                           '' for an identity emotion mapping, else its hash
  recipe_info.py runs-on-device FEAT        true if the feature type can be computed on a GPU, else false
  recipe_info.py corpus-digest DIR [--cache FILE]  hash of a corpus's files (paths, sizes, contents)
  recipe_info.py check [--feat F] [--model M] [--baseline B] [--cmvn C] [--protocol P] [--seeds "S ..."]
                                           exits with one message naming every unknown setting
"""
from __future__ import annotations

import argparse
import sys

from ser.bin import HelpFormatter, run_tool
from ser.emotions import mapping_tag
from ser.provenance import corpus_digest
from ser.recipe import check_settings, dir_names, shell_assignments_of


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("what", choices=("names", "emotion-map", "corpus-digest", "runs-on-device", "check"))
    p.add_argument("value", nargs="?", default="", help="the corpus, dir or feature type asked about")
    p.add_argument("--variants", default="", help="emotion-map: '<corpus>:<variant> ...'")
    p.add_argument("--cache", help="corpus-digest: the file that keeps each file's hash between calls")
    for option in ("feat", "model", "baseline", "cmvn", "protocol", "seeds"):
        p.add_argument(f"--{option}", default="", help=f"check: run.sh's --{option}")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["names"]:  # run.sh's options follow, which are not this tool's
        print(shell_assignments_of(dir_names(argv[1:])), end="")
        return
    args = p.parse_args(argv)
    if args.what == "check":
        check_settings(args.feat, args.model, args.cmvn, args.protocol, args.baseline, args.seeds)
    elif args.what == "emotion-map":
        print(mapping_tag(args.value, args.variants.split()))
    elif args.what == "runs-on-device":
        from ser.features import runs_on_device
        print("true" if runs_on_device(args.value) else "false")
    else:
        print(corpus_digest(args.value, args.cache))


if __name__ == "__main__":
    run_tool(main)
