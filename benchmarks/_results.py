"""Where a benchmark's results go: printed always; into a Markdown file only when asked (``--write-results FILE``).

benchmarks/RESULTS.md is a hand-edited record (sections, session notes); no script rewrites it by default.
``--write-results FILE`` replaces (or appends) the script's own ``## NAME`` section of FILE and leaves the rest.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from macbdf.filemode import atomic_write

__all__ = ["StealMeter", "add_results_flag", "write_section"]


class StealMeter:
    """Share of the machine's CPU time the hypervisor gave to other guests ("steal") since construction.

    On a shared VM the same code runs up to ~1.5x slower when the host is busy (measured: 19 % of all CPU
    time stolen while a benchmark ran, ~0 % when idle). Wall and CPU figures of runs with different steal are
    not comparable; side-by-side ratios are. Linux only (``/proc/stat``); elsewhere ``share()`` is None.

    Example:
        >>> m = StealMeter()
        >>> s = m.share()
        >>> s is None or 0.0 <= s <= 1.0
        True
    """

    def __init__(self) -> None:
        self._t0 = self._read()

    @staticmethod
    def _read() -> list[int] | None:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                fields = f.readline().split()
        except OSError:
            return None
        # cpu user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is inside user
        return [int(x) for x in fields[1:9]] if fields and fields[0] == "cpu" and len(fields) >= 9 else None

    def share(self) -> float | None:
        """Stolen / all CPU ticks since construction (None where unknown or no tick passed)."""
        t1 = self._read()
        if self._t0 is None or t1 is None:
            return None
        d = [b - a for a, b in zip(self._t0, t1)]
        return d[7] / sum(d) if sum(d) > 0 else None

    def line(self) -> str:
        """One line for a benchmark's summary."""
        s = self.share()
        return "CPU time stolen by the hypervisor during the run: " + ("unknown" if s is None else f"{100 * s:.1f} %")


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
