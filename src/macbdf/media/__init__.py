"""Media pipeline: decode (PyAV), face track (OpenCV), log-mel (Eq. 1), per-file API (the cache is `macbdf.data.cache`).

Example:
    >>> from macbdf.media import prepare_file, PreprocessConfig   # doctest: +SKIP
    >>> clip = prepare_file("talk.mp4", PreprocessConfig())         # doctest: +SKIP
"""
from __future__ import annotations

from macbdf.config import PreprocessConfig
from macbdf.media.audio import log_mel_spectrogram, mel_filterbank
from macbdf.media.decode import MediaError, MediaInfo, probe
from macbdf.media.face import FaceTracker, HaarFaceDetector, YuNetFaceDetector, create_face_detector
from macbdf.media.prepare import PreparedClip, iter_windows, prepare_file

__all__ = ["PreprocessConfig", "MediaError", "MediaInfo", "PreparedClip", "prepare_file", "iter_windows",
           "probe", "log_mel_spectrogram", "mel_filterbank", "create_face_detector", "HaarFaceDetector",
           "YuNetFaceDetector", "FaceTracker"]
