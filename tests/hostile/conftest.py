"""Hostile-input tests (issue 15): media with NaN audio, corrupt packets, odd sizes (made by
hostile_media.py); `clip_dir` and `tiny_checkpoint` come from tests/conftest.py. Torch runs on one thread."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def det(tiny_checkpoint: Path):
    from macbdf.detect import Detector

    return Detector.from_pretrained(tiny_checkpoint)
