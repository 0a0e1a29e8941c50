"""Writing a file or directory whole or not at all: it is written under a temporary name
beside its place, ``<name>.tmp``, and renamed into place when complete, so that a killed
job leaves the old version or the new one, never part of one (a stage takes what it
finds as done). There is no fsync: this is against killed jobs, not power cuts."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yields ``<path>.tmp`` to write a file or a directory to. When the block ends, it
    replaces ``path`` (a directory there is removed first); when the block raises, it is
    removed and ``path`` stays as it was."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    _remove(tmp)  # left by a killed job
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if tmp.is_dir() and path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    os.replace(tmp, path)


def atomic_write_text(path: Path | str, text: str, **open_options) -> None:
    """Writes ``text`` to ``path`` through :func:`atomic_path`; ``open_options`` as for
    Path.write_text (encoding, errors)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, **open_options)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
