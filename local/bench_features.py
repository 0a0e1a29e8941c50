#!/usr/bin/env python3
"""Times lld93 extraction on a corpus: the feature stage users run,
``steps/make_feats.sh --feat lld93`` with 1 and 2 jobs, against openSMILE run directly
(``opensmile.Smile(conf/feats/lld93.conf).process_file`` over the same files, with the
same options, in one process). Each is timed as a whole command, start-up included,
in wall-clock and CPU time (the latter is steadier on a machine busy with other jobs).
With --repeats R the three commands run R times interleaved, so that load from other
jobs hits them alike, and the medians count.

real-time factor (rtf) = processing time / audio duration;
overhead = make_feats.sh --nj 1 time / direct time - 1.
The last line is ``rtf_nj1=... rtf_nj2=... overhead=...``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

from ser.features import build_extractor
from ser.opensmile_features import LLD93_CONF

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "casia"
DIRECT = """import sys, json, opensmile
smile = opensmile.Smile(sys.argv[1], "lld93", options=json.loads(sys.argv[2]))
for path in open(sys.argv[3]).read().splitlines():
    smile.process_file(path)
"""


def get_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus-dir", type=Path,
                        help=f"a folder of .wav files [default: $SER_CASIA_DIR, else {DEFAULT_CORPUS}]")
    parser.add_argument("--num-files", type=int, default=0,
                        help="use this many files, spread over the sorted list [default: all]")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cmd", default="utils/run.pl", help="make_feats.sh's job runner")
    return parser.parse_args()


def corpus_dir(given: Path | None) -> Path | None:
    """The corpus to time; None when none was given and the default is absent."""
    path = given or (Path(os.environ["SER_CASIA_DIR"]) if os.environ.get("SER_CASIA_DIR") else None)
    if path is not None:
        if not path.is_dir():
            sys.exit(f"ERROR: corpus directory {path} does not exist")
        return path.resolve()
    return DEFAULT_CORPUS if DEFAULT_CORPUS.is_dir() else None


def timed(cmd: list) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system, children included) of a command."""
    cpu_before, start = _children_cpu(), time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"ERROR: {' '.join(map(str, cmd))} failed:\n{result.stderr[-3000:]}")
    return wall, _children_cpu() - cpu_before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    args = get_args()
    corpus = corpus_dir(args.corpus_dir)
    if corpus is None:
        print(f"No corpus to time: {DEFAULT_CORPUS} is absent; give --corpus-dir or set SER_CASIA_DIR.")
        return
    wavs = sorted(corpus.rglob("*.wav"))
    if not wavs:
        sys.exit(f"ERROR: no .wav files under {corpus}")
    if 0 < args.num_files < len(wavs):
        wavs = [wavs[i * len(wavs) // args.num_files] for i in range(args.num_files)]
    duration = sum(sf.info(w).duration for w in wavs)
    for w in wavs:  # into the page cache, so that the first command does not pay for disk reads
        w.read_bytes()
    options = build_extractor("lld93").config.options

    with tempfile.TemporaryDirectory(prefix="bench_features.") as tmp:
        tmp = Path(tmp)
        (tmp / "data").mkdir()
        utts = {"-".join(w.relative_to(corpus).with_suffix("").parts): w for w in wavs}
        (tmp / "data" / "wav.scp").write_text("".join(f"{u} {utts[u]}\n" for u in sorted(utts)))
        (tmp / "files.txt").write_text("".join(f"{w}\n" for w in wavs))
        commands = {
            "direct": [sys.executable, "-c", DIRECT, LLD93_CONF, json.dumps(options), tmp / "files.txt"],
            **{f"nj{nj}": ["steps/make_feats.sh", "--nj", str(nj), "--cmd", args.cmd,
                           "--feat", "lld93", tmp / "data", tmp / f"feats_nj{nj}"] for nj in (1, 2)}}
        load_before = os.getloadavg()[0]
        times = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, cmd in commands.items():
                shutil.rmtree(tmp / f"feats_{name}", ignore_errors=True)  # else make_feats.sh skips
                times[name].append(timed(cmd))
        for nj in (1, 2):
            num_feats = len((tmp / f"feats_nj{nj}" / "feats.scp").read_text().splitlines())
            if num_feats != len(wavs):
                sys.exit(f"ERROR: make_feats.sh --nj {nj} wrote {num_feats} of {len(wavs)} utterances")

    (direct, direct_cpu), (nj1, nj1_cpu), (nj2, nj2_cpu) = (
        (statistics.median(w for w, _ in times[name]), statistics.median(c for _, c in times[name]))
        for name in commands)
    print(f"corpus: {corpus} ({len(wavs)} files, {duration:.1f} s of audio); medians of "
          f"{args.repeats} run(s); {os.cpu_count()} CPUs, load average "
          f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    for name, wall, cpu in [("openSMILE direct, 1 process", direct, direct_cpu),
                            ("make_feats.sh --nj 1", nj1, nj1_cpu),
                            ("make_feats.sh --nj 2", nj2, nj2_cpu)]:
        print(f"{name + ':':29s} {wall:7.2f} s wall (rtf {wall / duration:.4f}), {cpu:7.2f} s CPU")
    print(f"speed-up nj=1 -> nj=2: {nj1 / nj2:.2f}x (target >= 1.8)")
    print(f"overhead over openSMILE: {nj1 / direct - 1:.1%} wall, {nj1_cpu / direct_cpu - 1:.1%} CPU "
          "(target <= 10%)")
    print(f"rtf_nj1={nj1 / duration:.4f} rtf_nj2={nj2 / duration:.4f} overhead={nj1 / direct - 1:.3f}")

if __name__ == "__main__":
    main()
