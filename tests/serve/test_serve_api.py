"""The HTTP API in-process (FastAPI TestClient): results, limits, sniffing, jobs, temp files."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from macbdf.detect import Detector
from macbdf.serve import ServeSettings, create_app
from macbdf.serve.upload import sniff_container

FIELDS = {"path", "p_fake", "p_audio_fake", "p_video_fake", "verdict", "threshold", "frame_scores",
          "segments", "flags", "error", "timings", "duration", "model", "abstain_reason"}


@pytest.fixture(scope="module")
def det(tiny_checkpoint: Path) -> Detector:
    return Detector.from_pretrained(tiny_checkpoint)


@pytest.fixture()
def upload_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "uploads"
    d.mkdir()
    yield d
    assert list(d.iterdir()) == [], "temporary upload files were left behind"


def _client(det: Any, upload_dir: Path, **kw: Any) -> TestClient:
    return TestClient(create_app(det, ServeSettings(tmp_dir=str(upload_dir), **kw)))


def _post(c: TestClient, data: bytes, name: str = "clip.mp4", **kw: Any) -> Any:
    return c.post("/v1/detect", files={"file": (name, data, "application/octet-stream")}, **kw)


def test_good_clip_answers_result_object(det: Detector, clip_dir: Path, upload_dir: Path) -> None:
    with _client(det, upload_dir) as c:
        r = _post(c, (clip_dir / "good.mp4").read_bytes(), "good.mp4")
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == FIELDS
        assert body["error"] is None and body["verdict"] in ("fake", "real")
        assert body["path"] == "good.mp4"
        assert len(body["frame_scores"]["video"]) == 40
        # the same clip through the Python API gives the same scores
        assert body["p_fake"] == pytest.approx(det(clip_dir / "good.mp4").p_fake, abs=1e-6)
        # the extension does not matter, the content does
        r2 = _post(c, (clip_dir / "long.mkv").read_bytes(), "renamed.txt")
        assert r2.status_code == 200 and r2.json()["error"] is None
        # answered synchronously: not kept in the job store
        assert c.app.state.jobs.jobs == {}


@pytest.mark.parametrize(
    "name,payload,status,words",
    [
        ("empty.mp4", b"", 400, "empty"),
        ("notes.mp4", b"just some text pretending to be a video\n" * 20, 415, "not a video"),
        ("page.mp4", b"<!doctype html><html><body>hi</body></html>", 415, "not a video"),
        ("image.mp4", b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, 415, "not a video"),
    ],
)
def test_rejected_uploads(det: Detector, upload_dir: Path, name: str, payload: bytes, status: int, words: str) -> None:
    with _client(det, upload_dir) as c:
        r = _post(c, payload, name)
        assert r.status_code == status, r.text
        body = r.json()
        assert words in body["error"] and body["detail"] == body["error"]
        assert body["verdict"] is None and "\n" not in body["error"]


def test_truncated_media_is_422_with_reason(det: Detector, clip_dir: Path, upload_dir: Path) -> None:
    with _client(det, upload_dir) as c:
        r = _post(c, (clip_dir / "truncated.mp4").read_bytes(), "truncated.mp4")
        assert r.status_code == 422, r.text
        assert r.json()["error"]


def test_oversized_upload_413(det: Detector, clip_dir: Path, upload_dir: Path) -> None:
    data = (clip_dir / "good.mp4").read_bytes()
    assert len(data) > 10_000
    with _client(det, upload_dir, max_upload_mb=0.005) as c:   # ~5 KB
        r = _post(c, data)
        assert r.status_code == 413
        assert "limit" in r.json()["error"]

        # a body streamed without Content-Length is counted while it is read
        def body() -> Iterator[bytes]:
            yield b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n\r\n"
            for _ in range(40):
                yield b"\x00" * 4096
            yield b"\r\n--xyz--\r\n"

        r = c.post("/v1/detect", content=body(), headers={"content-type": "multipart/form-data; boundary=xyz"})
        assert r.status_code == 413


def test_too_long_video_refused(det: Detector, clip_dir: Path, upload_dir: Path) -> None:
    with _client(det, upload_dir, max_duration_s=2.0) as c:
        r = _post(c, (clip_dir / "long.mkv").read_bytes(), "long.mkv")
        assert r.status_code == 422 and "limit" in r.json()["error"]


def test_malformed_requests(det: Detector, clip_dir: Path, upload_dir: Path) -> None:
    with _client(det, upload_dir) as c:
        r = c.post("/v1/detect", files={"other": ("a.mp4", b"abc")})
        assert r.status_code == 400 and "'file'" in r.json()["error"]
        r = c.post("/v1/detect", content=b"raw bytes", headers={"content-type": "application/octet-stream"})
        assert r.status_code == 400 and "multipart" in r.json()["error"]


def test_client_path_never_touches_filesystem(det: Detector, clip_dir: Path, upload_dir: Path, tmp_path: Path) -> None:
    with _client(det, upload_dir) as c:
        data = (clip_dir / "good.mp4").read_bytes()
        r = _post(c, data, "../../escape.mp4")
        assert r.status_code == 200
        assert r.json()["path"] == "escape.mp4"
        r = _post(c, data, "..\\..\\win.mp4", params={"mode": "job"})
        assert r.status_code == 202 and r.json()["filename"] == "win.mp4"
        while c.get(r.json()["url"]).json()["status"] != "done":
            time.sleep(0.05)
    assert not (tmp_path / "escape.mp4").exists() and not (upload_dir.parent.parent / "escape.mp4").exists()


def test_jobs_endpoint(det: Detector, clip_dir: Path, upload_dir: Path) -> None:
    with _client(det, upload_dir, sync_max_duration_s=2.0) as c:
        # a video longer than sync_max_duration_s is answered with a job
        r = _post(c, (clip_dir / "long.mkv").read_bytes(), "long.mkv")
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["status"] in ("queued", "running", "done") and r.headers["location"] == job["url"]
        # ?mode=job forces a job for a short one too
        r2 = _post(c, (clip_dir / "good.mp4").read_bytes(), "good.mp4", params={"mode": "job"})
        assert r2.status_code == 202
        for j in (job, r2.json()):
            for _ in range(600):
                state = c.get(j["url"]).json()
                if state["status"] == "done":
                    break
                time.sleep(0.05)
            assert state["status"] == "done"
            assert set(state["result"]) == FIELDS and state["result"]["error"] is None
        assert c.get("/v1/jobs/doesnotexist").status_code == 404


class _Blocking:
    """Wraps a Detector; detect() waits until released (to fill the queue deterministically)."""

    def __init__(self, det: Detector) -> None:
        self._det = det
        self.release = threading.Event()
        self.model, self.device, self.threshold = det.model, det.device, det.threshold
        self.preprocess, self.num_frames = det.preprocess, det.num_frames

    def detect(self, *a: Any, **kw: Any) -> Any:
        self.release.wait(30)
        return self._det.detect(*a, **kw)


def test_full_queue_503_then_recovers(det: Detector, clip_dir: Path, upload_dir: Path) -> None:
    blocking = _Blocking(det)
    data = (clip_dir / "good.mp4").read_bytes()
    with _client(blocking, upload_dir, concurrency=1, max_queue=1) as c:
        a = _post(c, data, params={"mode": "job"})
        b = _post(c, data, params={"mode": "job"})
        assert a.status_code == b.status_code == 202
        full = _post(c, data)
        assert full.status_code == 503
        assert "busy" in full.json()["error"] and full.headers["retry-after"]
        assert c.get("/healthz").json()["jobs"]["queued"] + c.get("/healthz").json()["jobs"]["running"] == 2
        blocking.release.set()
        for j in (a.json(), b.json()):
            for _ in range(600):
                if c.get(j["url"]).json()["status"] == "done":
                    break
                time.sleep(0.05)
        assert _post(c, data).status_code == 200


def test_job_timeout_reports_error(det: Detector, clip_dir: Path, upload_dir: Path) -> None:
    with _client(det, upload_dir, job_timeout_s=1e-9) as c:
        r = _post(c, (clip_dir / "good.mp4").read_bytes())
        assert r.status_code == 422 and r.json()["error"] == "detection timed out"


def test_healthz_openapi_and_page(det: Detector, upload_dir: Path) -> None:
    with _client(det, upload_dir, max_upload_mb=12) as c:
        h = c.get("/healthz").json()
        assert h["status"] == "ok" and h["limits"]["max_upload_mb"] == 12 and h["model"] == "tiny"
        spec = c.get("/openapi.json").json()
        assert {"/v1/detect", "/v1/jobs/{job_id}", "/healthz"} <= set(spec["paths"])
        body = spec["paths"]["/v1/detect"]["post"]["requestBody"]["content"]["multipart/form-data"]
        assert body["schema"]["properties"]["file"]["format"] == "binary"
        assert {"200", "202", "413", "415", "503"} <= set(spec["paths"]["/v1/detect"]["post"]["responses"])
        page = c.get("/")
        assert page.status_code == 200 and 'id="verdict"' in page.text and "/static/app.js" in page.text
        assert "http://" not in page.text and "https://" not in page.text   # nothing from other hosts
        js = c.get("/static/app.js")
        assert js.status_code == 200 and "currentTime" in js.text
        assert "default-src 'self'" in page.headers["content-security-policy"]


def test_sniff_container_signatures() -> None:
    assert sniff_container(b"\x00\x00\x00\x20ftypisom" + b"\x00" * 20) == "mp4"
    assert sniff_container(b"\x1a\x45\xdf\xa3" + b"\x00" * 20) == "matroska"
    assert sniff_container(b"RIFF\x00\x00\x00\x00AVI LIST") == "avi"
    assert sniff_container(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None
    assert sniff_container(bytes([0x47]) + b"\x00" * 187 + bytes([0x47]) + b"\x00" * 10) == "mpeg-ts"
    assert sniff_container(b"GIF89a" + b"\x00" * 30) is None
