"""Train/val/test splits: the dataset's own where it has one, else the paper's seeded 80:20 split.

The paper evaluates on an 80:20 random split, stratified per dataset. We stratify by ``category``
(RVRA/RVFA/FVRA/FVFA; falls back to ``label`` and then "unknown" for records without one), and carve
a validation part out of train (``val_fraction`` of train) so that thresholds and best checkpoints
are never chosen on test. With ``identity_disjoint=True`` all records sharing an identity (a subject
id, or a source video where the dataset has no subject ids) land in the same split, assigned
greedily so that each split's category mix stays close to the target (group-stratified).

Everything is deterministic in ``seed`` and independent of the input order (records are sorted by
``video_id`` before any shuffling).

Example:
    >>> from macbdf.data.manifest import SampleRecord
    >>> recs = [SampleRecord(video_id=f"v{i}", path=f"v{i}.mp4", label=i % 2, split="")
    ...         for i in range(100)]
    >>> recs = assign_splits(recs, seed=0, val_fraction=0.1)
    >>> sorted(split_counts(recs).items())
    [('test', 20), ('train', 72), ('val', 8)]
"""
from __future__ import annotations

import hashlib
import math
import random
from collections import Counter, defaultdict
from typing import Callable, Iterable, Sequence

from macbdf.data.manifest import SampleRecord

UNASSIGNED = ""
SPLITS = ("train", "val", "test")


def strat_key(rec: SampleRecord, by: str = "category") -> str:
    """Stratum of a record: its category, else its label, else "unknown"."""
    if by == "category" and rec.category:
        return rec.category
    if rec.label is not None:
        return f"label={rec.label}"
    return "unknown"


def group_key(rec: SampleRecord) -> str:
    """Identity group of a record for identity-disjoint splits (the record itself when unknown)."""
    return f"id:{rec.identity}" if rec.identity else f"vid:{rec.video_id}"


def split_counts(records: Iterable[SampleRecord]) -> dict[str, int]:
    """How many records are in each split.

    Example:
        >>> split_counts([SampleRecord(video_id="a", path="a", split="test")])
        {'test': 1}
    """
    return dict(Counter(r.split for r in records))


def _rng(seed: int, salt: str) -> random.Random:
    # A stable per-purpose stream: Python's hash() is salted per process, sha256 is not.
    h = hashlib.sha256(f"{seed}:{salt}".encode("utf-8", "surrogateescape")).digest()
    return random.Random(int.from_bytes(h[:8], "little"))


def _quotas(sizes: dict[str, int], fraction: float, rng: random.Random) -> dict[str, int]:
    """Per-stratum counts summing to round(total * fraction) (largest remainder, seeded ties)."""
    total = sum(sizes.values())
    want = int(math.floor(total * fraction + 0.5))
    if fraction > 0 and want == 0 and total >= 2:
        want = 1  # tiny sets: a non-empty part beats a missing one
    exact = {k: n * fraction for k, n in sizes.items()}
    q = {k: int(math.floor(v)) for k, v in exact.items()}
    keys = sorted(sizes)
    rng.shuffle(keys)
    keys.sort(key=lambda k: exact[k] - q[k], reverse=True)  # stable: ties keep the seeded order
    for k in keys:
        if sum(q.values()) >= want:
            break
        if q[k] < sizes[k]:
            q[k] += 1
    return q


def _split_records(records: Sequence[SampleRecord], fraction: float, seed: int, salt: str,
                   stratify_by: str) -> set[int]:
    """Indices (into ``records``) of a stratified ``fraction`` of the records."""
    strata: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        strata[strat_key(r, stratify_by)].append(i)
    rng = _rng(seed, salt)
    quotas = _quotas({k: len(v) for k, v in strata.items()}, fraction, rng)
    picked: set[int] = set()
    for k in sorted(strata):
        idx = sorted(strata[k], key=lambda i: records[i].video_id)
        _rng(seed, f"{salt}:{k}").shuffle(idx)
        picked.update(idx[: quotas[k]])
    return picked


