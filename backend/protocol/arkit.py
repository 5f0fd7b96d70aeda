"""The canonical unit set: the 52 ARKit blendshapes, their order and relations.

Order is ARKit's ``ARFaceAnchor.BlendShapeLocation`` order (see
``shared/arkit52.md``).  Left/Right are the subject's own sides.
Standard library only: copied into the add-on.
"""
from __future__ import annotations

__all__ = [
    "ARKIT_NAMES", "NUM_UNITS", "INDEX", "EXCLUSIVE_PAIRS", "MIRROR",
    "pascal", "LIVELINK_CSV_BLENDSHAPES",
]

ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight", "tongueOut",
)
NUM_UNITS = len(ARKIT_NAMES)
assert NUM_UNITS == 52
INDEX: dict[str, int] = {n: i for i, n in enumerate(ARKIT_NAMES)}


def pascal(name: str) -> str:
    """``eyeBlinkLeft`` -> ``EyeBlinkLeft`` (Live Link Face CSV spelling)."""
    return name[:1].upper() + name[1:]


def _pairs(*names: tuple[str, str]) -> tuple[tuple[int, int], ...]:
    return tuple((INDEX[a], INDEX[b]) for a, b in names)


#: Contradictory pairs (CPEM's set O): both may not be strongly active.
EXCLUSIVE_PAIRS: tuple[tuple[int, int], ...] = _pairs(
    ("eyeBlinkLeft", "eyeWideLeft"), ("eyeBlinkRight", "eyeWideRight"),
    ("eyeSquintLeft", "eyeWideLeft"), ("eyeSquintRight", "eyeWideRight"),
    ("eyeLookDownLeft", "eyeLookUpLeft"), ("eyeLookDownRight", "eyeLookUpRight"),
    ("eyeLookInLeft", "eyeLookOutLeft"), ("eyeLookInRight", "eyeLookOutRight"),
    ("jawLeft", "jawRight"), ("mouthLeft", "mouthRight"),
    ("mouthSmileLeft", "mouthFrownLeft"), ("mouthSmileRight", "mouthFrownRight"),
    ("mouthPucker", "mouthStretchLeft"), ("mouthPucker", "mouthStretchRight"),
    ("mouthRollLower", "mouthShrugLower"), ("mouthRollUpper", "mouthShrugUpper"),
    ("browDownLeft", "browOuterUpLeft"), ("browDownRight", "browOuterUpRight"),
    ("browDownLeft", "browInnerUp"), ("browDownRight", "browInnerUp"),
)


def _mirror_name(n: str) -> str:
    if n.endswith("Left"):
        return n[:-4] + "Right"
    if n.endswith("Right"):
        return n[:-5] + "Left"
    return n


#: MIRROR[i] is the index of unit i's left/right mirror (itself if central).
MIRROR: tuple[int, ...] = tuple(INDEX[_mirror_name(n)] for n in ARKIT_NAMES)

def _livelink_order() -> tuple[str, ...]:
    names = list(ARKIT_NAMES)
    for a, b in (("jawLeft", "jawRight"), ("mouthLeft", "mouthRight")):
        i, j = names.index(a), names.index(b)
        names[i], names[j] = names[j], names[i]
    return tuple(pascal(n) for n in names)


#: Blendshape column order of Epic's Live Link Face CSV: ARKit's order with
#: JawRight before JawLeft and MouthRight before MouthLeft.
LIVELINK_CSV_BLENDSHAPES: tuple[str, ...] = _livelink_order()
