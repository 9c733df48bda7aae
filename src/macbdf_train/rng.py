"""The global RNG state of a training process (torch, Python, NumPy, CUDA): seeded per rank at the start,
saved in every checkpoint, restored exactly on resume (``torch.load(weights_only=True)``-safe types)."""
from __future__ import annotations

import contextlib
import random
from typing import Any, Mapping

import numpy as np
import torch

__all__ = ["seed_training", "rng_state", "set_rng_state"]


def seed_training(seed: int, rank: int) -> None:
    """Training randomness (dropout, ...): different per rank, reproducible per ``(seed, rank)``."""
    torch.manual_seed(seed * 1000 + 1 + rank)
    random.seed(seed * 1000 + 2 + rank)
    np.random.seed((seed * 1000 + 3 + rank) % (2**32))


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    st: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [list(random.getstate()[1]), random.getstate()[0], random.getstate()[2]],
        "numpy": {"key": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: Mapping[str, Any]) -> None:
    torch.set_rng_state(st["torch"])
    py = st["python"]
    random.setstate((py[1], tuple(int(x) for x in py[0]), py[2]))
    n = st["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in st and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):  # a different GPU count: keep the fresh CUDA RNG
            torch.cuda.set_rng_state_all(st["cuda"])
