"""Names read from files (sessions, sidecars, manifests, requests) become paths only here.

Such files travel between machines: a name in them is untrusted. :func:`confined` turns one
into a path inside a given root and refuses ``..``, absolute names and symbolic links that
lead out.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from reloblur.errors import ReloblurError


class UnsafePathError(ReloblurError):
    """A name read from a file points outside the folder it must stay in."""


def confined(root: str | os.PathLike[str], name: str, *, what: str = "path") -> Path:
    """``root / name``, guaranteed inside ``root``.

    Raises
    ------
    UnsafePathError
        ``name`` is absolute, climbs out with ``..``, or resolves (through a symbolic
        link) outside ``root``.

    Examples
    --------
    >>> confined("session", "frames/000001_B.tiff").as_posix()
    'session/frames/000001_B.tiff'
    >>> confined("session", "../secret/x.tiff")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    reloblur.paths.UnsafePathError: path '../secret/x.tiff' leaves session
    """
    text = str(name)
    parts = PurePosixPath(text.replace("\\", "/")).parts
    if (not text or PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute()
            or PureWindowsPath(text).drive or ".." in parts):
        raise UnsafePathError(f"{what} {text!r} leaves {root}")
    base = Path(root)
    candidate = base / text
    try:
        resolved, resolved_root = candidate.resolve(), base.resolve()
    except OSError:
        return candidate
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise UnsafePathError(f"{what} {text!r} leaves {root} (it resolves to {resolved})")
    return candidate


def output_folder(path: str | os.PathLike[str], *, what: str = "output folder") -> Path:
    """``path`` as a folder a command may write into: absent (it will be made) or a
    directory. A file there is a user error found before any work, not one failure per item.

    >>> output_folder("/")
    PosixPath('/')
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ReloblurError(f"{folder}: the {what} is a file, not a folder")
    return folder


def outside(out: str | os.PathLike[str], tree: str | os.PathLike[str], *, what: str) -> None:
    """Refuse an output folder that is ``tree`` or lies below it: what a command writes
    there would rewrite, or be read back as part of, the ``what`` it reads.

    Raises
    ------
    ReloblurError
        ``out`` is ``tree`` or inside it (after resolving symbolic links).
    """
    if Path(out).resolve().is_relative_to(Path(tree).resolve()):
        raise ReloblurError(f"{out} is inside the {what} {tree}: write to a folder outside it")


def is_folder_name(label: str) -> bool:
    """Whether ``label`` (a scene label, say) can become one folder's name as it is: not
    empty, ``.`` or ``..``, no separator or drive colon, no surrounding spaces. Labels
    travel in session files and become folders in ``align``: ``../x`` or ``/x`` must not.

    >>> is_folder_name("lab bench"), is_folder_name("../x"), is_folder_name(" s01")
    (True, False, False)
    """
    return bool(label) and label not in (".", "..") and not any(c in label for c in "/\\:") \
        and label == label.strip()
