"""File modes of atomically written outputs (no torch import: the prepare workers use it too).

``tempfile.mkstemp`` creates 0600 files and an atomic write renames one into place, so without
`chmod_like_new_file` every output would be private whatever the user's umask says.

Example:
    >>> import os, tempfile
    >>> fd, p = tempfile.mkstemp(); old = os.umask(0o022)
    >>> chmod_like_new_file(fd); oct(os.stat(p).st_mode & 0o777)
    '0o644'
    >>> _ = os.umask(old); os.close(fd); os.unlink(p)
"""
from __future__ import annotations

import os

__all__ = ["current_umask", "chmod_like_new_file"]


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)   # elsewhere: set and restore (the only portable way to read it)
    os.umask(old)
    return old


def chmod_like_new_file(target: int | str | os.PathLike) -> None:
    """Give a file (path or fd) the mode a plain ``open(..., "w")`` would: 0o666 minus the umask.

    ``tempfile.mkstemp`` creates 0600 files; an atomic write renames one into place, so without this
    every output would be private whatever the user's umask says.
    """
    mode = 0o666 & ~current_umask()
    if isinstance(target, int):
        os.fchmod(target, mode)
    else:
        os.chmod(target, mode)
