"""Issue 15, cases 1 and 8 on the server: NaN audio answers 200 with strict JSON (was 500); a body
without its closing boundary is refused (was half a file scored); 422 answers never show temp paths."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hostile_media import remux_with_audio, strict_json, tone

from macbdf.serve import ServeSettings, create_app


@pytest.fixture()
def upload_dir(tmp_path: Path):
    d = tmp_path / "uploads"
    d.mkdir()
    yield d
    assert list(d.iterdir()) == [], "temporary upload files were left behind"


def _client(det: Any, upload_dir: Path) -> TestClient:
    return TestClient(create_app(det, ServeSettings(tmp_dir=str(upload_dir))))


def test_nan_audio_upload_is_200_strict_json(det, clip_dir: Path, tmp_path: Path, upload_dir: Path) -> None:
    wave = tone(1.6)
    wave[::40] = np.nan
    data = remux_with_audio(clip_dir / "good.mp4", tmp_path / "nan.mkv", wave).read_bytes()
    with _client(det, upload_dir) as c:
        r = c.post("/v1/detect", files={"file": ("nan.mkv", data, "video/x-matroska")})
    assert r.status_code == 200, r.text
    body = strict_json(r.text)
    assert "non_finite_audio" in body["flags"] and body["p_audio_fake"] is None
    assert body["verdict"] in ("real", "fake", "abstain")


def test_multipart_without_closing_boundary_is_refused(det, clip_dir: Path, upload_dir: Path) -> None:
    video = (clip_dir / "good.mp4").read_bytes()
    b = "XyZboundary42"
    head = (f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"half.mp4\"\r\n"
            "Content-Type: video/mp4\r\n\r\n").encode()
    cut = head + video[: len(video) // 2]                      # cut off: no "\r\n--b--"
    whole = head + video + f"\r\n--{b}--\r\n".encode()
    with _client(det, upload_dir) as c:
        hdr = {"content-type": f"multipart/form-data; boundary={b}"}
        r = c.post("/v1/detect", content=cut, headers=hdr)
        assert r.status_code == 400 and "closing boundary" in r.json()["error"]
        ok = c.post("/v1/detect", content=whole, headers=hdr)
        assert ok.status_code == 200 and ok.json()["verdict"] in ("real", "fake", "abstain")


def test_error_answers_show_no_server_paths(det, clip_dir: Path, upload_dir: Path) -> None:
    with _client(det, upload_dir) as c:
        for name in ("truncated.mp4", "notes.mp4", "empty.mp4"):
            r = c.post("/v1/detect", files={"file": (name, (clip_dir / name).read_bytes(), "video/mp4")})
            assert 400 <= r.status_code < 500, r.text
            assert str(upload_dir) not in r.text and "upload-" not in r.text, r.text
