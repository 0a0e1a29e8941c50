"""``ser <tool> [args]`` (or ``python -m ser <tool>``): runs ``ser.bin.<tool>``;
``ser --help`` lists the tools."""
from __future__ import annotations

import importlib
import pkgutil
import sys

import ser.bin
from ser.bin import run_tool


def summary(doc: str | None) -> str:
    """The first clause of a description: its first paragraph up to the first ``.``,
    ``:`` or ``;`` outside brackets, so that it ends where the sentence does, not where
    the docstring's first line happens to wrap."""
    paragraph = " ".join((doc or "").strip().split("\n\n")[0].split()).replace("``", "")
    depth = 0
    for i, char in enumerate(paragraph):
        depth += char in "([{"
        depth -= char in ")]}"
        if depth <= 0 and char in ".:;" and (i + 1 == len(paragraph) or paragraph[i + 1] == " "):
            return paragraph[:i]
    return paragraph.rstrip(".")


def tools() -> dict[str, str]:
    """Tool name (dashes) -> the first clause of its description."""
    found = {}
    for info in pkgutil.iter_modules(ser.bin.__path__):
        module = importlib.import_module(f"ser.bin.{info.name}")
        if hasattr(module, "main"):
            found[info.name.replace("_", "-")] = summary(module.__doc__)
    return found


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: ser <tool> [--help] [args]\n\ntools:")
        for name, summary in sorted(tools().items()):
            print(f"  {name:16s} {summary}")
        return
    name = argv[0].replace("-", "_")
    try:
        module = importlib.import_module(f"ser.bin.{name}")
    except ModuleNotFoundError:
        sys.exit(f"ser: unknown tool {argv[0]!r}; see ser --help")
    sys.argv[0] = f"ser {argv[0]}"  # argparse names the program after it
    run_tool(module.main, argv[1:])


if __name__ == "__main__":
    main()
