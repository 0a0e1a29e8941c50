"""Help and usage: ``ser --help`` summarises each tool in a whole clause, every tool's
--help explains each option and shows its default, and the usage line names the tool
as the user can call it."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import subprocess
import sys

import pytest

import ser.bin
from conftest import ROOT
from ser.cli import summary, tools



def parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    found = []
    for info in pkgutil.iter_modules(ser.bin.__path__):
        module = importlib.import_module(f"ser.bin.{info.name}")
        if hasattr(module, "get_parser"):
            found.append((info.name, module.get_parser()))
    return found


def test_summaries_end_where_a_clause_does():
    doc = ("Classifies audio with a model bundle (ser export-model: see its help): one line per\n"
           "file with the predicted emotion.\n\nMore.")
    assert summary(doc) == "Classifies audio with a model bundle (ser export-model: see its help)"
    assert summary("Prints the fold names (fold1 fold2 ...), for the\nshell stages.\n") == \
        "Prints the fold names (fold1 fold2 ...), for the shell stages"
    listed = tools()
    assert listed["infer"] == "Classifies audio with a model bundle (ser export-model)"
    for name, text in listed.items():
        module = importlib.import_module(f"ser.bin.{name.replace('-', '_')}")
        paragraph = " ".join(module.__doc__.strip().split("\n\n")[0].split()).replace("``", "")
        assert paragraph.startswith(text), name
        rest = paragraph[len(text):]
        assert rest in ("", ".") or rest[0] in ".:;", (name, text)  # not cut mid-sentence


def test_every_option_is_explained_with_its_default():
    for name, parser in parsers():
        text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"ser {name}: {action.option_strings or action.dest} has no help"
            default = action.default
            if not (default is None or default is False or (isinstance(default, (str, list, tuple)) and not default)):
                assert "default" in parser._get_formatter()._get_help_string(action), (name, action.dest)
        assert "%(default)" not in text


@pytest.mark.slow
def test_infer_help_shows_the_batch_and_chunk_defaults_and_its_name():
    # local/infer.sh runs python -m ser.bin.infer: the usage line names ser infer, not infer.py.
    out = subprocess.run([str(ROOT / "local/infer.sh"), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: ser infer ")
    text = " ".join(out.stdout.split())
    for option, default in (("--batch-size BATCH_SIZE", 16), ("--chunk-seconds CHUNK_SECONDS", 10.0),
                            ("--chunk-overlap CHUNK_OVERLAP", 1.0)):
        assert re.search(rf"{option} [^-]*\(default: {default}\)", text), option


@pytest.mark.parametrize("argv0, prog", [("ser explain", "ser explain"), ("/x/ser/bin/explain.py", "ser explain")])
def test_usage_names_the_tool(argv0, prog, monkeypatch, capsys):
    from ser.bin import run_tool
    from ser.bin.explain import main

    monkeypatch.setattr(sys, "argv", [argv0, "--help"])
    monkeypatch.setitem(sys.modules, "__main__", importlib.import_module("ser.bin.explain"))
    with pytest.raises(SystemExit):
        run_tool(main)
    assert capsys.readouterr().out.startswith(f"usage: {prog} ")


@pytest.mark.parametrize("args, confs", [([], ("corpus/synth.conf",)),
                                         (["--feat", "whisper", "--corpus", "casia"],
                                          ("feat_defaults/whisper.conf", "corpus/casia.conf"))])
def test_run_sh_help_lists_every_option_with_its_default(args, confs):
    """Every option of run.sh's option block, with the value the feature type's and the
    corpus's confs (then the command line) give it; run.sh's bookkeeping (leading _) is not
    an option."""
    from ser.config import CONF_ROOT, shell_assignments

    defaults = shell_assignments(ROOT / "run.sh", stop_at="parse_options.sh")
    for conf in confs:
        defaults.update(shell_assignments(CONF_ROOT / conf))
    defaults.update({args[i][2:]: args[i + 1] for i in range(0, len(args), 2)})
    out = subprocess.run([str(ROOT / "run.sh"), *args, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    listed = dict(re.findall(r"^  --(\S+) +\[(.*?)\] ", out.stdout, re.M))
    assert listed == {name.replace("_", "-"): value for name, value in defaults.items()}
    assert "--all-args" not in out.stdout and "--cmvn-default" not in out.stdout


def test_quick_lane_keeps_the_unit_tests_and_the_smallest_end_to_end_run():
    """./test.sh --quick: slow, real-data and benchmark tests are left out; the unit tests and
    the smallest end-to-end run (every stage on the tiny synth corpus) stay."""
    out = subprocess.run(["./test.sh", "--quick", "--collect-only", "-q", "-n", "0", "tests/test_recipe.py",
                          "tests/test_metrics.py", "tests/test_benchmarks.py"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    collected = [line for line in out.stdout.splitlines() if "::" in line]
    assert "tests/test_recipe.py::test_every_stage_produces_its_outputs" in collected
    assert any(line.startswith("tests/test_metrics.py::") for line in collected)
    assert not any("test_second_run_does_no_work" in line or "test_casia_preparation" in line
                   or line.startswith("tests/test_benchmarks.py::") for line in collected)
