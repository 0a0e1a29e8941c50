"""External features (run.sh --feat external --feats-scp, ser/external_feats.py): a
feats.scp written here with kaldiio, frame-level and utterance-level, and every bad case,
each error naming the file and the utterance."""
from __future__ import annotations

from pathlib import Path

import kaldiio
import numpy as np
import pytest
import yaml

from ser.bin import import_feats, prepare_data
from ser.datadir import read_data_dir, read_table
from ser.errors import SerError
from ser.external_feats import combine_feat_dirs, import_features
from tests.fixtures_corpora import make_casia


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("external")
    prepare_data.main(["--corpus", "casia", "--corpus-dir", str(make_casia(root)), "--data-dir", str(root / "data")])
    return root / "data"


def write_scp(directory: Path, mats: dict[str, np.ndarray], name: str = "feats") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    scp = directory / f"{name}.scp"
    with kaldiio.WriteHelper(f"ark,scp:{directory / name}.ark,{scp}") as writer:
        for utt, mat in mats.items():
            writer(utt, mat)
    return scp


def frames(data_dir: Path, dim: int = 5, num: int = 30) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {u: rng.normal(size=(num, dim)).astype(np.float32) for u in read_data_dir(data_dir).utts}


def test_frame_level_features_become_a_feature_dir(data_dir, tmp_path):
    mats = frames(data_dir)
    scp = write_scp(tmp_path / "ext", {**mats, "other-utt": mats[next(iter(mats))]})  # extra entry: ignored
    info = import_features([scp], data_dir, tmp_path / "feats")
    feat_dir = tmp_path / "feats"
    assert info["level"] == "frame" and info["dim"] == 5
    assert (feat_dir / "feat_dim").read_text() == "5\n"
    assert float((feat_dir / "frame_shift").read_text()) == pytest.approx(0.01)  # 0.3 s / 30 frames
    assert read_table(feat_dir / "utt2num_frames", int) == {u: 30 for u in mats}
    assert sorted(read_table(feat_dir / "feats.scp")) == sorted(mats)
    conf = yaml.safe_load((feat_dir / "feat_conf.yaml").read_text())
    assert conf == {"feat": "external", "feats_scp": [str(scp)], "level": "frame"}
    utt = next(iter(mats))
    np.testing.assert_array_equal(kaldiio.load_mat(read_table(feat_dir / "feats.scp")[utt]), mats[utt])
    assert (feat_dir / "failed.txt").read_text() == ""


def test_utterance_level_rows_and_vectors(data_dir, tmp_path):
    utts = read_data_dir(data_dir).utts
    mats = {u: (np.arange(4, dtype=np.float32)[None, :] + i if i % 2 else np.arange(4, dtype=np.float32) + i)
            for i, u in enumerate(utts)}  # 1 x 4 matrices and 4-vectors
    info = import_features([write_scp(tmp_path / "ext", mats)], data_dir, tmp_path / "feats", frame_shift=None)
    assert info == {"dim": 4, "frame_shift": 0.0, "level": "utterance", "num_utts": 8, "num_missing": 0}
    assert set(read_table(tmp_path / "feats" / "utt2num_frames", int).values()) == {1}


def test_missing_utterances_are_listed_and_excluded_under_the_failure_share(data_dir, tmp_path):
    mats = frames(data_dir)
    missing = sorted(mats)[3]
    del mats[missing]
    scp = write_scp(tmp_path / "ext", mats)
    with pytest.raises(SerError) as err:  # 1 of 8 is over the default 5 %
        import_features([scp], data_dir, tmp_path / "feats")
    assert str(scp) in str(err.value) and missing in str(err.value)
    assert missing in (tmp_path / "feats" / "failed.txt").read_text()
    assert not (tmp_path / "feats" / "feats.scp").exists()
    import_feats.main(["--data-dir", str(data_dir), "--feat-dir", str(tmp_path / "ok"), "--feats-scp", str(scp),
                       "--max-fail-share", "0.2", "--frame-shift", "0.02"])
    failed = (tmp_path / "ok" / "failed.txt").read_text().splitlines()
    assert len(failed) == 1 and failed[0].startswith(f"{missing}\t") and f"no entry in {scp}" in failed[0]
    assert missing not in read_table(tmp_path / "ok" / "feats.scp")
    assert (tmp_path / "ok" / "frame_shift").read_text() == "0.02\n"


