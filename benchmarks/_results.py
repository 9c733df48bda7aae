"""Where a benchmark's results go: printed always; into a Markdown file only when asked (``--write-results FILE``).

benchmarks/RESULTS.md is a hand-edited record (sections, session notes); no script rewrites it by default.
``--write-results FILE`` replaces (or appends) the script's own ``## NAME`` section of FILE and leaves the rest.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from macbdf.filemode import atomic_write

__all__ = ["add_results_flag", "write_section"]


def add_results_flag(ap: argparse.ArgumentParser, section: str) -> None:
    """``--write-results FILE`` (write the ``section`` of FILE; default: print only). ``--no-write`` is still
    accepted and does nothing (printing only is the default now)."""
    ap.add_argument("--write-results", metavar="FILE", type=Path, default=None,
                    help=f"also replace (or append) the `{section}` section of this Markdown file with the results "
                         "(default: print only; benchmarks/RESULTS.md is edited by hand)")
    ap.add_argument("--no-write", action="store_true", help=argparse.SUPPRESS)


def write_section(path: Path, section: str, body: str) -> None:
    """Replace the section that starts with the line ``section`` (up to the next ``## `` heading) by ``body``
    (which starts with that line), or append it; atomically.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "R.md"
        >>> _ = p.write_text("# R\\n\\n## a\\nold\\n\\n## b\\nkept\\n")
        >>> write_section(p, "## a", "## a\\nnew\\n"); write_section(p, "## c", "## c\\nadded\\n")
        >>> print(p.read_text(), end="")
        # R
        <BLANKLINE>
        ## a
        new
        <BLANKLINE>
        ## b
        kept
        <BLANKLINE>
        ## c
        added
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    body = body if body.endswith("\n") else body + "\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == section), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + body
    else:
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
        new = "".join(lines[:start]) + body + ("\n" + "".join(lines[end:]) if end < len(lines) else "")
    with atomic_write(path) as tmp:
        tmp.write_text(new, encoding="utf-8")
