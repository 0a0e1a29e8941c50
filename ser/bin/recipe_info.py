"""Facts run.sh asks of the Python side, so that each lives in one place.

  recipe_info.py default-protocol CORPUS   the corpus registry's protocol
  recipe_info.py tag "k=v ..."             the dir-name tag of option overrides
"""
from __future__ import annotations

import argparse

from ser.bin import run_tool
from ser.corpora import get_corpus
from ser.provenance import options_tag


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("default-protocol", "tag"))
    p.add_argument("value")
    args = p.parse_args(argv)
    print(get_corpus(args.value).default_protocol if args.what == "default-protocol" else options_tag(args.value))


if __name__ == "__main__":
    run_tool(main)
