"""Stretches where the face track is lost are reported with their times (flag face_lost)."""
from __future__ import annotations

import numpy as np

from macbdf.media.prepare import face_lost_stretches


def test_face_lost_stretches_direct() -> None:
    fps = 25.0
    f = np.ones(200, bool)
    f[10:20] = False          # 0.4 s: too short to report
    f[50:80] = False          # 1.2 s
    f[190:] = False           # 0.4 s at the end: too short
    assert face_lost_stretches(f, fps) == [[2.0, 3.2]]
    f[185:] = False           # 0.6 s at the end: reported up to the end
    assert face_lost_stretches(f, fps) == [[2.0, 3.2], [7.4, 8.0]]
    assert face_lost_stretches(np.ones(10, bool), fps) == []
    assert face_lost_stretches(np.zeros(0, bool), fps) == []
    assert face_lost_stretches(np.zeros(30, bool), fps) == [[0.0, 1.2]]
    # a direct count: the reported total equals the number of missing frames in long runs
    rng = np.random.default_rng(0)
    g = np.repeat(rng.random(40) < 0.6, rng.integers(1, 30, 40))
    runs = face_lost_stretches(g, fps, min_s=0.0)
    assert round(sum(b - a for a, b in runs) * fps) == int((~g).sum())
