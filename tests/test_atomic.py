"""ser/atomic.py: a file or directory is replaced whole or not at all."""
from __future__ import annotations

import pytest

from ser.atomic import atomic_path, atomic_write_text


def test_a_file_is_replaced_whole_and_a_failed_write_leaves_the_old_one(tmp_path):
    path = tmp_path / "results.json"
    atomic_write_text(path, "old\n")
    assert path.read_text() == "old\n"
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
    (tmp_path / "results.json.tmp").write_text("left by a killed job")
    atomic_write_text(path, "ü new\n", encoding="utf-8")
    assert path.read_text(encoding="utf-8") == "ü new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_a_directory_is_replaced_whole_and_a_failed_write_leaves_the_old_one(tmp_path):
    out = tmp_path / "folds"
    for version in ("1", "2"):
        with atomic_path(out) as tmp:
            (tmp / "fold1").mkdir(parents=True)
            (tmp / "fold1" / "train").write_text(version)
            assert not (out / "fold1" / "train").is_file() or (out / "fold1" / "train").read_text() != version
        assert (out / "fold1" / "train").read_text() == version
    (tmp_path / "folds.tmp" / "stale").mkdir(parents=True)  # left by a killed job
    with pytest.raises(KeyboardInterrupt), atomic_path(out) as tmp:
        assert not tmp.exists()
        tmp.mkdir()
        (tmp / "fold1").mkdir()
        raise KeyboardInterrupt
    assert (out / "fold1" / "train").read_text() == "2" and sorted(p.name for p in tmp_path.iterdir()) == ["folds"]
