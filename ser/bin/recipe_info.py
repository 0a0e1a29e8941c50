"""Facts run.sh asks of the Python side, so that each lives in one place.

  recipe_info.py default-protocol CORPUS   the corpus registry's protocol
  recipe_info.py tag "k=v ..."             the dir-name tag of option overrides
  recipe_info.py emotion-map CORPUS [--variants "corpus:variant ..."]
                                           '' for an identity emotion mapping, else its hash
  recipe_info.py speed-factors auto|"F ..."   the speed factors (auto: the recipe's default)
  recipe_info.py speed-tag auto|"F ..."       their dir-name suffix, e.g. sp0.9_1.1 ('' for none)
  recipe_info.py runs-on-device FEAT        true if the feature type can be computed on a GPU, else false
  recipe_info.py corpus-digest DIR [--cache FILE]  hash of a corpus's files (paths, sizes, contents)
  recipe_info.py check [--feat F] [--model M] [--baseline B] [--cmvn C] [--protocol P] [--seeds "S ..."]
                                           exits with one message naming every unknown setting
"""
from __future__ import annotations

import argparse

from ser.bin import HelpFormatter, run_tool
from ser.speed import factors_tag, split_factors
from ser.config import MODEL_CONF_DIR
from ser.corpora import get_corpus
from ser.emotions import mapping_tag
from ser.errors import SerError
from ser.provenance import corpus_digest, options_tag


def check_settings(feat: str = "", model: str = "", cmvn: str = "", protocol: str = "", baseline: str = "",
                   seeds: str = "") -> None:
    """Raises SerError naming every unknown setting ('' is not checked), so that a typo
    stops the recipe before stage 1 instead of failing (or computing features) stages later."""
    from ser.cmvn import CMVN_MODES  # here, not at the top: the other questions need none of these
    from ser.features import FEATURE_TYPES
    from ser.folds import PROTOCOLS
    models = sorted(p.stem for p in MODEL_CONF_DIR.glob("*.yaml"))
    problems = []
    if feat and feat not in (*FEATURE_TYPES, "external"):
        problems.append(f"--feat {feat!r} is not a feature type; known: {', '.join((*FEATURE_TYPES, 'external'))}")
    for option, name in (("--model", model), ("--baseline", baseline)):
        if name and name not in models:
            problems.append(f"{option} {name!r} has no config {MODEL_CONF_DIR}/{name}.yaml; known: {', '.join(models)}")
    if cmvn and cmvn not in CMVN_MODES:
        problems.append(f"--cmvn {cmvn!r} is not a normalisation mode; known: {', '.join(CMVN_MODES)}")
    if protocol and protocol not in PROTOCOLS:
        problems.append(f"--protocol {protocol!r} is not a protocol; known: {', '.join(PROTOCOLS)}")
    if seeds and not all(s.isdigit() for s in seeds.split()):
        problems.append(f"--seeds {seeds!r}: expected whole numbers separated by spaces, e.g. '1 2 3'")
    if problems:
        raise SerError("; ".join(problems))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("what", choices=("default-protocol", "tag", "emotion-map", "speed-factors", "speed-tag",
                                      "corpus-digest", "runs-on-device", "check"))
    p.add_argument("value", nargs="?", default="")
    p.add_argument("--variants", default="", help="emotion-map: '<corpus>:<variant> ...'")
    p.add_argument("--cache", help="corpus-digest: the file that keeps each file's hash between calls")
    for option in ("feat", "model", "baseline", "cmvn", "protocol", "seeds"):
        p.add_argument(f"--{option}", default="", help=f"check: run.sh's --{option}")
    args = p.parse_args(argv)
    if args.what == "check":
        check_settings(args.feat, args.model, args.cmvn, args.protocol, args.baseline, args.seeds)
    elif args.what == "default-protocol":
        print(get_corpus(args.value).default_protocol)
    elif args.what == "emotion-map":
        print(mapping_tag(args.value, args.variants.split()))
    elif args.what == "speed-factors":
        print(" ".join(split_factors(args.value)))
    elif args.what == "speed-tag":
        print(factors_tag(args.value))
    elif args.what == "runs-on-device":
        from ser.features import runs_on_device
        print("true" if runs_on_device(args.value) else "false")
    elif args.what == "corpus-digest":
        print(corpus_digest(args.value, args.cache))
    else:
        print(options_tag(args.value))


if __name__ == "__main__":
    run_tool(main)
