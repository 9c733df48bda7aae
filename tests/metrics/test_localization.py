"""Temporal localisation (AP@IoU, AR@N, segments from frame scores) on hand-built segments."""
from __future__ import annotations

import math

import numpy as np
import pytest

from macbdf.metrics import iou_1d, localization_ap, localization_ar, reason_of, segments_from_scores


def test_iou_1d_hand_values() -> None:
    ious = iou_1d(np.array([[0.0, 2.0], [1.0, 3.0], [4.0, 4.0]]), np.array([[1.0, 3.0]]))
    np.testing.assert_allclose(ious[:, 0], [1 / 3, 1.0, 0.0])


def test_segments_from_scores() -> None:
    fps = 10.0
    s = np.zeros(40)
    s[5:15] = 0.9  # event 1: frames 5..14 -> [0.5, 1.5) s
    s[25:30] = 0.6  # event 2, weaker
    s[27] = 0.3  # one low frame inside event 2
    p = segments_from_scores(s, fps, thresholds=(0.5,))
    assert p[0].tolist() == pytest.approx([0.9, 0.5, 1.5])  # zero context: confidence = mean
    assert len(p) == 3  # event 2 split in two by the dip
    p = segments_from_scores(s, fps, thresholds=(0.5,), merge_gap=1)
    assert len(p) == 2 and p[1, 1:].tolist() == pytest.approx([2.5, 3.0])
    # ladder gives nested candidates, sorted by mean score, no duplicates
    p = segments_from_scores(s, fps, thresholds=(0.2, 0.5, 0.8))
    assert (np.diff(p[:, 0]) <= 0).all()
    assert len({tuple(r) for r in p[:, 1:].tolist()}) == len(p)
    assert [0.5, 1.5] in p[:, 1:].tolist() and [2.5, 3.0] in p[:, 1:].tolist()
    # min_frames drops short runs; empty input is empty
    assert len(segments_from_scores(s, fps, thresholds=(0.5,), min_frames=3)) == 1  # both 2-frame halves go
    assert segments_from_scores([], fps).shape == (0, 3)
    assert segments_from_scores(np.zeros(10), fps).shape == (0, 3)


def test_ap_hand_built() -> None:
    gt = {"v1": [[1.0, 2.0], [4.0, 6.0]], "v2": [[0.0, 1.0]], "real": []}
    props = {
        "v1": [[0.9, 1.0, 2.0], [0.8, 4.0, 5.0], [0.3, 1.1, 2.0]],  # exact, IoU 0.5, duplicate of #1
        "v2": [[0.7, 0.0, 0.9]],  # IoU 0.9
        "real": [[0.85, 0.0, 3.0]],  # false alarm on a real video
    }
    # ranking: 0.9 TP, 0.85 FP, 0.8 TP(iou .5), 0.7 TP(iou .9), 0.3 FP (duplicate)
    # @0.5: precision 1, 1/2, 2/3, 3/4, 3/5 at recall 1/3, 1/3, 2/3, 1, 1
    # envelope: recall (0,1/3] -> 1; (1/3, 2/3] -> 3/4; (2/3, 1] -> 3/4
    ap = localization_ap(props, gt, iou_thresholds=(0.5, 0.75, 0.95))
    assert ap[0.5] == pytest.approx(1 / 3 + 2 / 3 * 3 / 4)
    # @0.75: the IoU-0.5 proposal is an FP: TP, FP, FP, TP, FP -> envelope 1 on (0,1/3], 1/2 on (1/3,2/3]
    assert ap[0.75] == pytest.approx(1 / 3 + 1 / 3 * 1 / 2)
    # @0.95: only the exact one
    assert ap[0.95] == pytest.approx(1 / 3)


def test_ap_perfect_and_missing() -> None:
    gt = {"a": [[1.0, 2.0]]}
    assert localization_ap({"a": [[0.5, 1.0, 2.0]]}, gt)[0.5] == 1.0
    assert localization_ap({}, gt)[0.5] == 0.0  # nothing proposed
    r = localization_ap({"a": [[0.5, 1.0, 2.0]]}, {"a": []})[0.5]
    assert math.isnan(r) and "no ground-truth" in reason_of(r)
    with pytest.raises(ValueError):
        localization_ap({}, gt, protocol="coco")


