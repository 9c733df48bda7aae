"""End to end: `macbdf serve` on loopback, the page driven in headless Debian Chromium via Playwright."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed (Debian package `chromium`; `make test` installs it as root)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (test extras)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def test_upload_shows_verdict_chart_and_cursor(browser, live_server, clip_dir: Path) -> None:
    base, upload_dir = live_server
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/")
    page.wait_for_function("() => document.getElementById('limits').textContent.length > 0")
    page.set_input_files("#file", str(clip_dir / "good.mp4"))
    page.wait_for_function("() => document.getElementById('verdict').dataset.verdict !== ''", timeout=120_000)
    verdict = page.text_content("#verdict")
    assert verdict in ("FAKE", "REAL")
    assert page.get_attribute("#verdict", "data-verdict") == verdict.lower()
    assert page.is_visible("#result") and not page.is_visible("#error")
    assert page.text_content("#p-fake").endswith("%")
    assert page.text_content("#p-audio").endswith("%") and page.text_content("#p-video").endswith("%")
    assert "good.mp4" in page.text_content("#result-file")
    # the chart was drawn (non-blank canvas) and its cursor follows the video's currentTime
    drawn = page.evaluate("""() => { const c = document.getElementById('chart');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""")
    assert drawn > 500
    page.wait_for_function("() => document.getElementById('player').readyState >= 1", timeout=30_000)
    page.evaluate("() => { const v = document.getElementById('player'); v.currentTime = 0.8; }")
    page.wait_for_function("() => Math.abs(parseFloat(document.getElementById('chart').dataset.cursor) - 0.8) < 0.05",
                           timeout=30_000)
    assert errors == []
    page.close()
    assert list(upload_dir.iterdir()) == []


def test_bad_upload_shows_clear_error(browser, live_server, clip_dir: Path) -> None:
    base, upload_dir = live_server
    page = browser.new_page()
    page.goto(base + "/")
    page.set_input_files("#file", str(clip_dir / "notes.mp4"))
    page.wait_for_selector("#error:not(.hidden)", timeout=60_000)
    assert "not a video" in page.text_content("#error")
    assert not page.is_visible("#result")
    page.close()
    assert list(upload_dir.iterdir()) == []


def test_abstention_is_shown_as_no_verdict(browser, live_server, tmp_path: Path) -> None:
    """A single still frame (issue 15: a PNG named .mp4, cover art) gets "NO VERDICT" and the reason."""
    import av
    import numpy as np

    clip = tmp_path / "still.mkv"
    with av.open(str(clip), "w") as c:
        vs = c.add_stream("ffv1", rate=25)
        vs.width, vs.height, vs.pix_fmt = 160, 120, "yuv420p"
        for p in vs.encode(av.VideoFrame.from_ndarray(np.full((120, 160, 3), 90, np.uint8), format="rgb24")):
            c.mux(p)
        for p in vs.encode():
            c.mux(p)
    base, upload_dir = live_server
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/")
    page.set_input_files("#file", str(clip))
    page.wait_for_function("() => document.getElementById('verdict').dataset.verdict !== ''", timeout=120_000)
    assert page.get_attribute("#verdict", "data-verdict") == "abstain"
    assert page.text_content("#verdict") == "NO VERDICT"
    assert page.text_content("#p-fake") == "–" and "too short" in page.text_content("#threshold-info")
    assert errors == []
    page.close()
    assert list(upload_dir.iterdir()) == []
