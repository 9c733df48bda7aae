"""What an epoch reads: the class-balanced index and per-sample seeding.

The data order of an epoch depends only on ``(seed, epoch)`` (`macbdf_train.distributed.shard_epoch`);
each sample's random crop/augmentation is drawn under a seed derived from ``(seed, epoch, index)``, so
worker count and resume point do not change what a step sees.
"""
from __future__ import annotations

import hashlib
import random
from typing import Any

import numpy as np
import torch

__all__ = ["balanced_index", "item_seed", "SeededItems"]


def balanced_index(labels: "np.ndarray | list[float]") -> list[int]:
    """Dataset indices of one class-balanced epoch: every sample once, authentic ones (label 0)
    repeated so that they are about as frequent as the fakes (label 1); unknown labels count once.

    Example:
        >>> balanced_index([0, 1, 1, 1, 1, 1, 1])
        [0, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0]
    """
    labels = [float(x) for x in labels]
    real = [i for i, y in enumerate(labels) if y == 0.0]
    n_fake = sum(1 for y in labels if y == 1.0)
    reps = max(1, round(n_fake / len(real))) if real else 1
    return list(range(len(labels))) + real * (reps - 1)


def item_seed(seed: int, epoch: int, index: int) -> int:
    h = hashlib.blake2b(f"{seed}:{epoch}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & 0x7FFF_FFFF_FFFF_FFFF


class SeededItems(torch.utils.data.Dataset):
    """Reads ``ds[i]`` with every RNG seeded from ``(seed, epoch, i)``, restoring the callers' RNGs.

    Random crops/augmentations then depend on the sample, not on call order, worker or resume point.
    """

    def __init__(self, ds: Any, seed: int, epoch: int) -> None:
        self.ds, self.seed, self.epoch = ds, seed, epoch

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> Any:
        s = item_seed(self.seed, self.epoch, int(i))
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                # The CPU generator only: loading runs on the CPU, and torch.manual_seed would also
                # reseed (or queue, with a formatted stack, ~0.6 ms) every accelerator generator,
                # which fork_rng(devices=[]) does not restore: a GPU run's dropout stream would
                # restart from the last item's seed at every batch.
                torch.default_generator.manual_seed(s)
                random.seed(s)
                np.random.seed(s % (2**32))
                return self.ds[i]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