def test_ap_lavdf_reference_protocol() -> None:
    # LAV-DF's reference integration leaves out [0, first recall]: one perfect hit scores 0
    gt = {"a": [[1.0, 2.0]]}
    assert localization_ap({"a": [[0.5, 1.0, 2.0]]}, gt, protocol="lavdf")[0.5] == 0.0
    # two segments, ranking TP, FP, TP: curve (r, p) = (.5, 1), (.5, .5), (1, 2/3);
    # reversed with (1, 0) in front: steps (1->1: 0), (1->.5: dx .5 * ymax 2/3), (.5->.5: 0)
    gt = {"a": [[0.0, 1.0], [2.0, 3.0]]}
    props = {"a": [[0.9, 0.0, 1.0], [0.8, 5.0, 6.0], [0.7, 2.0, 3.0]]}
    assert localization_ap(props, gt, iou_thresholds=(0.5,), protocol="lavdf")[0.5] == pytest.approx(0.5 * 2 / 3)
    # standard: envelope 1 on (0, .5], 2/3 on (.5, 1]
    assert localization_ap(props, gt, iou_thresholds=(0.5,))[0.5] == pytest.approx(0.5 + 0.5 * 2 / 3)
    # strict IoU > t in the reference: IoU exactly 0.5 is a miss there, a hit in standard
    props = {"a": [[0.9, 0.0, 0.5], [0.8, 2.0, 3.0]]}
    std = localization_ap(props, gt, iou_thresholds=(0.5,))[0.5]
    ref = localization_ap(props, gt, iou_thresholds=(0.5,), protocol="lavdf")[0.5]
    assert std == pytest.approx(1.0) and ref < std


def test_ar_hand_built() -> None:
    gt = {"v1": [[1.0, 2.0], [4.0, 6.0]], "v2": [[0.0, 1.0]]}
    props = {
        "v1": [[0.9, 1.0, 2.0], [0.8, 4.0, 5.0], [0.1, 4.0, 6.0]],
        "v2": [[0.7, 0.0, 0.8]],  # IoU 0.8
    }
    thrs = (0.5, 0.75, 0.95)
    ar = localization_ar(props, gt, n_list=(1, 2, 3), iou_thresholds=thrs)
    # N=1: v1 keeps only the exact [1,2] (1 of 2 segments at every t); v2 IoU .8 -> hit at .5/.75
    assert ar[1] == pytest.approx(np.mean([2 / 3, 2 / 3, 1 / 3]))
    # N=2: v1 adds [4,5] (IoU .5 with [4,6]) -> hit only at t = .5
    assert ar[2] == pytest.approx(np.mean([3 / 3, 2 / 3, 1 / 3]))
    # N=3: the exact [4,6] comes in at low score
    assert ar[3] == pytest.approx(np.mean([3 / 3, 3 / 3, 2 / 3]))
    # proposals order given does not matter (sorted by score inside)
    shuffled = {k: v[::-1] for k, v in props.items()}
    assert localization_ar(shuffled, gt, n_list=(1,), iou_thresholds=thrs)[1] == pytest.approx(ar[1])
    assert math.isnan(localization_ar(props, {"x": []}, n_list=(1,))[1])


def test_segments_round_trip_to_perfect_ap() -> None:
    fps = 25.0
    gt = {}
    props = {}
    rng = np.random.default_rng(0)
    for k in range(5):
        s = rng.uniform(0.0, 0.2, 100)
        a, b = 10 + 5 * k, 30 + 5 * k
        s[a:b] = rng.uniform(0.8, 1.0, b - a)
        gt[f"v{k}"] = [[a / fps, b / fps]]
        props[f"v{k}"] = segments_from_scores(s, fps)
    ap = localization_ap(props, gt)
    assert ap[0.5] == 1.0 and ap[0.95] == 1.0
    assert localization_ar(props, gt, n_list=(1,))[1] == 1.0
