"""Atomic file output: write to a temporary file beside the target, fsync, rename.

A reader (or a crash) therefore sees either the old file or the complete new one, never
a half-written file. Temporary files carry a ``.tmp-`` prefix so that leftovers from a
killed process are recognisable and can be swept with :func:`remove_stale_temporaries`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from reloblur.errors import WriteError

TEMP_PREFIX = ".tmp-"


def _fsync_directory(directory: Path) -> None:
    # The rename itself is only durable once the directory entry is flushed.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], *, fsync: bool = True) -> Iterator[BinaryIO]:
    """Open a binary file for writing that appears at ``path`` only when the block succeeds.

    Parameters
    ----------
    path
        Final destination. Its parent directory is created if needed.
    fsync
        Flush file and directory to disk before returning (crash safety). Disable only
        for scratch output.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX + target.name + ".", dir=target.parent)
    except OSError as exc:
        raise WriteError(f"{target}: cannot write ({exc.strerror or exc})") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise WriteError(f"{target}: cannot write ({exc.strerror or exc})") from exc
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    if fsync:
        _fsync_directory(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, fsync=fsync) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = True) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, fsync: bool = True) -> None:
    """Write ``obj`` as indented, key-sorted JSON (stable bytes for equal content)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n", fsync=fsync)


def atomic_symlink(target: str | os.PathLike[str], link: str | os.PathLike[str]) -> None:
    """Create or replace the symbolic link ``link`` -> ``target`` atomically."""
    link = Path(link)
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f"{TEMP_PREFIX}{link.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def is_temporary(path: Path) -> bool:
    """True for a temporary file left behind by an interrupted atomic write."""
    return path.name.startswith(TEMP_PREFIX)


def remove_stale_temporaries(root: str | os.PathLike[str]) -> int:
    """Delete temporaries left under ``root`` by killed writers; returns how many."""
    count = 0
    for tmp in Path(root).rglob(TEMP_PREFIX + "*"):
        if tmp.is_file() or tmp.is_symlink():
            tmp.unlink()
            count += 1
    return count


def remove_own_temporaries(targets: Iterable[str | os.PathLike[str]]) -> int:
    """Delete the temporaries a killed writer left for these target files only; returns
    how many. For work split across machines that share a folder: each part sweeps what
    only it writes, never a temporary another part is writing now."""
    by_folder: dict[Path, set[str]] = {}
    for target in targets:
        path = Path(target)
        by_folder.setdefault(path.parent, set()).add(path.name)
    count = 0
    for folder, names in by_folder.items():
        if not folder.is_dir():
            continue
        for tmp in folder.glob(TEMP_PREFIX + "*"):
            # mkstemp names it TEMP_PREFIX + target name + "." + a suffix without dots
            if tmp.name[len(TEMP_PREFIX):].rsplit(".", 1)[0] in names and tmp.is_file():
                tmp.unlink(missing_ok=True)
                count += 1
    return count
