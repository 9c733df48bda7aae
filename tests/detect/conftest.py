"""Detection tests run torch on one thread; clips and `tiny_checkpoint` come from tests/conftest.py."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    yield
