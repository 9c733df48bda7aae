"""Property-based hostile-input cases (hypothesis, derandomized: the same examples every run):
strict JSON of any nested result, segments from any scores, multipart bodies cut anywhere."""
from __future__ import annotations

import asyncio
import json
import os

import pytest
from hostile_media import strict_json

pytest.importorskip("hypothesis", reason="hypothesis not installed (test extras)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from macbdf.detect import find_segments, finite_json  # noqa: E402

HYP = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


@HYP
@given(st.recursive(st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.none() | st.text(max_size=5),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=4), kids, max_size=4),
                    max_leaves=20))
def test_finite_json_is_always_strict(obj) -> None:
    text = json.dumps(finite_json(obj), allow_nan=False)
    strict_json(text)


@HYP
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=60),
       st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=60),
       st.floats(min_value=0.5, max_value=60), st.floats(min_value=0.0, max_value=1.0))
def test_find_segments_never_fails(a, v, fps, thr) -> None:
    segs = find_segments(a, v, fps, thr)
    n = min(len(a), len(v))
    for s in segs:
        assert 0.0 <= s["start"] < s["end"] <= round(n / fps, 3) + 1e-9
        assert s["modality"] in ("audio", "video", "both")


@HYP
@given(st.binary(min_size=1, max_size=3000), st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=8),
       st.integers(min_value=0, max_value=4000))
def test_multipart_is_complete_or_refused(payload: bytes, sizes: list[int], cut: int) -> None:
    import tempfile

    from macbdf.serve.upload import UploadRejected, receive_multipart_file

    b = "hYpObOuNdArY"
    full = (f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.mp4\"\r\n\r\n".encode()
            + payload + f"\r\n--{b}--\r\n".encode())
    body = full[:cut]
    complete = len(body) >= len(full) - 2   # everything up to the closing "--BOUNDARY--" arrived

    async def chunks():
        i, k = 0, 0
        while i < len(body):
            step = sizes[k % len(sizes)]
            yield body[i:i + step]
            i, k = i + step, k + 1

    fd, name = tempfile.mkstemp()
    try:
        try:
            up = asyncio.run(receive_multipart_file(chunks(), f"multipart/form-data; boundary={b}", fd,
                                                    max_bytes=1 << 20))
        except UploadRejected as e:
            assert e.status == 400 and not complete
        else:
            # accepted only with the closing boundary, and then the file is exactly the payload
            assert complete and up.size == len(payload)
            with open(name, "rb") as f:
                assert f.read() == payload
    finally:
        os.close(fd)
        os.unlink(name)
