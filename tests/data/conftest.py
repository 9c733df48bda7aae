"""Helpers for the dataset-adapter tests: tiny fake layouts written exactly as each dataset ships."""
from __future__ import annotations

from pathlib import Path

import pytest


def touch(path: Path, data: bytes = b"\x00") -> Path:
    """An empty stand-in for a video file (adapters only check existence, never decode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def touch_file():
    return touch
