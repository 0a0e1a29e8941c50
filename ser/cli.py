"""``ser <tool> [args]`` (or ``python -m ser <tool>``): runs ``ser.bin.<tool>``;
``ser --help`` lists the tools."""
from __future__ import annotations

import importlib
import pkgutil
import sys

import ser.bin
from ser.bin import run_tool


def tools() -> dict[str, str]:
    """Tool name (dashes) -> first line of its description."""
    found = {}
    for info in pkgutil.iter_modules(ser.bin.__path__):
        module = importlib.import_module(f"ser.bin.{info.name}")
        if hasattr(module, "main"):
            found[info.name.replace("_", "-")] = (module.__doc__ or "").strip().split("\n")[0]
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
