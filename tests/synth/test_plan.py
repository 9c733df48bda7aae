"""The plan: determinism, balance, identity-disjoint splits, hold-out families, difficulty mix."""
from __future__ import annotations

from collections import Counter

import pytest

from macbdf.synth.plan import AUDIO_FAMILIES, CATEGORIES, VIDEO_FAMILIES, PlanError, make_plan


def _dicts(plan):
    return [c.to_dict() for c in plan.clips]


def test_same_seed_same_plan_other_seed_other_plan():
    a = make_plan("fakeavceleb", 40, seed=3)
    b = make_plan("fakeavceleb", 40, seed=3)
    c = make_plan("fakeavceleb", 40, seed=4)
    assert _dicts(a) == _dicts(b) and a.identities == b.identities
    assert _dicts(a) != _dicts(c)


@pytest.mark.parametrize("layout", ["fakeavceleb", "lavdf"])
def test_categories_balanced_overall_and_per_split(layout):
    plan = make_plan(layout, 400, seed=0)
    assert Counter(c.category for c in plan.clips) == {k: 100 for k in CATEGORIES}
    for split in ("train", "val", "test"):
        per = Counter(c.category for c in plan.clips if c.split == split)
        assert len(set(per.values())) == 1 and set(per) == set(CATEGORIES), (split, per)
    splits = Counter(c.split for c in plan.clips)
    assert splits["train"] > splits["test"] > 0 and splits["val"] > 0


def test_identities_disjoint_across_splits_and_many_used():
    plan = make_plan("lavdf", 400, seed=1)
    by_split = {s: {c.identity for c in plan.clips if c.split == s} for s in ("train", "val", "test")}
    assert not (by_split["train"] & by_split["val"]) and not (by_split["train"] & by_split["test"])
    assert not (by_split["val"] & by_split["test"])
    assert len(set().union(*by_split.values())) >= 50
    # Donors and voice sources come from the clip's own split: no identity leaks across splits.
    for c in plan.clips:
        for other in (c.donor, c.other):
            if other is not None:
                assert other in plan.identities[c.split] and other != c.identity


def test_holdout_families_only_in_test():
    def fams(plan, split):
        return Counter(f for c in plan.clips if c.split == split for f in (c.video_family, c.audio_family) if f)

    plan = make_plan("fakeavceleb", 400, seed=2, holdout_families="faceswap,tts")
    assert plan.settings["holdout_families"] == ["faceswap", "tts"]
    for split in ("train", "val"):
        assert not {"faceswap", "tts"} & set(fams(plan, split)), split
    assert fams(plan, "test")["faceswap"] > 0 and fams(plan, "test")["tts"] > 0
    # Without the switch the train split has them.
    assert {"faceswap", "tts"} <= set(fams(make_plan("fakeavceleb", 400, seed=2), "train"))


def test_every_family_used_and_difficulty_mixed():
    plan = make_plan("fakeavceleb", 400, seed=0)
    used = Counter(f for c in plan.clips for f in (c.video_family, c.audio_family) if f)
    assert set(used) == set(VIDEO_FAMILIES) | set(AUDIO_FAMILIES)
    cross = [c for c in plan.clips if c.cross_modal_only]
    assert cross, "no fakes that only a cross-modal detector can catch"
    assert {c.method for c in cross} <= {"synth_lipsync", "synth_audioswap", "synth_lipsync-audioswap"}
    strengths = [c.params["strength"] for c in plan.clips if c.video_family in ("faceswap", "gan")]
    assert min(strengths) < 0.3 and max(strengths) > 0.7  # some subtle, some blatant


def test_partial_fakes_and_periods():
    plan = make_plan("lavdf", 200, seed=0)
    fakes = [c for c in plan.clips if c.category != "RVRA"]
    partial = [c for c in fakes if c.fake_periods != [[0.0, round(c.duration, 3)]]]
    assert len(partial) > 0.6 * len(fakes)  # LAV-DF style: mostly segments
    for c in fakes:
        assert c.fake_periods and c.original is not None
        for a, b in c.fake_periods:
            assert 0 <= a < b <= c.duration + 1e-9
            assert abs(a * 25 - round(a * 25)) < 1e-6  # on frame boundaries
        if c.category == "FVFA":
            assert c.video_periods == c.audio_periods
    real = [c for c in plan.clips if c.category == "RVRA"]
    assert all(not c.fake_periods and c.original is None for c in real)
    assert make_plan("fakeavceleb", 40, seed=0).clips[1].audio_periods  # full-length periods recorded too


@pytest.mark.parametrize("kwargs,msg", [
    ({"layout": "dfdc"}, "unknown layout"),
    ({"num_clips": 0}, "at least 1"),
    ({"holdout_families": "faceswap,bogus"}, "unknown manipulation family bogus"),
    ({"holdout_families": "faceswap,lipsync,gan"}, "every family of one modality"),
    ({"duration_range": (3.0, 2.0)}, "duration range"),
    ({"size": 161}, "even"),
])
def test_bad_settings_are_clear_errors(kwargs, msg):
    args = {"layout": "lavdf", "num_clips": 8, "seed": 0, **kwargs}
    with pytest.raises(PlanError, match=msg):
        make_plan(**args)


def test_artefact_floors_keep_most_fakes_learnable():
    # plan_version 2: most fakes carry a trace above a floor; a minority stays subtle; the
    # cross-modal-only lip-syncs (no visual trace) remain.
    plan = make_plan("fakeavceleb", 800, seed=3)
    def share_above(values, floor):
        return sum(v >= floor for v in values) / len(values)
    vis = [c.params["strength"] for c in plan.clips if c.video_family in ("faceswap", "gan")]
    lips = [c.params["lip_artefact"] for c in plan.clips if c.video_family == "lipsync"]
    voc = [c.params["vocoder"] for c in plan.clips if c.audio_family in ("voiceconv", "tts")]
    assert 0.7 < share_above(vis, 0.45) < 0.95
    assert 0.0 in lips and share_above([v for v in lips if v > 0], 0.5) > 0.7
    assert 0.7 < share_above(voc, 0.3) < 0.95
    assert all(16 <= c.params["crf"] <= 26 for c in plan.clips)
    assert plan.settings["plan_version"] == 2
