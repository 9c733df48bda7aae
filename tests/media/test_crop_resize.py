"""Face crops are resized in two steps when the crop is at least twice the output (an integer box average,
then the area resize): about half the cost of one area resize at a non-integer ratio, and close to it."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from macbdf.config import PreprocessConfig
from macbdf.media import decode
from macbdf.media import prepare as prep
from macbdf.media.decode import fit_square


def _one_step(p: np.ndarray, size: int) -> np.ndarray:
    interp = cv2.INTER_AREA if p.shape[0] > size or p.shape[1] > size else cv2.INTER_LINEAR
    return cv2.resize(p, (size, size), interpolation=interp)


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    # smooth shapes plus fine grain, like a face crop (pure noise would make every resize look different)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 128 + 60 * np.sin(xx / 9.0) * np.cos(yy / 13.0) + 40 * ((xx - w / 2) ** 2 + (yy - h / 2) ** 2 < (h / 3) ** 2)
    img += rng.normal(0, 6, (h, w))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("side", [40, 96, 150, 191])
def test_below_twice_the_output_is_the_one_step_resize(side):
    p = _texture(side, side + 3)
    np.testing.assert_array_equal(fit_square(p, 96), _one_step(p, 96))


@pytest.mark.parametrize("side", [192, 384, 576, 960])
def test_even_ratios_differ_by_rounding_only(side):
    # ratio 2 is one box step (exact); 4, 6, 10: a box step of 2, 3, 5, then a 2:1 area step, so only
    # the rounding of the intermediate image differs (at most one grey level)
    p = _texture(side, side, seed=side)
    d = np.abs(fit_square(p, 96).astype(np.int16) - _one_step(p, 96))
    assert d.max() <= (0 if side == 192 else 1), d.max()


@pytest.mark.parametrize("h,w", [(193, 193), (213, 250), (300, 301), (479, 400), (1000, 998)])
def test_two_steps_stay_close_to_one(h, w):
    # At non-integer ratios: rounding of the intermediate image and the weights at block edges (a
    # sub-pixel shift where h % k rows are left out). On this texture (strong edges) 1.5-1.9 grey levels.
    p = _texture(h, w, seed=h)
    a, b = fit_square(p, 96).astype(np.int16), _one_step(p, 96).astype(np.int16)
    assert a.shape == b.shape == (96, 96)
    d = np.abs(a - b)
    assert 0 < d.mean() < 3.0 and np.percentile(d, 99) <= 24, (d.mean(), np.percentile(d, 99))


def test_crop_uses_it_for_every_plane(monkeypatch, tmp_path, clip_maker):
    seen: list[tuple[int, ...]] = []
    real = decode.fit_square

    def spy(p: np.ndarray, size: int) -> np.ndarray:
        seen.append(p.shape)
        return real(p, size)

    monkeypatch.setattr(decode, "fit_square", spy)
    path = clip_maker(tmp_path / "c.mp4", size=(640, 480), seconds=0.12, audio_rate=None, bar=True)
    _, f = next(iter(decode.iter_video_frames(path, 25.0)))
    out = f.crop((100, 60, 500, 460), 96)
    assert out.shape == (96, 96, 3) and out.dtype == np.uint8
    assert seen[0] == (400, 400) and seen[1] == seen[2] == (200, 200)   # Y, then the 4:2:0 chroma planes


@pytest.mark.media
def test_prepare_crops_close_to_one_step_resize(shared_media, monkeypatch):
    # A 512 x 512 talking head (crops of ~300 px): same faces, same boxes (detection reads its own grey
    # images), crops within about one grey level (1.03 measured).
    clip = shared_media / "real_hdtf_aoc.mp4"
    cfg = PreprocessConfig()
    got = prep.prepare_file(clip, cfg, max_frames=50)
    monkeypatch.setattr(decode, "fit_square", _one_step)
    ref = prep.prepare_file(clip, cfg, max_frames=50)
    assert got.flags == ref.flags and got.info["face_coverage"] == ref.info["face_coverage"]
    assert got.info["crop_frac"] == ref.info["crop_frac"]
    diff = np.abs(got.frames.astype(np.int16) - ref.frames.astype(np.int16))
    assert 0 < diff.mean() < 2.0, diff.mean()
