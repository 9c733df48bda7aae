"""Shared fixtures. Area-specific fixtures live in tests/<area>/conftest.py."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MEDIA = REPO.parent / "shared" / "media"


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """The real clips in ../shared/media; tests using them skip when the folder is absent."""
    if not SHARED_MEDIA.is_dir() or not any(SHARED_MEDIA.glob("*.mp4")):
        pytest.skip("../shared/media not present (internal test clips)")
    return SHARED_MEDIA
