"""Merges the JOB splits of compute_feats into ``<feat_dir>/feats.scp`` and writes what
the later stages need beside it: ``failed.txt`` (utt, path, reason), ``utt2num_frames``,
``feat_dim``, ``frame_shift``, ``feat_names.txt`` and ``feat_conf.yaml`` (the
options the features were made with).

Fails, naming the failed list, when more than ``--max-fail-share`` of the files failed."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import kaldiio
import yaml

from ser.bin import HelpFormatter, run_tool
from ser.datadir import read_table, write_table
from ser.errors import SerError
from ser.external_feats import DEFAULT_MAX_FAIL_SHARE


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--wav-scp", required=True, type=Path, help="the data dir's wav.scp")
    p.add_argument("--feat-dir", required=True, type=Path, help="holds split/raw.<n>.{ark,scp}; gets feats.scp")
    p.add_argument("--nj", required=True, type=int, help="the number of JOB splits")
    p.add_argument("--max-fail-share", type=float, default=DEFAULT_MAX_FAIL_SHARE,
                   help="fail when more than this share of the files have no features")
    return p


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    split = args.feat_dir / "split"
    feats, failed, num_frames, infos = {}, {}, {}, []
    for job in range(1, args.nj + 1):
        scp = split / f"raw.{job}.scp"
        if not scp.is_file():
            raise SerError(f"{scp}: missing; feature job {job} did not finish")
        feats.update(read_table(scp))
        num_frames.update(read_table(split / f"raw.{job}.num_frames", int))
        infos.append(json.loads((split / f"raw.{job}.info.json").read_text()))
        for line in (split / f"raw.{job}.failed").read_text().splitlines():
            utt, path, reason = line.split("\t")
            failed[utt] = (path, reason)
    info = infos[0]
    if any(i != info for i in infos):
        raise SerError(f"{split}: the feature jobs ran with different settings")
    utts = read_table(args.wav_scp)
    missing = set(utts) - set(feats) - set(failed)
    if missing:
        raise SerError(f"{args.feat_dir}: no features and no failure for {len(missing)} "
                       f"utterance(s) of {args.wav_scp}, e.g. {sorted(missing)[0]}")
    failed_txt = args.feat_dir / "failed.txt"
    failed_txt.write_text("".join(f"{u}\t{p}\t{r}\n" for u, (p, r) in sorted(failed.items())))
    share = len(failed) / max(len(utts), 1)
    if share > args.max_fail_share:
        raise SerError(f"{len(failed)} of {len(utts)} files failed ({share:.1%} > "
                       f"--max-fail-share {args.max_fail_share:.1%}); see {failed_txt}")
    if failed:
        logging.warning("%d file(s) failed and are excluded; see %s", len(failed), failed_txt)
    if not feats:
        raise SerError(f"{args.feat_dir}: no utterance has features")
    dim = kaldiio.load_mat(next(iter(feats.values()))).shape[1]
    if dim != info["dim"] or len(info["names"]) != dim:
        raise SerError(f"{args.feat_dir}: features have dimension {dim} but {len(info['names'])} names")
    write_table(args.feat_dir / "utt2num_frames", num_frames)
    (args.feat_dir / "feat_dim").write_text(f"{dim}\n")
    (args.feat_dir / "frame_shift").write_text(f"{info['frame_shift']}\n")
    (args.feat_dir / "feat_names.txt").write_text("".join(f"{n}\n" for n in info["names"]))
    (args.feat_dir / "feat_conf.yaml").write_text(yaml.safe_dump({"feat": info["feat"], **info["options"]}))
    write_table(args.feat_dir / "feats.scp", feats)  # written last: the stage's product
    logging.info("%s: %d utterances of dimension %d", args.feat_dir / "feats.scp", len(feats), dim)


if __name__ == "__main__":
    run_tool(main)
