"""The 52 ARKit expression units as displacement fields on the canonical face.

Each unit is a smooth deformation of one anatomical region, built from a few
handle vertices (lids, lip contours, mouth corners, brows, cheeks, nose
wings) with Gaussian falloff, split at the lips by :func:`lower_face_mask` so
the upper and lower lip move independently.  Units named ``*Left`` are built
on the subject's left (x > 0); ``*Right`` units are their exact x -> -x
mirror images.  Magnitudes at weight 1 (metres, canonical face about 15 cm
wide): jawOpen drops the chin ~18 mm (13 degree rotation about a hinge 5 cm
behind and 1 cm below the face origin) and the middle of the lower lip ~33 mm
(the rotation plus 12 mm of lip parting, 40% of it at the corners): on
MediaPipe tracks of wide-open mouths the lower lip travels much further than
the chin; mouthLowerDown / mouthUpperUp move their half lip by 5 mm; eyeBlink closes the lid gap to 0;
mouthSmile lifts the corner 8 mm; eyeLook* turns the iris by 30 degrees (yaw)
or 25 degrees (pitch) on a 12 mm eyeball radius, lids following.

``tongueOut``: the tongue is not part of the mesh and MediaPipe does not track
it.  The unit is a small (2 mm) push of the lower lip down and forward, the
only landmark trace of a protruding tongue; it is weakly observable and
confusable with ``mouthLowerDown*``, so solvers keep it near 0 unless a
lower-lip pose explains nothing else.
"""
from __future__ import annotations

import numpy as np

from backend.protocol.arkit import ARKIT_NAMES, INDEX, MIRROR

from .canonical import LEFT_EYE, LEFT_IRIS, NUM_MESH
from .regions import (
    BROW_INNER_LEFT, BROW_MID_LEFT, BROW_OUTER_LEFT, CHEEK_LEFT, CORNER_LEFT, INNER_CORNER_LEFT, LID_LOWER_RING2_LEFT,
    LID_UPPER_RING2_LEFT, LIPS, LOWER_INNER, LOWER_MID, LOWER_OUTER, NOSE_WING_LEFT, UPPER_INNER, UPPER_MID,
    UPPER_OUTER, lid_gaps, lower_face_mask, rbf_field, side_mask, smoothstep,
)

__all__ = ["build_unit_deltas", "mirror_field", "JAW_HINGE", "JAW_OPEN_ANGLE", "GAZE_YAW_PER_UNIT",
           "GAZE_PITCH_PER_UNIT"]

MM = 1e-3
#: Jaw hinge (head frame, metres) and jawOpen rotation at weight 1 (radians).
JAW_HINGE = np.array([0.0, -0.01, -0.05])
JAW_OPEN_ANGLE = 0.22
#: Extra drop of the lower lip at jawOpen = 1 beyond the jaw rotation, metres.
JAW_LIP_EXTRA = 0.012
EYEBALL_RADIUS = 0.012
#: Gaze angle of eyeLookIn/Out (yaw) and eyeLookUp/Down (pitch) at weight 1, radians.
GAZE_YAW_PER_UNIT = np.deg2rad(30.0)
GAZE_PITCH_PER_UNIT = np.deg2rad(25.0)
_ANCHORS = (0, 17, 13, 14, 11, 12, 15, 16)  # lip midline, used to keep one-sided units local