@pytest.mark.parametrize("case", ["dim", "nan", "inf", "empty"])
def test_bad_features_name_the_file_and_the_utterance(data_dir, tmp_path, case):
    mats = frames(data_dir)
    bad = sorted(mats)[5]
    if case == "dim":
        mats[bad] = np.zeros((30, 6), dtype=np.float32)
    elif case == "empty":
        mats[bad] = np.zeros((0, 5), dtype=np.float32)
    else:
        mats[bad] = mats[bad].copy()
        mats[bad][7, 2] = np.nan if case == "nan" else np.inf
    scp = write_scp(tmp_path / "ext", mats)
    with pytest.raises(SerError) as err:
        import_features([scp], data_dir, tmp_path / "feats")
    message = str(err.value)
    assert str(scp) in message and f"utterance {bad}" in message
    expected = {"dim": "has dimension 6, but", "nan": "NaN or infinite value(s), the first at frame 7, dimension 2",
                "inf": "NaN or infinite", "empty": "expected a matrix"}[case]
    assert expected in message


def test_unreadable_entries_and_duplicates_name_the_file_and_the_utterance(data_dir, tmp_path):
    mats = frames(data_dir)
    scp = write_scp(tmp_path / "ext", mats)
    utt = sorted(mats)[0]
    lines = scp.read_text().splitlines()
    lines[0] = f"{utt} {tmp_path / 'gone.ark'}:10"
    broken = tmp_path / "broken.scp"
    broken.write_text("\n".join(lines) + "\n")
    with pytest.raises(SerError, match=f"{broken}: utterance {utt}: cannot read"):
        import_features([broken], data_dir, tmp_path / "feats")
    with pytest.raises(SerError, match=f"utterance {utt} is also in {scp}"):
        import_features([scp, scp], data_dir, tmp_path / "feats")
    with pytest.raises(SerError, match="feats.scp not found"):
        import_features([tmp_path / "none.scp"], data_dir, tmp_path / "feats")


def test_relative_ark_paths_are_taken_from_the_current_directory(data_dir, tmp_path, monkeypatch):
    mats = frames(data_dir)
    write_scp(tmp_path / "ext", mats)
    scp = tmp_path / "relative.scp"
    scp.write_text((tmp_path / "ext" / "feats.scp").read_text().replace(str(tmp_path) + "/", ""))
    monkeypatch.chdir(tmp_path)
    import_features([scp], data_dir, tmp_path / "feats")
    entry = next(iter(read_table(tmp_path / "feats" / "feats.scp").values()))
    assert entry.startswith(str(tmp_path / "ext" / "feats.ark"))


def test_combining_feature_dirs_needs_one_kind_of_features(data_dir, tmp_path):
    mats = frames(data_dir)
    utts = sorted(mats)
    for name, part, dim in (("a", utts[:4], 5), ("b", utts[4:], 5), ("c", utts[4:], 5)):
        import_features([write_scp(tmp_path / f"src_{name}", {u: mats[u] for u in part})], data_dir,
                        tmp_path / name, max_fail_share=1.0)
    (tmp_path / "c" / "frame_shift").write_text("0.02\n")
    with pytest.raises(SerError, match="different feature settings"):
        combine_feat_dirs([tmp_path / "a", tmp_path / "c"], data_dir, tmp_path / "ac")
    info = combine_feat_dirs([tmp_path / "a", tmp_path / "b"], data_dir, tmp_path / "ab")
    assert info["num_utts"] == 8 and info["num_missing"] == 0
