"""Bounded load: 50 concurrent uploads to a real uvicorn on loopback; no 5xx, no leaked temp files."""
from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def test_50_concurrent_requests(live_server, clip_dir: Path) -> None:
    base, upload_dir = live_server
    data = (clip_dir / "short.mp4").read_bytes()
    bad = (clip_dir / "notes.mp4").read_bytes()

    async def one(client: httpx.AsyncClient, i: int) -> tuple[int, dict]:
        payload, name = (bad, f"bad{i}.mp4") if i % 10 == 9 else (data, f"clip{i}.mp4")
        r = await client.post(base + "/v1/detect", files={"file": (name, payload, "video/mp4")})
        return r.status_code, r.json()

    async def main() -> list[tuple[int, dict]]:
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=300.0, limits=limits) as client:
            return await asyncio.gather(*(one(client, i) for i in range(50)))

    results = asyncio.run(main())
    codes = [c for c, _ in results]
    # The queue (64) holds all 50: every video is scored, none is refused or fails with 5xx.
    assert all(c < 500 for c in codes), codes
    for i, (code, body) in enumerate(results):
        if i % 10 == 9:
            assert code == 415 and body["path"] == f"bad{i}.mp4"
        else:
            assert code == 200 and body["error"] is None and body["path"] == f"clip{i}.mp4"
    h = httpx.get(base + "/healthz").json()
    assert h["jobs"]["queued"] == 0 and h["jobs"]["running"] == 0
    assert list(upload_dir.iterdir()) == []
