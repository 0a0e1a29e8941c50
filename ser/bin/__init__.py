"""Command-line tools, one module each: ``python -m ser.bin.<tool> --help``."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from ser.errors import SerError


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description as written, and after each option's help its default, where it
    has one to show (not None, False or empty) and the help does not say it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (default is None or default is False or default is argparse.SUPPRESS
                or (isinstance(default, (str, list, tuple)) and not default) or "default" in text):
            return text
        return f"{text} (default: %(default)s)"


def run_tool(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    """Runs a tool's ``main``: user errors become one line on stderr and exit 1. Run as
    ``python -m ser.bin.<tool>`` (local/infer.sh does), its usage line names it
    ``ser <tool>``, as the ``ser`` command does, not ``<tool>.py``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if argv is None and sys.argv and sys.argv[0].endswith(".py") and spec and spec.name.startswith("ser.bin."):
        sys.argv[0] = "ser " + spec.name.rsplit(".", 1)[1].replace("_", "-")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s (%(module)s) %(message)s")
    try:
        main(argv)
    except SerError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        sys.exit(1)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help with the description as written and every option's default: "(required)"
    for required options, "(default: none)" for those without one unless their help says
    what stands in for it, nothing for flags and positional arguments."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or action.nargs == 0:
            return text
        if action.required:
            return f"{text} (required)".lstrip()
        if action.default is None:
            return text if "default" in text else f"{text} (default: none)".lstrip()
        if action.default == "":
            return f"{text} (default: '')".lstrip()
        return super()._get_help_string(action)
