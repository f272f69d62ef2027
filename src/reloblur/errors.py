"""Exceptions shared by every stage.

The CLI edge maps :class:`ReloblurError` to exit code 1 (the user can fix the input) and
:class:`PartialFailure` to exit code 2 (a batch finished, but some items failed).
"""

from __future__ import annotations


class ReloblurError(Exception):
    """An error the user can act on: bad input, a missing file, an invalid option."""

    exit_code = 1


class ImageReadError(ReloblurError):
    """An image file is missing, empty, truncated or not decodable."""


class ImageFormatError(ReloblurError):
    """An image has a shape, dtype or extension this operation does not accept."""


class DatasetError(ReloblurError):
    """A dataset tree does not follow the ReLoBlur layout."""


class SessionError(ReloblurError):
    """A capture session directory is malformed."""


class WriteError(ReloblurError):
    """An output could not be written (disk full, permission, read-only medium): names the
    file and the reason. Nothing half-written is left behind (see :mod:`reloblur.atomic`)."""


class PartialFailure(ReloblurError):
    """A batch ran to the end but some of its items failed."""

    exit_code = 2
