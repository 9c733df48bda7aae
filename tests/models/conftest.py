"""Fixtures of the model tests: small, seeded, CPU."""
from __future__ import annotations

import pytest
import torch

from macbdf.models.registry import create_model


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Seeded, single-threaded: tiny tensors run several times faster on one thread than with
    OpenMP threads fighting over two cores shared with other jobs."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def tiny_model():
    return create_model("tiny")
