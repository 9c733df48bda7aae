"""Synthetic audio-visual deepfake benchmark: procedural talking heads with procedural speech,
seven manipulation families, written as real MP4 files in the FakeAVCeleb or LAV-DF layout.

Example:
    >>> import tempfile
    >>> from macbdf.synth import generate
    >>> out = generate(tempfile.mkdtemp(), "lavdf", num_clips=4, seed=0,
    ...                duration_range=(1.0, 1.2), size=96, progress=False)
    >>> (out / "metadata.json").is_file()
    True
"""
from __future__ import annotations

from macbdf.synth.generate import SynthError, SynthReport, generate, synthesize
from macbdf.synth.plan import AUDIO_FAMILIES, FAMILIES, LAYOUTS, VIDEO_FAMILIES, ClipSpec, make_plan

__all__ = [
    "generate", "synthesize", "SynthError", "SynthReport", "make_plan", "ClipSpec",
    "LAYOUTS", "FAMILIES", "VIDEO_FAMILIES", "AUDIO_FAMILIES",
]
