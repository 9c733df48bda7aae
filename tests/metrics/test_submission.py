"""Benchmark submission formats (AV-Deepfake1M, LAV-DF): writers, scorers, hand-computed values, the
official `avdeepfake1m` package, and the detect / evaluate command lines."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from macbdf.cli import main
from macbdf.metrics.submission import (
    AR_IOU,
    AV1M_AP_IOU,
    AV1M_AR_N,
    SubmissionError,
    clip_proposals,
    parse_av1m_classification,
    parse_lavdf_segment_csv,
    score_av1m_classification,
    score_av1m_localization,
    score_submission,
    submission_key,
    write_submission_files,
)

META = [
    {"file": "a.mp4", "fake_segments": [[1.0, 2.0]]},
    {"file": "b.mp4", "fake_segments": []},
    {"file": "c.mp4", "fake_segments": [[0.0, 2.0], [3.0, 4.0]]},
]
PROPS = {
    "a.mp4": [[0.9, 1.0, 2.0]],
    "b.mp4": [[0.8, 0.0, 1.0]],
    "c.mp4": [[0.7, 0.0, 2.0], [0.6, 3.1, 4.0], [0.5, 5.0, 6.0]],
}


def test_localisation_hand_computed_values():
    props = {k: np.asarray(v) for k, v in PROPS.items()}
    r = score_av1m_localization(props, META, ap_iou=(0.5, 0.95), ar_n=(1, 2))
    # IoU 0.5, ranked: 0.9 TP, 0.8 FP (real video), 0.7 TP, 0.6 TP (IoU 0.9), 0.5 FP; 3 segments.
    # precision 1, 1/2, 2/3, 3/4, 3/5 at recall 1/3, 1/3, 2/3, 1, 1. The reference sums, per recall
    # step, the step times the best precision at that recall or higher, and leaves out the first step
    # (recall 0 -> 1/3): (2/3 - 1/3) * 3/4 + (1 - 2/3) * 3/4 = 0.5
    assert r["ap"]["0.5"] == pytest.approx(0.5)
    # IoU 0.95: 0.6 is now a miss (IoU 0.9): TP FP TP FP FP -> (2/3 - 1/3) * 2/3 = 2/9
    assert r["ap"]["0.95"] == pytest.approx(2 / 9)
    # AR@1: a's segment and c's first segment, at every IoU threshold: 2 of 3
    assert r["ar"]["1"] == pytest.approx(2 / 3)
    # AR@2: c's second segment too at IoU 0.9 > t for t = 0.5 .. 0.85 (8 of the 10 thresholds)
    assert r["ar"]["2"] == pytest.approx((2 + 8 / 10) / 3)
    assert r["missing"] == [] and r["n_segments"] == 3


def test_classification_hand_computed_auc_and_missing():
    meta = META + [{"file": "d.mp4", "fake_segments": []}, {"file": "e.mp4", "fake_segments": [[0, 1]]}]
    scores = parse_av1m_classification("a.mp4;0.9\nb.mp4;0.8\n\nc.mp4;0.3\nd.mp4;0.1\nzz.mp4;0.5\n")
    r = score_av1m_classification(scores, meta)
    # fakes a (0.9), c (0.3) vs reals b (0.8), d (0.1): 3 of 4 pairs ordered
    assert r["auc"] == pytest.approx(0.75)
    assert r["n"] == 4 and r["n_fake"] == 2 and r["missing"] == ["e.mp4"] and r["unmatched_predictions"] == 1
    with pytest.raises(SubmissionError, match=r"sub:2: expected 'file;score'"):
        parse_av1m_classification("a.mp4;0.9\nno score here\n", where="sub")


def test_keys_match_by_path_suffix():
    scores = {"/data/av1m/test/id1/a.mp4": 0.9, "/data/av1m/test/id2/a.mp4": 0.2}
    meta = [{"file": "id1/a.mp4", "fake_segments": [[0, 1]]}, {"file": "id2/a.mp4", "fake_segments": []}]
    assert score_av1m_classification(scores, meta)["auc"] == 1.0
    assert submission_key("/data/av1m/test/id1/a.mp4", "/data/av1m/test") == "id1/a.mp4"
    assert submission_key("/elsewhere/x.mp4", "/data/av1m/test") == "/elsewhere/x.mp4"


def test_clip_proposals_never_empty():
    fs = {"audio": [0.1] * 10, "video": [0.1, 0.1, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1], "fps": 5.0}
    props = clip_proposals(fs, duration=2.0)
    assert props[0][1:] == [0.4, 1.0]                      # frames 2..4 at 5 fps
    flat = clip_proposals({"audio": [0.05] * 4, "video": [0.1] * 4, "fps": 2.0}, duration=2.0)
    assert flat == [[0.1, 0.0, 2.0]]                       # no segment: the whole clip, mean score
    assert clip_proposals({"audio": [], "video": [], "fps": 0.0}, duration=1.5) == [[0.0, 0.0, 1.5]]


def _official_evaluation():
    """avdeepfake1m._evaluation without the package __init__ (which imports lightning, torchvision ...)."""
    spec = importlib.util.find_spec("avdeepfake1m")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the official avdeepfake1m package is not installed (pip install --no-deps avdeepfake1m)")
    folder = spec.submodule_search_locations[0]
    so = [f for f in os.listdir(folder) if f.startswith("_evaluation") and f.endswith(".so")]
    if not so:
        pytest.skip("avdeepfake1m has no compiled _evaluation module on this platform")
    path = os.path.join(folder, so[0])
    loader = importlib.machinery.ExtensionFileLoader("avdeepfake1m._evaluation", path)
    mod = importlib.util.module_from_spec(importlib.util.spec_from_file_location("avdeepfake1m._evaluation", path,
                                                                                 loader=loader))
    try:
        loader.exec_module(mod)
    except ImportError as e:
        pytest.skip(f"cannot import avdeepfake1m._evaluation: {e}")
    return mod


def test_matches_the_official_avdeepfake1m_package(tmp_path):
    ev = _official_evaluation()
    rng = np.random.default_rng(7)
    meta, props = [], {}
    for i in range(40):
        dur = float(rng.uniform(3, 12))
        n_seg = int(rng.integers(0, 3))
        starts = np.sort(rng.uniform(0, dur - 1, n_seg))
        segs = [[round(float(s), 2), round(float(min(dur, s + rng.uniform(0.2, 1.0))), 2)] for s in starts]
        meta.append({"file": f"v{i:03d}.mp4", "fake_segments": segs, "duration": dur})
        rows = []
        for _ in range(int(rng.integers(1, 60))):        # >= 1 proposal per video: the loader panics on []
            if segs and rng.random() < 0.5:              # near a true segment, else anywhere
                a, b = segs[int(rng.integers(len(segs)))]
                s, e = a + rng.normal(0, 0.15), b + rng.normal(0, 0.15)
            else:
                s = rng.uniform(0, dur - 0.3)
                e = s + rng.uniform(0.1, 2.0)
            # full-precision values: no score ties, no IoU exactly at a threshold (it reads float32)
            rows.append([float(rng.random()), float(max(0.0, s)), float(max(s + 0.05, e))])
        props[meta[-1]["file"]] = rows
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "unsorted.json").write_text(json.dumps(props))
    # The official scorer matches a video's proposals in file order (it expects them sorted by score,
    # as `detect --av1m-loc` writes them) and ranks them globally afterwards; ours sorts first. On
    # sorted lists the two must agree; ours does not depend on the order within a video.
    (tmp_path / "loc.json").write_text(json.dumps({k: sorted(v, key=lambda r: -r[0]) for k, v in props.items()}))
    ours = score_submission(tmp_path / "loc.json", tmp_path / "meta.json", "av1m-loc")
    assert score_submission(tmp_path / "unsorted.json", tmp_path / "meta.json", "av1m-loc")["ap"] == ours["ap"]
    ap = ev.ap_1d(str(tmp_path / "loc.json"), str(tmp_path / "meta.json"), "file", "fake_segments", 1.0,
                  list(AV1M_AP_IOU))
    ar = ev.ar_1d(str(tmp_path / "loc.json"), str(tmp_path / "meta.json"), "file", "fake_segments", 1.0,
                  list(AV1M_AR_N), list(AR_IOU))
    ap = {round(float(k), 4): v for k, v in ap.items()}   # its keys are float32 (0.949999988...)
    assert 0.01 < ap[0.5] < 0.95 and 0.1 < ar[50] < 1.0   # a non-trivial case
    for t in AV1M_AP_IOU:
        assert ours["ap"][str(t)] == pytest.approx(ap[t], abs=1e-4), t
    for n in AV1M_AR_N:
        assert ours["ar"][str(n)] == pytest.approx(ar[n], abs=1e-4), n


def _results(root: Path) -> list[dict]:
    fs_fake = {"audio": [0.1] * 20, "video": [0.1] * 5 + [0.95] * 10 + [0.1] * 5, "fps": 10.0}
    fs_real = {"audio": [0.1] * 20, "video": [0.2] * 20, "fps": 10.0}
    return [
        {"path": str(root / "test" / "000001.mp4"), "p_fake": 0.91, "frame_scores": fs_fake, "duration": 2.0, "error": None},
        {"path": str(root / "test" / "000002.mp4"), "p_fake": 0.12, "frame_scores": fs_real, "duration": 2.0, "error": None},
        {"path": str(root / "test" / "broken.mp4"), "p_fake": None, "frame_scores": {}, "duration": None,
         "error": "not a video"},
    ]


def test_writers_and_evaluate_cli_round_trip(tmp_path, capsys):
    root = tmp_path / "lavdf"
    cls, loc, seg = tmp_path / "cls.txt", tmp_path / "loc.json", tmp_path / "seg"
    counts = write_submission_files(_results(root), av1m_cls=cls, av1m_loc=loc, lavdf_segments=seg, root=root)
    assert counts == {"written": 2, "skipped": 1}
    assert cls.read_text() == "test/000001.mp4;0.91\ntest/000002.mp4;0.12\n"
    loc_obj = json.loads(loc.read_text())
    assert set(loc_obj) == {"test/000001.mp4", "test/000002.mp4"} and all(loc_obj.values())
    assert loc_obj["test/000001.mp4"][0][1:] == [0.5, 1.5]
    csv_text = (seg / "test" / "000001.csv").read_text()
    assert csv_text.splitlines()[:2] == ["begin,end,score", "5,15," + csv_text.splitlines()[1].split(",")[2]]
    np.testing.assert_allclose(parse_lavdf_segment_csv(csv_text, fps=10.0)[0, 1:], [0.5, 1.5])

    # LAV-DF metadata: fake_periods in seconds; 10 fps from video_frames / duration (not the default 25)
    meta = [{"file": "test/000001.mp4", "fake_periods": [[0.5, 1.5]], "duration": 2.0, "video_frames": 20},
            {"file": "test/000002.mp4", "fake_periods": [], "duration": 2.0, "video_frames": 20}]
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--submission", str(seg), "--metadata", str(tmp_path / "metadata.json"),
                 "--format", "lavdf", "--json", str(out), "--quiet"]) == 0
    rep = json.loads(out.read_text())
    # the one fake segment is found exactly (AR 1), but the reference AP leaves out the recall step of
    # the first proposal, which here is the only step: AP 0 (documented in metrics/localization.py)
    assert rep["ar"]["100"] == pytest.approx(1.0) and rep["ap"]["0.5"] == 0.0 and rep["missing"] == []
    assert main(["evaluate", "--submission", str(cls), "--metadata", str(tmp_path / "metadata.json"),
                 "--format", "av1m-cls", "--quiet", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["auc"] == 1.0
    assert main(["evaluate", "--submission", str(loc), "--metadata", str(tmp_path / "metadata.json"),
                 "--format", "av1m-loc"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["ap"]) == {"0.5", "0.75", "0.9", "0.95"} and set(printed["ar"]) == {"50", "30", "20", "10", "5"}
    # a video of the metadata without a prediction: scored without it, exit 1
    (tmp_path / "more.json").write_text(json.dumps(meta + [{"file": "test/000003.mp4", "fake_periods": []}]))
    assert main(["evaluate", "--submission", str(cls), "--metadata", str(tmp_path / "more.json"),
                 "--format", "av1m-cls", "--quiet", "--json", str(out)]) == 1
    assert json.loads(out.read_text())["missing"] == ["test/000003.mp4"]


def test_evaluate_submission_usage_errors(tmp_path, capsys):
    (tmp_path / "m.json").write_text(json.dumps({"not": "a list"}))
    (tmp_path / "s.txt").write_text("a.mp4;0.5\n")
    assert main(["evaluate", "--submission", str(tmp_path / "s.txt"), "--metadata", str(tmp_path / "m.json"),
                 "--format", "av1m-cls"]) == 2
    err = capsys.readouterr().err
    assert "expected a JSON list" in err and len(err.strip().splitlines()) == 1
    assert main(["evaluate", "--submission", str(tmp_path / "s.txt")]) == 2
    assert "--metadata and --format" in capsys.readouterr().err
    assert main(["evaluate", "--submission", str(tmp_path / "s.txt"), "--metadata", str(tmp_path / "m.json"),
                 "--format", "lavdf"]) == 2
    assert main(["evaluate"]) == 2


def test_detect_writes_the_benchmark_files(tiny_checkpoint, clip_dir, tmp_path):
    cls, loc, seg = tmp_path / "c.txt", tmp_path / "l.json", tmp_path / "segs"
    rc = main(["detect", str(clip_dir / "short.mp4"), str(clip_dir / "empty.mp4"), "--checkpoint", str(tiny_checkpoint),
               "--quiet", "--av1m-cls", str(cls), "--av1m-loc", str(loc), "--lavdf-segments", str(seg),
               "--submission-root", str(clip_dir)])
    assert rc == 1                                         # the empty file fails; the other is written
    lines = cls.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("short.mp4;") and 0.0 <= float(lines[0].split(";")[1]) <= 1.0
    props = json.loads(loc.read_text())
    assert list(props) == ["short.mp4"] and len(props["short.mp4"]) >= 1
    assert all(0.0 <= s <= 1.0 and 0.0 <= a < b for s, a, b in props["short.mp4"])
    assert (seg / "short.csv").read_text().startswith("begin,end,score\n")


@pytest.mark.parametrize("name", ["macbdf.metrics.submission", "macbdf.data.audit", "macbdf.data.methods"])
def test_docstring_examples_of_the_issue_12_modules(name):
    import doctest
    import importlib

    assert doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS).failed == 0
