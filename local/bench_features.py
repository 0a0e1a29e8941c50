#!/usr/bin/env python3
"""Times feature extraction on a corpus: the feature stage users run,
``steps/make_feats.sh --feat NAME`` with 1 and 2 jobs, against the feature type's
extractor called directly (``ser.features.build_extractor`` + ``extract_features`` over
the same files, with the same options, in one process; for lld93 that is openSMILE with
conf/feats/lld93.conf). Each is timed as a whole command, start-up included, in
wall-clock and CPU time (the latter is steadier on a machine busy with other jobs).
With --repeats R the three commands run R times interleaved, so that load from other
jobs hits them alike, and the medians count.

The corpus is prepared as the recipe prepares it (steps/prepare_data.sh, untimed) into
a temporary data dir (under $TMPDIR), removed at the end; --num-files takes a subset of
it, recorded as derived from that data dir.

real-time factor (rtf) = processing time / audio duration;
overhead = make_feats.sh --nj 1 time / direct time - 1;
mb_per_hour = MB (10^6 bytes) of feature archives make_feats.sh stored per hour of audio.
The last line is
  rtf_nj1=<rtf> rtf_nj2=<rtf> overhead=<fraction> mb_per_hour=<MB> feat=<NAME>
--quick times a few files once, to check that the script works.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ser.audio import is_pipe  # noqa: E402
from ser.bin import HelpFormatter, run_tool  # noqa: E402
from ser.recipe import check_settings  # noqa: E402
from ser.datadir import read_data_dir, read_table, validate_data_dir, write_table  # noqa: E402
from ser.errors import SerError  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "casia"
# The extractor alone, as a user would call it on a list of files; files it cannot use
# are passed over, as compute_feats passes them over.
DIRECT = """import sys
from ser.audio import load_audio
from ser.config import parse_key_values
from ser.datadir import read_table
from ser.errors import AudioError
from ser.features import build_extractor, extract_features
extractor = build_extractor(sys.argv[1], **parse_key_values(sys.argv[2]))
for entry in read_table(sys.argv[3]).values():
    try:
        extract_features(extractor, load_audio(entry), entry)
    except AudioError:
        pass
"""
QUICK = dict(num_files=6, repeats=1)



def get_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--corpus", default="casia", help="the corpus's name in ser/corpora")
    parser.add_argument("--corpus-dir", type=Path,
                        help=f"the corpus as distributed (default for casia: $SER_CASIA_DIR, else {DEFAULT_CORPUS})")
    parser.add_argument("--feat", default="lld93", help="feature type, see ser/features.py")
    parser.add_argument("--feat-opts", default="", help="overrides of conf/feats/<feat>.yaml, 'key=value ...'")
    parser.add_argument("--num-files", type=int, default=0,
                        help="time this many files, spread over the sorted utterances (0: all)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each command (the medians count)")
    parser.add_argument("--cmd", default="utils/run.pl", help="make_feats.sh's job runner")
    parser.add_argument("--quick", action="store_true",
                        help="check that the script works: " + " ".join(
                            f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()))
    if parser.parse_known_args(argv)[0].quick:
        parser.set_defaults(**QUICK)
    return parser.parse_args(argv)


def corpus_dir(corpus: str, given: Path | None) -> Path:
    if given is None and corpus == "casia":
        given = Path(os.environ["SER_CASIA_DIR"]) if os.environ.get("SER_CASIA_DIR") else DEFAULT_CORPUS
    if given is None:
        raise SerError(f"give --corpus-dir for {corpus}")
    if not given.is_dir():
        raise SerError(f"corpus directory {given} does not exist; give --corpus-dir"
                       + (" or set SER_CASIA_DIR" if corpus == "casia" else ""))
    return given.absolute()


def run(cmd: list, what: str) -> None:
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SerError(f"{what} failed ({' '.join(map(str, cmd))}):\n{result.stderr[-3000:]}")


def subset_data_dir(src: Path, dest: Path, num_files: int) -> None:
    """``num_files`` utterances of a prepared data dir, spread over its sorted list, as a
    data dir of their own whose record (utils/lib.sh) names the one they come from."""
    data = read_data_dir(src)
    keep = {data.utts[i * len(data.utts) // num_files] for i in range(num_files)}
    speakers = {data.utt2spk[u] for u in keep}
    dest.mkdir()
    for name, table, by in (("wav.scp", data.wav, keep), ("utt2spk", data.utt2spk, keep),
                            ("utt2emo", data.utt2emo, keep), ("utt2dur", data.utt2dur, keep),
                            ("utt2session", data.utt2session, keep), ("utt2corpus", data.utt2corpus, keep),
                            ("spk2gender", data.spk2gender, speakers), ("spk2name", data.spk2name, speakers)):
        if table:
            write_table(dest / name, {k: v for k, v in table.items() if k in by})
    write_table(dest / "spk2utt", {s: " ".join(sorted(u for u in keep if data.utt2spk[u] == s)) for s in speakers})
    shutil.copy(src / "emotions.txt", dest / "emotions.txt")
    validate_data_dir(dest, check_audio=False)
    run(["bash", "-c", '. utils/lib.sh && mark_done "$1" "stage=bench_features_subset\nnum_files=$3\n'
         'data=$(record_id "$2")"', "_", dest, src, str(num_files)], "recording the subset")


def timed(cmd: list) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system, children included) of a command."""
    cpu_before, start = _children_cpu(), time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SerError(f"{' '.join(map(str, cmd))} failed:\n{result.stderr[-3000:]}")
    return wall, _children_cpu() - cpu_before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def stored_bytes(feat_dir: Path) -> int:
    """Bytes of the archives that a feature dir's feats.scp points into."""
    arks = {entry.rsplit(":", 1)[0] for entry in read_table(feat_dir / "feats.scp").values()}
    return sum(Path(ark).stat().st_size for ark in arks)


