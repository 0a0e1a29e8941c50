"""Features the recipe did not compute: a Kaldi ``feats.scp`` (``--feat external``), or
the feature dirs of several corpora combined for a multi-corpus data dir. Both become a
feature dir like the feature stage's own (``feats.scp``, ``failed.txt``,
``utt2num_frames``, ``feat_dim``, ``frame_shift``, ``feat_names.txt``,
``feat_conf.yaml``), checked first:

- coverage: every utterance of the data dir should have an entry; the missing ones are
  listed in ``failed.txt`` and left out, and the stage fails when more than
  ``max_fail_share`` of them are missing, as feature extraction does;
- the dimension must be the same for every utterance;
- every value must be finite;
- each entry must be readable, a matrix (frames x dim, one row for utterance-level
  features) or a vector (one utterance-level row).

Every error names the scp file and the utterance. Entries for utterances that are not
in the data dir are ignored (and counted in the log).

The frame shift of external frame-level features is given (``frame_shift``) or
estimated as the median of duration / frames over the utterances, rounded to 1 ms;
utterance-level features (one row everywhere) record the frame shift 0.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import kaldiio
import numpy as np
import yaml

from ser.datadir import read_data_dir, read_table, write_table
from ser.errors import SerError

# Beyond this share of utterances without features a feature dir is refused, whether its
# features were imported (here) or extracted (ser/bin/merge_feats.py).
DEFAULT_MAX_FAIL_SHARE = 0.05


def absolute_entry(entry: str, base: Path) -> str:
    """An scp value with a relative ark path made absolute (from ``base``, the directory
    the scp's paths are relative to, the current one in Kaldi); pipes stay as they are."""
    if entry.rstrip().endswith("|"):
        return entry
    path, sep, offset = entry.rpartition(":")
    if not sep or not offset.isdigit():
        path, sep, offset = entry, "", ""
    if not os.path.isabs(path):
        path = str((base / path).absolute())
    return f"{path}{sep}{offset}"


def read_scps(scps: Sequence[Path | str], base: Path | None = None) -> tuple[dict[str, str], dict[str, Path]]:
    """utt -> absolute entry, and utt -> the scp it came from; an utterance in two
    scps is an error naming both."""
    entries, origin = {}, {}
    for scp in map(Path, scps):
        if not scp.is_file():
            raise SerError(f"{scp}: feats.scp not found")
        for utt, entry in read_table(scp).items():
            if utt in origin:
                raise SerError(f"{scp}: utterance {utt} is also in {origin[utt]}")
            entries[utt] = absolute_entry(entry, base or Path.cwd())
            origin[utt] = scp
    if not entries:
        raise SerError(f"{', '.join(map(str, scps))}: no entries")
    return entries, origin


def load_checked(utt: str, entry: str, scp: Path) -> np.ndarray:
    """The utterance's features as (frames, dim) float32, or SerError naming scp and utt."""
    try:
        feats = np.asarray(kaldiio.load_mat(entry))
    except Exception as err:  # any reader error: a missing ark, a bad offset, not Kaldi
        raise SerError(f"{scp}: utterance {utt}: cannot read {entry}: {err}".replace("\n", " ")) from None
    if feats.ndim == 1:
        feats = feats[None, :]
    if feats.ndim != 2 or feats.shape[0] == 0 or feats.shape[1] == 0:
        raise SerError(f"{scp}: utterance {utt}: expected a matrix (frames x dim) or a vector, "
                       f"got shape {feats.shape}")
    bad = ~np.isfinite(feats)
    if bad.any():
        frame, dim = (int(i[0]) for i in np.nonzero(bad))
        raise SerError(f"{scp}: utterance {utt}: {int(bad.sum())} NaN or infinite value(s), the "
                       f"first at frame {frame}, dimension {dim}; features must be finite")
    return feats.astype(np.float32, copy=False)


def check_features(utts: Sequence[str], entries: dict[str, str], origin: dict[str, Path]) -> dict:
    """Reads and checks the features of ``utts`` that have an entry: returns
    ``{"dim", "num_frames": {utt: frames}}``."""
    dim, first, num_frames = None, None, {}
    for utt in utts:
        if utt not in entries:
            continue
        feats = load_checked(utt, entries[utt], origin[utt])
        if dim is None:
            dim, first = feats.shape[1], utt
        elif feats.shape[1] != dim:
            raise SerError(f"{origin[utt]}: utterance {utt} has dimension {feats.shape[1]}, but "
                           f"{first} ({origin[first]}) has {dim}; every utterance must have the "
                           "same dimension")
        num_frames[utt] = feats.shape[0]
    return {"dim": dim, "num_frames": num_frames}


def estimate_frame_shift(num_frames: dict[str, int], utt2dur: dict[str, float]) -> float:
    """0 for utterance-level features (one row each); else the median duration / frames,
    rounded to 1 ms."""
    if all(n == 1 for n in num_frames.values()):
        return 0.0
    ratios = [utt2dur[u] / n for u, n in num_frames.items() if n > 1 and u in utt2dur]
    return round(float(np.median(ratios)), 3) if ratios else 0.0


def import_features(scps: Sequence[Path | str], data_dir: Path | str, feat_dir: Path | str,
                    max_fail_share: float = DEFAULT_MAX_FAIL_SHARE, frame_shift: float | None = None,
                    feat_conf: dict | None = None, names: list[str] | None = None,
                    failed_reasons: dict[str, tuple[str, str]] | None = None,
                    base: Path | None = None) -> dict:
    """Checks the features of ``scps`` against the data dir and writes ``feat_dir``
    (see the module docstring); ``feats.scp`` is written last. ``feat_conf`` and
    ``names`` describe the features (default: external, ``external_<i>``);
    ``failed_reasons`` gives the reason of utterances known to be missing (utt -> (path,
    reason)). Returns what was written: dim, frame_shift, level, counts."""
    data = read_data_dir(data_dir)
    feat_dir = Path(feat_dir)
    feat_dir.mkdir(parents=True, exist_ok=True)
    entries, origin = read_scps(scps, base)
    scp_names = " ".join(map(str, scps))
    utts = data.utts
    extra = len(set(entries) - set(utts))
    if extra:
        logging.info("%s: %d entr(ies) for utterances not in %s, ignored", scp_names, extra, data.path)
    checked = check_features(utts, entries, origin)
    missing = [u for u in utts if u not in entries]
    failed = {u: (failed_reasons or {}).get(u, (scp_names, f"no entry in {scp_names}")) for u in missing}
    failed_txt = feat_dir / "failed.txt"
    failed_txt.write_text("".join(f"{u}\t{p}\t{r}\n" for u, (p, r) in sorted(failed.items())))
    share = len(missing) / max(len(utts), 1)
    if share > max_fail_share:
        raise SerError(f"{scp_names}: {len(missing)} of the {len(utts)} utterances of {data.path} "
                       f"have no features ({share:.1%} > max fail share {max_fail_share:.1%}), "
                       f"e.g. {', '.join(missing[:3])}; all are listed in {failed_txt}")
    if missing:
        logging.warning("%s: %d utterance(s) of %s have no features and are left out, e.g. %s; "
                        "see %s", scp_names, len(missing), data.path, missing[0], failed_txt)
    if checked["dim"] is None:
        raise SerError(f"{scp_names}: no utterance of {data.path} has features")
    dim, num_frames = checked["dim"], checked["num_frames"]
    level = "utterance" if all(n == 1 for n in num_frames.values()) else "frame"
    if frame_shift is None:
        frame_shift = estimate_frame_shift(num_frames, data.utt2dur)
    names = names or [f"external_{i}" for i in range(dim)]
    if len(names) != dim:
        raise SerError(f"{feat_dir}: {len(names)} feature names for dimension {dim}")
    conf = feat_conf or {"feat": "external", "feats_scp": [str(Path(s).absolute()) for s in scps]}
    if conf.get("feat") == "external":
        conf = {**conf, "level": level}
    write_table(feat_dir / "utt2num_frames", num_frames)
    (feat_dir / "feat_dim").write_text(f"{dim}\n")
    (feat_dir / "frame_shift").write_text(f"{frame_shift}\n")
    (feat_dir / "feat_names.txt").write_text("".join(f"{n}\n" for n in names))
    (feat_dir / "feat_conf.yaml").write_text(yaml.safe_dump(conf))
    write_table(feat_dir / "feats.scp", {u: entries[u] for u in num_frames})  # last: the product
    logging.info("%s: %d utterances of dimension %d (%s-level, frame shift %s s), %d missing",
                 feat_dir / "feats.scp", len(num_frames), dim, level, frame_shift, len(missing))
    return {"dim": dim, "frame_shift": frame_shift, "level": level, "num_utts": len(num_frames),
            "num_missing": len(missing)}


def combine_feat_dirs(feat_dirs: Sequence[Path | str], data_dir: Path | str, feat_dir: Path | str,
                      max_fail_share: float = DEFAULT_MAX_FAIL_SHARE) -> dict:
    """The feature dirs of the member corpora of a multi-corpus data dir as one: they
    must have been made with the same settings (feat_conf.yaml, dimension, frame shift,
    names); their failed utterances keep their reasons."""
    feat_dirs = [Path(d) for d in feat_dirs]
    described = []
    for d in feat_dirs:
        for name in ("feats.scp", "feat_conf.yaml", "feat_dim", "frame_shift", "feat_names.txt"):
            if not (d / name).is_file():
                raise SerError(f"{d}: missing {name}; run the feature stage for it first")
        conf = yaml.safe_load((d / "feat_conf.yaml").read_text())
        conf.pop("feats_scp", None)  # external members come from their own files
        described.append((yaml.safe_dump(conf), (d / "feat_dim").read_text(),
                          (d / "frame_shift").read_text(), (d / "feat_names.txt").read_text()))
    for d, description in zip(feat_dirs[1:], described[1:]):
        if description != described[0]:
            raise SerError(f"{d} and {feat_dirs[0]}: made with different feature settings; "
                           "a multi-corpus feature dir needs one kind of features")
    failed = {}
    for d in feat_dirs:
        if (d / "failed.txt").is_file():
            for line in (d / "failed.txt").read_text().splitlines():
                utt, path, reason = line.split("\t")
                failed[utt] = (path, reason)
    conf = yaml.safe_load(described[0][0])
    if conf.get("feat") == "external":
        conf["feats_scp"] = [s for d in feat_dirs
                             for s in yaml.safe_load((d / "feat_conf.yaml").read_text()).get("feats_scp", [])]
    return import_features([d / "feats.scp" for d in feat_dirs], data_dir, feat_dir, max_fail_share,
                           frame_shift=float(described[0][2]), feat_conf=conf,
                           names=described[0][3].splitlines(), failed_reasons=failed)