def _split_groups(records: Sequence[SampleRecord], fraction: float, seed: int, salt: str,
                  stratify_by: str, key: Callable[[SampleRecord], str] = group_key) -> set[int]:
    """Indices of whole groups making up about ``fraction`` of the records, per stratum.

    Greedy group-stratified assignment: groups are visited largest first (seeded order among equal
    sizes) and each goes to the side (picked / not picked) whose per-stratum shortfall, weighted by
    the group's own stratum mix, is largest.
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        groups[key(r)].append(i)
    totals = Counter(strat_key(r, stratify_by) for r in records)
    target = {0: {k: n * (1 - fraction) for k, n in totals.items()},
              1: {k: n * fraction for k, n in totals.items()}}
    have = {0: Counter(), 1: Counter()}
    names = sorted(groups)
    _rng(seed, salt).shuffle(names)
    names.sort(key=lambda g: len(groups[g]), reverse=True)
    picked: set[int] = set()
    for g in names:
        mix = Counter(strat_key(records[i], stratify_by) for i in groups[g])
        score = {}
        for side in (0, 1):
            # Shortfall of this side in the strata this group would fill, relative to the side's
            # target, so that the small side is not starved by the large one.
            score[side] = sum(c * (target[side][k] - have[side][k]) / max(target[side][k], 1e-9)
                              for k, c in mix.items() if target[side][k] > 0)
        side = 1 if score[1] > score[0] else 0
        have[side].update(mix)
        if side == 1:
            picked.update(groups[g])
    if fraction > 0 and not picked and len(names) >= 2:
        # Tiny sets: never leave the split empty when there is a group to spare (val is needed to
        # choose thresholds); the smallest group goes.
        picked.update(groups[names[-1]])
    return picked


def assign_splits(records: list[SampleRecord], *, seed: int = 0, test_fraction: float = 0.2,
                  val_fraction: float = 0.1, identity_disjoint: bool = False,
                  stratify_by: str = "category", keep_own: bool = True) -> list[SampleRecord]:
    """Fill in splits in place and return the records.

    Records whose ``split`` is already train/val/test keep it (the dataset's own split) unless
    ``keep_own`` is False; the others (``split == ""``) get a seeded, stratified
    ``test_fraction`` test part. Then, if no record is in "val" and ``val_fraction > 0``, a
    ``val_fraction`` share of train becomes val (stratified the same way; whole identities when
    ``identity_disjoint``).

    Example:
        >>> recs = [SampleRecord(video_id=f"v{i}", path="", label=i % 2, identity=f"p{i // 5}",
        ...                      split="") for i in range(50)]
        >>> recs = assign_splits(recs, seed=1, identity_disjoint=True)
        >>> ids = {s: {r.identity for r in recs if r.split == s} for s in ("train", "val", "test")}
        >>> ids["train"] & ids["test"], ids["train"] & ids["val"]
        (set(), set())
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if stratify_by not in ("category", "label"):
        raise ValueError(f"stratify_by must be 'category' or 'label', got {stratify_by!r}")
    if not keep_own:
        for r in records:
            r.split = UNASSIGNED
    for r in records:
        if r.split not in SPLITS and r.split != UNASSIGNED:
            raise ValueError(f"{r.video_id}: bad split {r.split!r}")

    split_fn = _split_groups if identity_disjoint else _split_records
    todo = sorted((r for r in records if r.split == UNASSIGNED), key=lambda r: r.video_id)
    if todo:
        test_idx = split_fn(todo, test_fraction, seed, "test", stratify_by)
        for i, r in enumerate(todo):
            r.split = "test" if i in test_idx else "train"

    if val_fraction > 0 and not any(r.split == "val" for r in records):
        train = sorted((r for r in records if r.split == "train"), key=lambda r: r.video_id)
        val_idx = split_fn(train, val_fraction, seed, "val", stratify_by)
        for i in val_idx:
            train[i].split = "val"
    return records


def identity_overlap(records: Iterable[SampleRecord]) -> dict[tuple[str, str], set[str]]:
    """Identities shared between splits (empty sets everywhere for an identity-disjoint split).

    Example:
        >>> rs = [SampleRecord(video_id="a", path="", identity="p", split="train"),
        ...       SampleRecord(video_id="b", path="", identity="p", split="test")]
        >>> identity_overlap(rs)[("train", "test")]
        {'p'}
    """
    by: dict[str, set[str]] = defaultdict(set)
    for r in records:
        if r.identity:
            by[r.split].add(r.identity)
    return {(a, b): by[a] & by[b] for a, b in (("train", "val"), ("train", "test"), ("val", "test"))}
