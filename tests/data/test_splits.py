from __future__ import annotations

import random
from collections import Counter

import pytest

from macbdf.data.manifest import CATEGORIES, SampleRecord
from macbdf.data.splits import assign_splits, identity_overlap, split_counts


def make(n_per_cat=(100, 60, 40, 200), n_ids=0, seed=0):
    """Records across the four categories; identities (n_ids > 0) of random sizes."""
    rng = random.Random(seed)
    out = []
    for cat, n in zip(CATEGORIES, n_per_cat):
        for i in range(n):
            vl, al = int(cat.startswith("FV")), int(cat.endswith("FA"))
            ident = f"id{rng.randrange(n_ids):03d}" if n_ids else None
            out.append(SampleRecord(video_id=f"{cat}/{i:04d}", path="", label=int(vl or al), video_label=vl,
                                    audio_label=al, category=cat, identity=ident, split=""))
    return out


def _by_cat(recs):
    return {(r.category, r.split): 0 for r in recs} | Counter((r.category, r.split) for r in recs)


def test_stratified_80_20_with_val_from_train():
    recs = assign_splits(make(), seed=0, val_fraction=0.1)
    c = _by_cat(recs)
    for cat, n in zip(CATEGORIES, (100, 60, 40, 200)):
        assert c[(cat, "test")] == round(n * 0.2)  # exact per stratum when n * 0.2 is whole
        assert c[(cat, "val")] == round((n - round(n * 0.2)) * 0.1)
        assert c[(cat, "train")] + c[(cat, "val")] + c[(cat, "test")] == n
    assert split_counts(recs) == {"train": 288, "val": 32, "test": 80}


def test_uneven_strata_total_stays_exact():
    recs = assign_splits(make((7, 3, 11, 5)), seed=3, val_fraction=0)
    assert split_counts(recs)["test"] == round(26 * 0.2)
    per = Counter(r.category for r in recs if r.split == "test")
    for cat, n in zip(CATEGORIES, (7, 3, 11, 5)):
        assert abs(per[cat] - n * 0.2) < 1


def test_deterministic_and_order_independent():
    a = {r.video_id: r.split for r in assign_splits(make(), seed=5)}
    shuffled = make()
    random.Random(1).shuffle(shuffled)
    b = {r.video_id: r.split for r in assign_splits(shuffled, seed=5)}
    c = {r.video_id: r.split for r in assign_splits(make(), seed=6)}
    assert a == b
    assert a != c


def test_label_stratification_fallback():
    recs = [SampleRecord(video_id=f"v{i}", path="", label=int(i < 30), split="") for i in range(100)]
    assign_splits(recs, seed=0, val_fraction=0)
    assert Counter(r.label for r in recs if r.split == "test") == {1: 6, 0: 14}
    cat = make()
    assign_splits(cat, seed=0, stratify_by="label", val_fraction=0)
    assert Counter(r.label for r in cat if r.split == "test") == {1: 60, 0: 20}


def test_identity_disjoint_keeps_identities_together_and_ratio_close():
    recs = assign_splits(make(n_ids=60), seed=0, identity_disjoint=True, val_fraction=0.1)
    assert all(not s for s in identity_overlap(recs).values())
    n = len(recs)
    counts = split_counts(recs)
    assert abs(counts["test"] / n - 0.2) < 0.05
    assert abs(counts["val"] / n - 0.08) < 0.04
    # Stratified: every category's test share is near 20 %.
    for cat in CATEGORIES:
        tot = sum(r.category == cat for r in recs)
        assert abs(sum(r.category == cat and r.split == "test" for r in recs) / tot - 0.2) < 0.1
    again = assign_splits(make(n_ids=60), seed=0, identity_disjoint=True, val_fraction=0.1)
    assert [r.split for r in again] == [r.split for r in recs]


def test_identity_disjoint_records_without_identity_are_their_own_group():
    recs = make((20, 20, 20, 20))
    for r in recs[:40]:
        r.identity = "bigshot"
    assign_splits(recs, seed=0, identity_disjoint=True)
    assert len({r.split for r in recs[:40]}) == 1
    assert {r.split for r in recs[40:]} == {"train", "val", "test"}


def test_own_split_is_kept_and_val_only_carved_when_absent():
    recs = make((10, 10, 10, 10))
    for i, r in enumerate(recs):
        r.split = "test" if i % 4 == 0 else "train"
    own = [r.split for r in recs]
    assign_splits(recs, seed=0, val_fraction=0.25)
    assert all(r.split == s or (s, r.split) == ("train", "val") for r, s in zip(recs, own))
    assert split_counts(recs) == {"test": 10, "train": 22, "val": 8}
    with_val = make((10, 10, 10, 10))
    for i, r in enumerate(with_val):
        r.split = ("train", "val", "test")[i % 3]
    before = [r.split for r in with_val]
    assign_splits(with_val, seed=0)
    assert [r.split for r in with_val] == before  # the dataset's own val is not touched


def test_keep_own_false_resplits():
    recs = make((10, 10, 10, 10))
    for r in recs:
        r.split = "train"
    assign_splits(recs, seed=0, keep_own=False, val_fraction=0)
    assert split_counts(recs) == {"train": 32, "test": 8}


def test_tiny_sets_still_get_a_val_part():
    recs = [SampleRecord(video_id=f"v{i}", path="", label=i % 2, identity=f"p{i % 3}", split="") for i in range(6)]
    assign_splits(recs, seed=0, identity_disjoint=True)
    assert set(split_counts(recs)) == {"train", "val", "test"}


@pytest.mark.parametrize("kw", [{"test_fraction": 1.0}, {"val_fraction": -0.1}, {"stratify_by": "method"}])
def test_bad_parameters(kw):
    with pytest.raises(ValueError):
        assign_splits(make((2, 2, 2, 2)), **kw)


def test_bad_split_value_on_a_record():
    with pytest.raises(ValueError, match="bad split 'holdout'"):
        assign_splits([SampleRecord(video_id="a", path="", split="holdout")])
