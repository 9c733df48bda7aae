"""Per-item seeding of the training data."""
from __future__ import annotations

import random

import numpy as np
import torch

from macbdf_train.epochs import SeededItems, item_seed


class _Draws(torch.utils.data.Dataset):
    """Each item is one draw from each global RNG, as a random crop or augmentation would make."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> tuple[torch.Tensor, float, float]:
        return torch.rand(4), float(np.random.rand()), random.random()


def _reference(seed: int, epoch: int, i: int) -> tuple[torch.Tensor, float, float]:
    s = item_seed(seed, epoch, i)
    torch.manual_seed(s)
    random.seed(s)
    np.random.seed(s % (2**32))
    return torch.rand(4), float(np.random.rand()), random.random()


def test_items_are_the_draws_of_their_own_seed_and_leave_the_callers_rngs_alone():
    items = SeededItems(_Draws(), seed=3, epoch=2)
    torch.manual_seed(11)
    random.seed(12)
    np.random.seed(13)
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    got = [items[i] for i in (5, 0, 5)]
    assert torch.equal(torch.get_rng_state(), before[0])
    assert random.getstate() == before[1]
    assert np.array_equal(np.random.get_state()[1], before[2])
    # the same index gives the same draws whatever was read before it
    assert torch.equal(got[0][0], got[2][0]) and got[0][1:] == got[2][1:]
    for (t, n, p), i in zip(got, (5, 0, 5)):
        rt, rn, rp = _reference(3, 2, i)
        assert torch.equal(t, rt) and n == rn and p == rp


def test_items_do_not_touch_accelerator_generators(monkeypatch):
    # torch.manual_seed reseeds every accelerator generator, which fork_rng(devices=[]) does not restore:
    # on a GPU the dropout stream would restart from the last item's seed at each batch
    calls: list[int] = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda s: calls.append(s))
    items = SeededItems(_Draws(), seed=0, epoch=0)
    for i in range(3):
        items[i]
    assert calls == []
