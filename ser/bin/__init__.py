"""Command-line tools, one module each: ``python -m ser.bin.<tool> --help``."""
from __future__ import annotations

import logging
import sys
from typing import Callable

from ser.errors import SerError


def run_tool(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    """Runs a tool's ``main``: user errors become one line on stderr and exit 1."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s (%(module)s) %(message)s")
    try:
        main(argv)
    except SerError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        sys.exit(1)