def main(argv=None) -> None:
    args = get_args(argv)
    if args.feat == "external":
        raise SerError("--feat external: features computed elsewhere have no extractor to time")
    check_settings(feat=args.feat)  # before the corpus is prepared
    corpus = corpus_dir(args.corpus, args.corpus_dir)
    with tempfile.TemporaryDirectory(prefix="bench_features.") as tmp:
        tmp = Path(tmp)
        data = tmp / "data" / args.corpus
        run(["steps/prepare_data.sh", args.corpus, corpus, data], "steps/prepare_data.sh")
        if 0 < args.num_files < len(read_table(data / "wav.scp")):
            subset = data.with_name(f"{args.corpus}_{args.num_files}")
            subset_data_dir(data, subset, args.num_files)
            data = subset
        utt2dur = read_table(data / "utt2dur", float)
        duration = sum(utt2dur.values())
        for entry in read_table(data / "wav.scp").values():
            if not is_pipe(entry):  # into the page cache, so that the first command does not pay for disk reads
                Path(entry).read_bytes()
        commands = {
            "direct": [sys.executable, "-c", DIRECT, args.feat, args.feat_opts, data / "wav.scp"],
            **{f"nj{nj}": ["steps/make_feats.sh", "--nj", str(nj), "--cmd", args.cmd, "--feat", args.feat,
                           "--feat-opts", args.feat_opts, data, tmp / f"feats_nj{nj}"] for nj in (1, 2)}}
        load_before = os.getloadavg()[0]
        times = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, cmd in commands.items():
                shutil.rmtree(tmp / f"feats_{name}", ignore_errors=True)  # else make_feats.sh skips
                times[name].append(timed(cmd))
        for nj in (1, 2):
            num_feats = len(read_table(tmp / f"feats_nj{nj}" / "feats.scp"))
            if num_feats != len(utt2dur):
                raise SerError(f"make_feats.sh --nj {nj} wrote {num_feats} of {len(utt2dur)} utterances")
        stored = stored_bytes(tmp / "feats_nj1")

    (direct, direct_cpu), (nj1, nj1_cpu), (nj2, nj2_cpu) = (
        (statistics.median(w for w, _ in times[name]), statistics.median(c for _, c in times[name]))
        for name in commands)
    mb_per_hour = stored / 1e6 / (duration / 3600)
    print(f"corpus: {args.corpus} {corpus} ({len(utt2dur)} files, {duration:.1f} s of audio); feat {args.feat}"
          f"{' (' + args.feat_opts + ')' if args.feat_opts else ''}; medians of {args.repeats} run(s); "
          f"{os.cpu_count()} CPUs, load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    for name, wall, cpu in [(f"{args.feat} extractor direct, 1 process", direct, direct_cpu),
                            ("make_feats.sh --nj 1", nj1, nj1_cpu),
                            ("make_feats.sh --nj 2", nj2, nj2_cpu)]:
        print(f"{name + ':':36s} {wall:7.2f} s wall (rtf {wall / duration:.4f}), {cpu:7.2f} s CPU")
    print(f"stored: {stored / 1e6:.1f} MB of feature archives, {mb_per_hour:.1f} MB per hour of audio")
    print(f"speed-up nj=1 -> nj=2: {nj1 / nj2:.2f}x (target >= 1.8 on an idle 2-core machine)")
    print(f"overhead over the extractor direct: {nj1 / direct - 1:.1%} wall, {nj1_cpu / direct_cpu - 1:.1%} CPU "
          "(target <= 10%)")
    print(f"rtf_nj1={nj1 / duration:.4f} rtf_nj2={nj2 / duration:.4f} overhead={nj1 / direct - 1:.3f} "
          f"mb_per_hour={mb_per_hour:.1f} feat={args.feat}")


if __name__ == "__main__":
    run_tool(main)
