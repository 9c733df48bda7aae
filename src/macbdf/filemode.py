"""Atomic writes and the file modes of their outputs (no torch import: the prepare workers use it too).

`atomic_write` is the one temp-file-then-``os.replace`` in the project: a crash never leaves a half-written
file under the final name. ``tempfile.mkstemp`` creates 0600 files, so without `chmod_like_new_file` every
output would be private whatever the user's umask says.

Example:
    >>> import os, tempfile
    >>> fd, p = tempfile.mkstemp(); old = os.umask(0o022)
    >>> chmod_like_new_file(fd); oct(os.stat(p).st_mode & 0o777)
    '0o644'
    >>> _ = os.umask(old); os.close(fd); os.unlink(p)
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["current_umask", "chmod_like_new_file", "atomic_write", "atomic_write_text"]


@contextmanager
def atomic_write(path: str | os.PathLike, *, prefix: str | None = None, suffix: str = ".tmp",
                 fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder (``.NAME.<random>.tmp`` by default) to write to; when the
    block ends without an error the file gets the mode a new file would get (`chmod_like_new_file`), is
    fsync'd if asked, and renamed over ``path``; on an error it is removed and ``path`` is untouched.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> with atomic_write(d / "a.txt") as tmp:
        ...     _ = tmp.write_text("done")
        >>> (d / "a.txt").read_text(), sorted(p.name for p in d.iterdir())
        ('done', ['a.txt'])
        >>> try:
        ...     with atomic_write(d / "b.txt") as tmp:
        ...         raise OSError("disk full")
        ... except OSError:
        ...     pass
        >>> sorted(p.name for p in d.iterdir())
        ['a.txt']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}." if prefix is None else prefix,
                                suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        chmod_like_new_file(tmp)   # after the writer: some (safetensors) recreate the file 0600
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


def atomic_write_text(path: str | os.PathLike, text: str, *, fsync: bool = True) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` through `atomic_write`, fsync'd by default.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "x" / "note.txt"
        >>> atomic_write_text(p, "done"); p.read_text()
        'done'
    """
    with atomic_write(path, fsync=False) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
