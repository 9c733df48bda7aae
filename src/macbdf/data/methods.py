"""Per-modality manipulation methods of a record: the class keys of the intra-modal losses L_vv / L_aa.

The intra-modal supervised contrastive terms group embeddings of ONE modality by how that modality
was made. A record carries one joint ``method`` for the whole sample (``synth_faceswap-tts``,
FakeAVCeleb ``faceswap-wav2lip``, LAV-DF ``both_modified``), so the video embedding of a
faceswap+tts clip would be pushed away from a faceswap-only clip, a difference only the audio shows.
`modality_methods` splits the joint method into (video method, audio method); an authentic
modality is ``"real"``. The reading, in order:

1. ``extra["video_method"]`` / ``extra["audio_method"]`` when the record gives them (any adapter or
   a generic manifest can set them).
2. Synthetic benchmark (``method`` = ``synth_<video family>-<audio family>``, families have no
   hyphen): with both tracks fake the first part is the video family, the second the audio family;
   with one fake track that track gets the one family.
3. FakeAVCeleb (``dataset == "fakeavceleb"``): every fake audio is RTVC voice cloning, so the audio
   method is ``rtvc``; the video method is the whole method string (``faceswap-wav2lip`` is a face swap
   then a lip sync, both visual).
4. LAV-DF / AV-Deepfake1M (``real``, ``visual_modified``, ``audio_modified``, ``both_modified``): the
   joint method only says which tracks were changed, and each dataset uses one generator per modality,
   so a fake track's method is ``modified``.
5. Anything else (DFDC ``dfdc``, folder datasets): only a joint method is known; each fake track gets
   it (the former behaviour), a fake without a method gets ``"fake"``.

Example:
    >>> from macbdf.data.manifest import SampleRecord as R
    >>> modality_methods(R("a", "a", label=1, video_label=1, audio_label=1, method="synth_faceswap-tts"))
    ('faceswap', 'tts')
    >>> modality_methods(R("b", "b", label=1, video_label=0, audio_label=1, method="synth_tts"))
    ('real', 'tts')
"""
from __future__ import annotations

from typing import Sequence

from macbdf.data.manifest import SampleRecord

__all__ = ["modality_methods", "build_modality_vocabs", "FAKEAVCELEB_AUDIO_METHOD"]

FAKEAVCELEB_AUDIO_METHOD = "rtvc"
_MODIFY_TYPES = {"visual_modified", "audio_modified", "both_modified"}


def modality_methods(rec: SampleRecord) -> tuple[str, str]:
    """(video method, audio method) of a record; ``"real"`` for an authentic (or unlabelled-real) track.

    A track with an unknown per-modality label is treated as fake when the sample is fake (its key
    is then only used where the label is known: `contrast_keys` skips unknown labels).
    """
    fake = bool(rec.label)
    vfake = bool(rec.video_label) if rec.video_label is not None else fake
    afake = bool(rec.audio_label) if rec.audio_label is not None else fake
    joint = rec.method if rec.method and rec.method != "real" else "fake"
    explicit_v, explicit_a = rec.extra.get("video_method"), rec.extra.get("audio_method")
    if joint.startswith("synth_"):
        parts = joint[len("synth_"):].split("-")
        if vfake and afake and len(parts) == 2:
            v, a = parts
        else:
            v = a = parts[0] if len(parts) == 1 else joint
    elif rec.dataset == "fakeavceleb":
        v, a = joint, FAKEAVCELEB_AUDIO_METHOD
    elif joint in _MODIFY_TYPES:
        v = a = "modified"
    else:
        v = a = joint
    v = str(explicit_v) if explicit_v else v
    a = str(explicit_a) if explicit_a else a
    return (v if vfake else "real", a if afake else "real")


def build_modality_vocabs(records: Sequence[SampleRecord]) -> tuple[dict[str, int], dict[str, int]]:
    """``({"real": 0, <video methods sorted>: 1..}, {"real": 0, <audio methods sorted>: 1..})``.

    Example:
        >>> from macbdf.data.manifest import SampleRecord as R
        >>> build_modality_vocabs([R("a", "a", label=1, video_label=1, audio_label=1, method="synth_gan-tts"),
        ...                        R("b", "b", label=1, video_label=1, audio_label=0, method="synth_gan")])
        ({'real': 0, 'gan': 1}, {'real': 0, 'tts': 1})
    """
    vids, auds = set(), set()
    for r in records:
        v, a = modality_methods(r)
        vids.add(v)
        auds.add(a)
    vids.discard("real")
    auds.discard("real")
    return ({"real": 0, **{m: i + 1 for i, m in enumerate(sorted(vids))}},
            {"real": 0, **{m: i + 1 for i, m in enumerate(sorted(auds))}})
