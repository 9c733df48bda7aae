"""Serve-test fixtures; the clips (`clip_dir`) and `tiny_checkpoint` come from tests/conftest.py."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    yield


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    """`macbdf serve` in a subprocess on loopback (real uvicorn); yields (base_url, upload_dir)."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    tmp_path = tmp_path_factory.mktemp("server")
    upload_dir = tmp_path / "uploads"
    upload_dir.mkdir()
    port = _free_port()
    log = open(tmp_path / "server.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "macbdf", "serve", "--checkpoint", str(tiny_checkpoint), "--host", "127.0.0.1",
         "--port", str(port), "--tmp-dir", str(upload_dir), "--queue", "64", "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # start-up imports torch; poll instead of sleeping a fixed time
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read()}")
            try:
                if httpx.get(base + "/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("server did not come up")
        yield base, upload_dir
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
