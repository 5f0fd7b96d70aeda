"""Expression labels of the generators: the 12 CoMA sequence labels Motion3DGAN is conditioned on.

A label is given to the generator as a one-hot vector in this order.  The
same names label CoMA's sequences (``FaceTalk_*/<label>/``), so weights
trained on the public data set and on our own synthetic motions
(:mod:`training.motion3dgan.data`) use one label space.
"""
from __future__ import annotations

from .errors import FaceKeyError

__all__ = ["LABELS", "label_index", "MIRRORED"]

#: Suffix of a mirrored clip's source and file name (the CLI and the panel name files after it).
MIRRORED = "_mirrored"

LABELS: tuple[str, ...] = ("bareteeth", "cheeks_in", "eyebrow", "high_smile", "lips_back", "lips_up", "mouth_down",
                           "mouth_extreme", "mouth_middle", "mouth_open", "mouth_side", "mouth_up")


def label_index(label: str) -> int:
    """Index of ``label`` in :data:`LABELS`; ``bad_argument`` naming the labels otherwise."""
    if label not in LABELS:
        raise FaceKeyError("bad_argument", f"Unknown expression label {label!r}.", f"Use one of: {', '.join(LABELS)}.")
    return LABELS.index(label)
