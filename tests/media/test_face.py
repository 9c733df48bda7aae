"""Face tracker (unit) and detector on real faces (media)."""
from __future__ import annotations

import numpy as np
import pytest

from macbdf.config import PreprocessConfig
from macbdf.media.face import FaceTracker, HaarFaceDetector, create_face_detector
from macbdf.media.prepare import prepare_file


def _det(x, y, s):
    return np.array([[x, y, s, s, 1.0]], np.float32)


def test_interpolates_between_keyframes_and_applies_margin():
    tr = FaceTracker(640, 480, detect_every=5, margin=0.25, smooth_radius=0)
    tr.add(0, _det(100, 100, 100))
    tr.add(5, _det(150, 100, 100))
    (x0, y0, x1, y1), found = tr.box(2)
    assert found
    assert x1 - x0 == pytest.approx(150.0)              # side 100 x (1 + 2 * 0.25)
    assert (x0 + x1) / 2 == pytest.approx(150 + 0.4 * 50)  # centre moves linearly 150 -> 200


def test_main_track_is_the_largest_persistent_face():
    tr = FaceTracker(640, 480, detect_every=5, smooth_radius=0)
    for k in range(0, 50, 5):
        dets = [_det(400, 100, 120)[0]]
        if k == 10:
            dets.append(_det(50, 300, 200)[0])        # a one-off larger false positive
        tr.add(k, np.array(dets))
    box, found = tr.box(30)
    assert found and abs((box[0] + box[2]) / 2 - 460) < 1


def test_smoothing_damps_jitter():
    rng = np.random.default_rng(0)
    tr = FaceTracker(640, 480, detect_every=5, smooth_radius=2)
    for k in range(0, 100, 5):
        j = rng.normal(0, 6, 3)
        tr.add(k, _det(200 + j[0], 150 + j[1], 120 + j[2]))
    sides = [tr.box(k)[0][2] - tr.box(k)[0][0] for k in range(10, 90, 5)]
    assert np.std(sides) < 6 * 1.5 * 0.6   # raw side jitter (std 6 px x 1.5 margin) clearly reduced


def test_no_face_gives_centre_square_and_misses_are_held():
    tr = FaceTracker(640, 480, detect_every=5)
    box, found = tr.box(3)
    assert not found and box == (80.0, 0.0, 560.0, 480.0)
    tr.add(0, _det(100, 100, 100))
    tr.add(5, np.zeros((0, 5)))
    far, found = tr.box(200)
    assert not found and far == tr.box(0)[0]             # last known box held


def test_detector_factory():
    assert isinstance(create_face_detector(), HaarFaceDetector)
    with pytest.raises(FileNotFoundError):
        create_face_detector("missing_yunet.onnx")


@pytest.mark.media
def test_haar_finds_real_face_and_crop_is_centred(shared_media):
    clip = prepare_file(shared_media / "real_retalking_face3.mp4", PreprocessConfig(), max_frames=40)
    assert clip.info["face_coverage"] > 0.9 and "no_face" not in clip.flags
    # Skin dominates the crop centre, not the (darker) background at the borders of the frame.
    c = clip.frames[:, 32:64, 32:64].astype(float)
    assert c[..., 0].mean() > c[..., 2].mean()


def test_nested_boxes_are_dropped():
    from macbdf.media.face import drop_nested

    dets = np.array([[100, 100, 200, 200, 1], [150, 130, 90, 90, 1], [400, 50, 60, 60, 1]], np.float32)
    kept = drop_nested(dets)
    assert kept[:, 2].tolist() == [200, 60]     # the eye-region box inside the face goes


@pytest.mark.media
def test_close_up_clip_crops_the_whole_face(shared_media):
    # Haar also fires on the eye region of this face; the crop must follow the whole face
    # (true face ~0.32 of the frame side, x1.5 margin), not the inner box (~0.15).
    clip = prepare_file(shared_media / "real_retalking_face1.mp4", PreprocessConfig(), max_frames=60)
    assert clip.info["crop_frac"] > 0.38


