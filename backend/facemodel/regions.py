"""Anatomical landmark groups and smooth masks on the canonical face.

All geometry in metres in the head frame (x = subject's left, y = up,
z = out of the face).  Index groups are MediaPipe FaceMesh indices; groups
named ``*_LEFT`` are on the subject's left (x > 0).
"""
from __future__ import annotations

import numpy as np

from .canonical import LEFT_EYE, NUM_MESH

__all__ = [
    "UPPER_OUTER", "LOWER_OUTER", "UPPER_INNER", "LOWER_INNER", "UPPER_MID", "LOWER_MID",
    "CORNER_LEFT", "INNER_CORNER_LEFT", "LIPS", "BROW_LEFT", "BROW_INNER_LEFT", "BROW_OUTER_LEFT",
    "LID_UPPER_RING2_LEFT", "LID_LOWER_RING2_LEFT", "NOSE_WING_LEFT", "CHEEK_LEFT", "STABLE",
    "smoothstep", "rbf_field", "lower_face_mask", "side_mask", "lid_gaps",
]

# Lip contours, each from the subject's right corner (x < 0) to the left corner.
UPPER_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LOWER_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
UPPER_MID = (62, 183, 42, 41, 38, 12, 268, 271, 272, 407, 292, 184, 74, 73, 72, 11, 302, 303, 304, 408)
LOWER_MID = (96, 89, 179, 86, 15, 316, 403, 319, 325, 77, 90, 180, 85, 16, 315, 404, 320, 307)
CORNER_LEFT = 291
INNER_CORNER_LEFT = 308
LIPS = tuple(sorted(set(UPPER_OUTER + LOWER_OUTER + UPPER_INNER + LOWER_INNER + UPPER_MID + LOWER_MID)))

# Left brow (x > 0): upper and lower edge, inner to outer.
BROW_INNER_LEFT = (285, 295, 336, 296)
BROW_MID_LEFT = (282, 334)
BROW_OUTER_LEFT = (300, 276, 283, 293)
BROW_LEFT = BROW_INNER_LEFT + BROW_MID_LEFT + BROW_OUTER_LEFT

# Second rings around the left eye (skin just above / below the lids).
LID_UPPER_RING2_LEFT = (467, 260, 259, 257, 258, 286, 414)
LID_LOWER_RING2_LEFT = (359, 255, 339, 254, 253, 252, 256, 341, 463)
#: Their mirror images around the right eye (x -> -x on the canonical mesh).
LID_UPPER_RING2_RIGHT = (247, 30, 29, 27, 28, 56, 190)
LID_LOWER_RING2_RIGHT = (130, 25, 110, 24, 23, 22, 26, 112, 243)

NOSE_WING_LEFT = (327, 358, 294, 278)
CHEEK_LEFT = (425, 411, 280, 352, 376, 433, 347, 330)

#: Landmarks that move little with expressions: nose bridge and tip, eye
#: corners, upper face contour.  Used for the rigid pose stage.
STABLE = (168, 6, 197, 195, 5, 4, 1, 8, 9, 33, 133, 263, 362, 234, 454, 127, 356, 162, 389, 21, 251,
          10, 151, 109, 338, 98, 327, 129, 358)


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """C1 step from 0 (x <= lo) to 1 (x >= hi)."""
    t = np.clip((np.asarray(x, np.float64) - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def rbf_field(v: np.ndarray, handles, disp: np.ndarray, sigma: float) -> np.ndarray:
    """Smooth displacement field from handle vertices.

    Args:
        v: (N, 3) vertices, metres.
        handles: (H,) vertex indices.
        disp: (H, 3) displacement of each handle, metres.
        sigma: Gaussian falloff radius, metres.

    Returns:
        (N, 3) displacements: Shepard interpolation of the handle displacements
        times the falloff to the nearest handle (so handles move by about their
        own displacement and far vertices do not move).  Iris points (>= 468)
        get zero: they move only with the eyeball.
    """
    h = np.asarray(handles, int)
    d2 = ((v[:, None, :] - v[h][None, :, :]) ** 2).sum(-1)
    k = np.exp(-d2 / (2.0 * sigma * sigma))
    out = (k @ np.asarray(disp, np.float64)) / (k.sum(1, keepdims=True) + 1e-12) * k.max(1, keepdims=True)
    out[NUM_MESH:] = 0.0
    return out


def lower_face_mask(v: np.ndarray) -> np.ndarray:
    """(N,) in [0, 1]: 1 on the lower lip, chin and jaw, 0 on the upper lip and above.

    The split line follows the middle of the inner lip contour between the
    mouth corners and rises outward (slope 0.5) toward the jaw angles; the
    transition is 1 mm wide at the lips and widens toward the face sides.
    """
    mid = (v[list(UPPER_INNER)] + v[list(LOWER_INNER)]) / 2.0
    order = np.argsort(mid[:, 0])
    mx, my = mid[order, 0], mid[order, 1]
    corner_x = mx[-1]
    ax = np.abs(v[:, 0])
    line = np.interp(v[:, 0], mx, my) + 0.5 * np.maximum(ax - corner_x, 0.0)
    width = 0.001 + 0.4 * np.maximum(ax - corner_x, 0.0)
    m = smoothstep(line - v[:, 1], -width, width)
    m[list(LOWER_OUTER + LOWER_INNER + LOWER_MID)] = 1.0
    m[list(UPPER_OUTER + UPPER_INNER + UPPER_MID)] = 0.0
    m[[61, 291, 78, 308, 62, 292, 96, 325, 76, 306, 77, 307, 184, 408]] = 0.5
    m[NUM_MESH:] = 0.0
    return m


def side_mask(v: np.ndarray, width: float = 0.005) -> np.ndarray:
    """(N,) in [0, 1]: 1 on the subject's left (x > width), 0 on the right, smooth at the midline."""
    return smoothstep(v[:, 0], -width, width)


def lid_gaps(v: np.ndarray, eye: dict = LEFT_EYE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lid geometry of one eye.

    Returns:
        gap_upper: (7,) vertical distance from each upper-lid vertex down to the
            lower lid at the same x, metres.
        gap_lower: (7,) vertical distance from each lower-lid vertex up to the
            upper lid at the same x, metres.
        profile: function-free (2, 7) bump in [0, 1] along the lid (row 0 upper,
            row 1 lower): 1 at the middle of the eye, 0 at the corners.
    """
    up = v[list(eye["upper"])]
    lo = v[list(eye["lower"])]
    corners = v[[eye["outer"], eye["inner"]]]
    lower_line = np.vstack([corners, lo])
    upper_line = np.vstack([corners, up])
    lo_sorted = lower_line[np.argsort(lower_line[:, 0])]
    up_sorted = upper_line[np.argsort(upper_line[:, 0])]
    gap_upper = up[:, 1] - np.interp(up[:, 0], lo_sorted[:, 0], lo_sorted[:, 1])
    gap_lower = np.interp(lo[:, 0], up_sorted[:, 0], up_sorted[:, 1]) - lo[:, 1]
    x0, x1 = sorted(corners[:, 0])
    prof = np.stack([np.sin(np.pi * np.clip((p[:, 0] - x0) / (x1 - x0), 0, 1)) for p in (up, lo)])
    return gap_upper, gap_lower, prof