def mirror_field(d: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """(N, 3) field on one side -> its x -> -x mirror image."""
    return d[mirror] * np.array([-1.0, 1.0, 1.0])


def _lids(v, upper_disp, lower_disp, sigma=0.0025):
    """Field from per-vertex displacements of the left eye's lids (each (7, 3), metres)."""
    idx = list(LEFT_EYE["upper"]) + list(LEFT_EYE["lower"]) + [LEFT_EYE["outer"], LEFT_EYE["inner"]]
    disp = np.vstack([upper_disp, lower_disp, np.zeros((2, 3))])
    return rbf_field(v, idx, disp, sigma)


def _iris(v, disp):
    out = np.zeros_like(v)
    out[list(LEFT_IRIS)] = disp
    return out


def _vec(n, x=0.0, y=0.0, z=0.0):
    return np.tile(np.array([x, y, z]) * MM, (n, 1))


def _corner_unit(v, corner_mm, inner_mm, extra=(), sigma=0.009):
    """Left mouth-corner unit: corner handles, lip-midline anchors, optional extra handles."""
    idx = [CORNER_LEFT, INNER_CORNER_LEFT, *_ANCHORS] + [i for i, _ in extra]
    disp = [np.array(corner_mm) * MM, np.array(inner_mm) * MM] + [np.zeros(3)] * len(_ANCHORS)
    disp += [np.array(d) * MM for _, d in extra]
    return rbf_field(v, idx, np.array(disp), sigma) * side_mask(v)[:, None]


def _lip_rows(v, groups, sigma=0.004):
    """Field from lip groups: [(indices, fn(xyz) -> (3,) metres)]."""
    idx, disp = [], []
    for ids, fn in groups:
        for i in ids:
            if i not in idx:
                idx.append(i)
                disp.append(fn(v[i]))
    return rbf_field(v, idx, np.array(disp), sigma)


def _half_lip(v):
    """(N,) weight of the left half of the lips, tapering to 30% at the corner."""
    ax = v[:, 0]
    return side_mask(v) * (1.0 - 0.7 * smoothstep(ax, 0.015, 0.025))


def _left_units(v: np.ndarray, lower: np.ndarray) -> dict[str, np.ndarray]:
    """Fields of the units that have a Left/Right pair, built on the left side."""
    gu, gl, prof = lid_gaps(v)
    pu, pl = prof[0][:, None], prof[1][:, None]
    u = {}

    def dy(g):
        return np.stack([np.zeros_like(g), g, np.zeros_like(g)], 1)

    u["eyeBlinkLeft"] = _lids(v, dy(-0.85 * gu), dy(0.15 * gl))
    wide = _lids(v, _vec(7, 0, 3.0, 0.5) * pu, _vec(7, 0, -0.6, 0) * pl)
    wide += rbf_field(v, LID_UPPER_RING2_LEFT, _vec(7, 0, 1.5, 0), 0.004)
    u["eyeWideLeft"] = wide
    squint = _lids(v, dy(-0.12 * gu), dy(0.40 * gl) + _vec(7, 0, 0, 0.5) * pl)
    ring = LID_LOWER_RING2_LEFT + (347, 330)
    squint += rbf_field(v, ring, _vec(len(ring), 0, 1.8, 0.5), 0.004)
    u["eyeSquintLeft"] = squint
    u["eyeLookDownLeft"] = _lids(v, dy(-0.35 * gu), _vec(7, 0, -1.0, 0) * pl) + _iris(v, _gaze(0, -GAZE_PITCH_PER_UNIT))
    u["eyeLookUpLeft"] = _lids(v, _vec(7, 0, 2.0, 0) * pu, _vec(7, 0, 1.0, 0) * pl) + _iris(v, _gaze(0, GAZE_PITCH_PER_UNIT))
    # Left eye: "in" (toward the nose) is -x, "out" (toward the ear) is +x.
    u["eyeLookInLeft"] = _lids(v, _vec(7, -1.0) * pu, _vec(7, -1.0) * pl) + _iris(v, _gaze(-GAZE_YAW_PER_UNIT, 0))
    u["eyeLookOutLeft"] = _lids(v, _vec(7, 1.0) * pu, _vec(7, 1.0) * pl) + _iris(v, _gaze(GAZE_YAW_PER_UNIT, 0))

    jaw = lower[:, None]
    u["jawLeft"] = jaw * _vec(1, 8.0, 0, 0)
    shift = _lip_rows(v, [(LIPS, lambda p: np.array([8.0, 0, 0]) * MM)], sigma=0.008)
    u["mouthLeft"] = shift
    # zygomaticus pulls the corner up and back and stretches the lips apart over
    # the teeth: the lateral lower lip drops, the lateral upper lip rises a little
    apart = rbf_field(v, (314, 317, 405, 402, 267, 312),
                      np.vstack([_vec(2, 0, -3, -1), _vec(2, 1, -3, -1.5), _vec(2, 0, 1, -0.5)]), 0.003)
    u["mouthSmileLeft"] = _corner_unit(v, (4, 8, -4), (3.5, 7, -4), extra=[(425, (1, 3, 1.5)), (411, (0.5, 2.5, 1)),
                                                                           (280, (0, 1.5, 1))]) + apart * side_mask(v)[:, None]
    u["mouthFrownLeft"] = _corner_unit(v, (1, -7, 0), (1, -6, 0), extra=[(_nearest(v, v[CORNER_LEFT] + [0, -0.015, -0.003]),
                                                                          (0, -3, 0))])
    u["mouthDimpleLeft"] = _corner_unit(v, (3, 0, -5), (3, 0, -5), sigma=0.007)
    stretch = _corner_unit(v, (7, -3, -1), (6, -3, -1), sigma=0.008)
    stretch += _lip_rows(v, [(LOWER_OUTER + LOWER_INNER, lambda p: np.array([0, -2.0, 0]) * MM)]) * (side_mask(v) * lower)[:, None]
    u["mouthStretchLeft"] = stretch
    half = _half_lip(v)[:, None]
    press = _lip_rows(v, [(UPPER_INNER, lambda p: np.array([0, -1.5, 0]) * MM),
                          (LOWER_INNER, lambda p: np.array([0, 1.5, 0]) * MM),
                          (UPPER_OUTER + UPPER_MID, lambda p: np.array([0, -2.0, -1.0]) * MM),
                          (LOWER_OUTER + LOWER_MID, lambda p: np.array([0, 2.0, -1.0]) * MM)], sigma=0.003)
    u["mouthPressLeft"] = press * half
    down = _lip_rows(v, [(LOWER_OUTER + LOWER_MID + LOWER_INNER, lambda p: np.array([0, -5.0, 1.0]) * MM)])
    u["mouthLowerDownLeft"] = down * half * lower[:, None]
    up = _lip_rows(v, [(UPPER_OUTER + UPPER_MID + UPPER_INNER, lambda p: np.array([0, 5.0, 1.0]) * MM)])
    u["mouthUpperUpLeft"] = up * half * (1.0 - lower)[:, None]

    inner, mid, outer = BROW_INNER_LEFT, BROW_MID_LEFT, BROW_OUTER_LEFT
    glabella = _nearest(v, np.array([0.006, 0.045, 0.054]))
    u["browDownLeft"] = rbf_field(v, inner + mid + outer + (glabella,),
                                  np.vstack([_vec(4, -3, -6, 1), _vec(2, -2, -6, 1), _vec(4, -1, -5, 0), _vec(1, -1, -2, 0)]),
                                  0.008) * side_mask(v, 0.003)[:, None]
    u["browOuterUpLeft"] = rbf_field(v, inner + mid + outer, np.vstack([_vec(4), _vec(2, 0, 4), _vec(4, 0, 8)]), 0.010)
    cheek = CHEEK_LEFT[5:] + (425, 280)
    u["cheekSquintLeft"] = rbf_field(v, cheek, _vec(len(cheek), 0, 4.0, 1.0), 0.008)
    side_nose = _nearest(v, np.array([0.012, 0.008, 0.053]))
    nose = NOSE_WING_LEFT + (side_nose, 267, 269, 270)
    u["noseSneerLeft"] = rbf_field(v, nose, np.vstack([_vec(4, 0, 4, 0.5), _vec(1, 0, 3, 0), _vec(3, 0, 2, 0)]), 0.006)
    return u


def _gaze(yaw: float, pitch: float) -> np.ndarray:
    """Iris displacement (3,) for an eyeball turn by yaw (toward +x) and pitch (up), metres."""
    r = EYEBALL_RADIUS
    return np.array([r * np.sin(yaw) * np.cos(pitch), r * np.sin(pitch), r * (np.cos(yaw) * np.cos(pitch) - 1.0)])


def _nearest(v: np.ndarray, p: np.ndarray) -> int:
    return int(np.argmin(np.linalg.norm(v[:NUM_MESH] - p, axis=1)))


def _central_units(v: np.ndarray, lower: np.ndarray) -> dict[str, np.ndarray]:
    """Fields of the units without a Left/Right pair (symmetric)."""
    u = {}
    jaw = lower[:, None]
    c, s = np.cos(JAW_OPEN_ANGLE), np.sin(JAW_OPEN_ANGLE)
    rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    opened = (v - JAW_HINGE) @ rot.T + JAW_HINGE
    lower_ids = LOWER_OUTER + LOWER_INNER + LOWER_MID
    lower_lip_zone = rbf_field(v, lower_ids, np.ones((len(lower_ids), 3)), 0.006)[:, :1] * jaw
    # the lower lip parts from the teeth as the jaw drops: it moves further than the chin
    centre_weight = 1.0 - 0.6 * smoothstep(np.abs(v[:, 0]), 0.01, 0.025)
    # cheek skin over the jaw angles stretches rather than following the jaw fully
    lateral = 1.0 - 0.5 * smoothstep(np.abs(v[:, 0]), 0.03, 0.07)
    u["jawOpen"] = (jaw[:, 0] * lateral)[:, None] * (opened - v) + (lower_lip_zone[:, 0] * centre_weight)[:, None] * np.array([0.0, -JAW_LIP_EXTRA, 0.0])
    u["jawForward"] = jaw * _vec(1, 0, -1.5, 8.0)
    upper_lip = _lip_rows(v, [(UPPER_OUTER + UPPER_MID + UPPER_INNER, lambda p: np.array([0, -6.0, 0]) * MM)])
    u["mouthClose"] = -0.75 * u["jawOpen"] * lower_lip_zone + upper_lip * (1.0 - jaw)

    def ring(dx_frac, dy_mm, dz_mm):
        return lambda p: np.array([-dx_frac * p[0], dy_mm * MM, dz_mm * MM])

    corners = (61, 291, 78, 308)
    u["mouthFunnel"] = _lip_rows(v, [(corners, ring(0.30, 0, 2)), (UPPER_OUTER, ring(0.25, 1, 6)),
                                     (LOWER_OUTER, ring(0.25, -1, 6)), (UPPER_INNER, ring(0.25, 3, 5)),
                                     (LOWER_INNER, ring(0.25, -3, 5))], sigma=0.005)
    u["mouthPucker"] = _lip_rows(v, [(corners, ring(0.40, 0, 3)), (UPPER_OUTER, ring(0.35, -0.5, 9)),
                                     (LOWER_OUTER, ring(0.35, 0.5, 9)), (UPPER_INNER, ring(0.35, -2, 8)),
                                     (LOWER_INNER, ring(0.35, 2, 8))], sigma=0.005)
    up_only, low_only = (1.0 - jaw), jaw
    u["mouthRollLower"] = _lip_rows(v, [(LOWER_OUTER[1:-1], ring(0, 3.5, -3)), (LOWER_MID, ring(0, 2, -3)),
                                        (LOWER_INNER[1:-1], ring(0, 0.5, -3))]) * low_only
    u["mouthRollUpper"] = _lip_rows(v, [(UPPER_OUTER[1:-1], ring(0, -3, -3)), (UPPER_MID, ring(0, -2, -3)),
                                        (UPPER_INNER[1:-1], ring(0, -0.5, -3))]) * up_only
    chin = _nearest(v, np.array([0.0, -0.068, 0.052]))
    u["mouthShrugLower"] = (_lip_rows(v, [(LOWER_OUTER[1:-1], ring(0, 3, 3)), (LOWER_INNER[1:-1], ring(0, 2.5, 2))])
                            + rbf_field(v, [chin], _vec(1, 0, 3, 1), 0.012)) * low_only
    u["mouthShrugUpper"] = _lip_rows(v, [(UPPER_OUTER[1:-1], ring(0, 3, 2.5)), (UPPER_INNER[1:-1], ring(0, 2.5, 2))],
                                     sigma=0.005) * up_only
    inner_both = BROW_INNER_LEFT + (55, 65, 107, 66)
    mid_both = BROW_MID_LEFT + (52, 105)
    outer_both = BROW_OUTER_LEFT + (70, 46, 53, 63)
    u["browInnerUp"] = rbf_field(v, inner_both + mid_both + outer_both + (9, 8),
                                 np.vstack([_vec(8, 0, 8), _vec(4, 0, 4), _vec(8), _vec(2, 0, 3)]), 0.012)
    puff_l = CHEEK_LEFT[:6]
    puff_r = (205, 187, 50, 123, 147, 213)
    u["cheekPuff"] = rbf_field(v, puff_l + puff_r, np.vstack([_vec(6, 6, 0, 3), _vec(6, -6, 0, 3)]), 0.012)
    u["tongueOut"] = _lip_rows(v, [(LOWER_INNER[2:-2] + LOWER_MID[:9], ring(0, -2, 2))]) * low_only
    return u


def build_unit_deltas(v: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """(52, N, 3) float64 unit displacements (metres) on the neutral ``v`` (N, 3)."""
    lower = lower_face_mask(v)
    fields = _central_units(v, lower)
    for name, d in _left_units(v, lower).items():
        fields[name] = d
        fields[ARKIT_NAMES[MIRROR[INDEX[name]]]] = mirror_field(d, mirror)
    missing = set(ARKIT_NAMES) - set(fields)
    assert not missing, f"units without a definition: {sorted(missing)}"
    return np.stack([fields[n] for n in ARKIT_NAMES])
