"""Records of what made a stage's output, the Python side of ``utils/lib.sh``.

A complete output dir holds ``.done``; its record id is a short SHA-1 of that
file, the same as ``record_id`` in ``utils/lib.sh``. A training run's ``.done``
is its record as JSON: the resolved model and training settings, the record ids
of the data, feature, fold and normalisation dirs it read, and a hash of its
fold's utterance lists, which scoring checks against the lists it scores with.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ser.atomic import atomic_write_text
from ser.errors import SerError


def record_id(path: Path | str | None) -> str:
    """Short hash of ``<path>/.done``; ``none`` when the dir is not complete."""
    if path is None:
        return "none"
    done = Path(path) / ".done"
    return hashlib.sha1(done.read_bytes()).hexdigest()[:12] if done.is_file() else "none"


def corpus_digest(corpus_dir: Path | str, cache: Path | str | None = None) -> str:
    """Short hash of a corpus: every file's relative path, size and contents (SHA-1), so a
    copy of the same files with new modification times (a fresh checkout, ``cp`` without
    ``-p``) is the same corpus, and an edit that keeps a file's size is not. ``cache`` (a
    JSON file, rewritten here) holds each file's size, modification time and SHA-1 from
    the last call; only files whose size or time differ are read again. ``absent`` when
    ``corpus_dir`` is not a directory."""
    root = Path(corpus_dir)
    if not root.is_dir():
        return "absent"
    cache_path = Path(cache) if cache else None
    try:
        known = json.loads(cache_path.read_text()) if cache_path and cache_path.is_file() else {}
    except (OSError, ValueError):  # a damaged cache only costs a re-read
        known = {}
    files = [Path(top) / name for top, _, names in os.walk(root, followlinks=True) for name in names]
    entries, digest = {}, hashlib.sha1()
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        if not path.is_file():  # a broken link, a socket
            continue
        rel, stat = path.relative_to(root).as_posix(), path.stat()
        then = known.get(rel)
        if then and then[0] == stat.st_size and then[1] == stat.st_mtime_ns:
            sha = then[2]
        else:
            with open(path, "rb") as f:
                sha = hashlib.file_digest(f, "sha1").hexdigest()
        entries[rel] = [stat.st_size, stat.st_mtime_ns, sha]
        digest.update(f"{rel}\t{stat.st_size}\t{sha}\n".encode())
    if cache_path is not None and entries != known:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache_path, json.dumps(entries))
    return digest.hexdigest()[:12]


def fold_lists_hash(folds_dir: Path | str, fold: str) -> str:
    """Hash of a fold's train, valid and test lists (utterance ids in file order)."""
    digest = hashlib.sha1()
    for part in ("train", "valid", "test"):
        path = Path(folds_dir) / fold / part
        if not path.is_file():
            raise SerError(f"{path}: missing; run the folds stage")
        digest.update(part.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def dump_record(record: dict) -> str:
    return json.dumps(record, indent=1, sort_keys=True) + "\n"


def read_record(run_dir: Path | str) -> dict | None:
    done = Path(run_dir) / ".done"
    if not done.is_file():
        return None
    try:
        return json.loads(done.read_text())
    except json.JSONDecodeError:
        return {"unreadable": done.read_text()[:200]}


def differences(then: dict, now: dict, prefix: str = "") -> list[str]:
    """Readable ``key: then -> now`` lines for the leaves that differ."""
    lines = []
    for key in sorted(set(then) | set(now)):
        a, b = then.get(key, "<absent>"), now.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            lines += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            lines.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return lines


def options_tag(text: str, max_len: int = 40) -> str:
    """A dir-name tag for ``key=value`` overrides, the ESPnet way: readable when short
    (``"lr=1e-3 epochs=15"`` -> ``epochs15_lr1e-3``), else ``opts`` and a short hash."""
    from ser.config import parse_key_values

    options = parse_key_values(text)
    if not options:
        return ""
    items = [f"{k}={options[k]}" for k in sorted(options)]
    tag = "_".join(i.replace("=", "") for i in items)
    if len(tag) > max_len or not all(c.isalnum() or c in "._-+" for c in tag.replace("_", "")):
        tag = "opts" + hashlib.sha1(" ".join(items).encode()).hexdigest()[:8]
    return tag


# Documentation and the saved result rows (make_results rewrites them mid-sweep): edits
# there do not change how a run trains or scores, so they do not make its commit "-dirty".
NON_CODE_PATHSPECS = (":(exclude,glob)**/*.md", ":(exclude)local/results")


def code_version(root: Path | str | None = None) -> str:
    """The recipe's git commit, ``-dirty`` when tracked files other than results and
    documentation (NON_CODE_PATHSPECS) have uncommitted changes, or ``unknown``."""
    import subprocess

    root = Path(root or Path(__file__).resolve().parents[1])

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("describe", "--always", "--abbrev=10")
    if not commit:
        return "unknown"
    changes = git("status", "--porcelain", "--untracked-files=no", "--", ".", *NON_CODE_PATHSPECS)
    if changes is None:
        return "unknown"
    return commit + "-dirty" if changes else commit