def test_speaking_face_takes_the_track_from_a_larger_silent_one():
    """Two faces of comparable size: the one whose mouth moves wins, once, without flicker."""
    rng = np.random.default_rng(0)
    tr = FaceTracker(640, 480, detect_every=5, smooth_radius=0)
    still = rng.normal(size=(12, 20)).astype(np.float32)
    for k in range(0, 100, 5):
        dets = np.array([_det(380, 100, 150)[0], _det(60, 120, 120)[0]])     # big silent, smaller speaker
        talking = rng.normal(size=(12, 20)).astype(np.float32)             # a new mouth shape each key frame
        tr.add(k, dets, [still + 0.05 * rng.normal(size=(12, 20)).astype(np.float32), talking])
        if k == 5:
            box, _ = tr.box(5)
            assert (box[0] + box[2]) / 2 > 320                              # at first: the larger face
    box, found = tr.box(95)
    assert found and (box[0] + box[2]) / 2 < 320                            # then: the speaker
    assert len(tr.switches) == 1 and tr.switches[0] <= 25


def test_without_patches_or_with_one_face_nothing_changes():
    tr = FaceTracker(640, 480, detect_every=5, smooth_radius=0)
    rng = np.random.default_rng(1)
    for k in range(0, 60, 5):
        tr.add(k, _det(380, 100, 150), [rng.normal(size=(12, 20)).astype(np.float32)])
    assert tr.switches == []
    tr2 = FaceTracker(640, 480, detect_every=5, smooth_radius=0)
    for k in range(0, 60, 5):
        tr2.add(k, np.array([_det(380, 100, 150)[0], _det(60, 120, 120)[0]]))
    box, _ = tr2.box(55)
    assert (box[0] + box[2]) / 2 > 320 and tr2.switches == []


def _split_screen(path, speaker_clip, still_clip, seconds=4.0):
    """Left: a real person talking; right: a frozen frame of another, in grey and a bit larger."""
    import av
    import cv2

    def frames(p, n):
        with av.open(str(p)) as c:
            out = []
            for f in c.decode(video=0):
                out.append(f.to_ndarray(format="rgb24"))
                if len(out) >= n:
                    break
        return out

    n = int(seconds * 25)
    talk = frames(speaker_clip, n)
    still = frames(still_clip, 1)[0]
    h = 360
    left = [cv2.resize(f, (int(f.shape[1] * h * 0.8 / f.shape[0]), int(h * 0.8))) for f in talk]
    right = cv2.resize(still, (int(still.shape[1] * h / still.shape[0]), h))
    right = np.repeat(cv2.cvtColor(right, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 1280, h, "yuv420p"
        for f in left:
            canvas = np.zeros((h, 1280, 3), np.uint8)
            canvas[(h - f.shape[0]) // 2:(h - f.shape[0]) // 2 + f.shape[0], 40:40 + f.shape[1]] = f[:, : 600]
            canvas[:, 1280 - min(600, right.shape[1]):] = right[:, : 600]
            for p in s.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.mark.media
def test_split_screen_interview_crops_the_speaking_face(shared_media, tmp_path):
    """A real talking face beside a larger frozen one: the crops follow the speaker (colour), flagged."""
    clip = _split_screen(tmp_path / "split.mp4", shared_media / "real_hdtf_aoc.mp4", shared_media / "real_hdtf_hill.mp4")
    out = prepare_file(clip, PreprocessConfig())
    sat = np.array([np.abs(f.astype(int) - f.mean(axis=2, keepdims=True)).mean() for f in out.frames])
    # the grey (silent) face has no colour; the speaker's crops do, from ~2 s on
    assert (sat[50:] > 3).mean() > 0.9, sat[::10].round(1)
    assert "speaker_switch" in out.flags and out.info["speaker_switch_s"][0] < 2.0
