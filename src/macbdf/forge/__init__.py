"""``macbdf forge``: labelled audio-visual deepfakes made from real talking-face clips.

Public API: :func:`forge` (returns a :class:`ForgeReport`), :data:`FAMILIES`, and the building
blocks in :mod:`macbdf.forge.audio_fakes` / :mod:`macbdf.forge.video_fakes` for one-off fakes.

Example:
    >>> from macbdf.forge import FAMILIES
    >>> FAMILIES[:3]
    ('self_blend', 'mouth_retime', 'face_swap')
"""
from macbdf.forge.audio_fakes import AUDIO_FAMILIES
from macbdf.forge.core import ForgeError, ForgeReport, forge
from macbdf.forge.plan import COMBO, FAMILIES
from macbdf.forge.video_fakes import VIDEO_FAMILIES

__all__ = ["forge", "ForgeReport", "ForgeError", "FAMILIES", "AUDIO_FAMILIES", "VIDEO_FAMILIES", "COMBO"]
