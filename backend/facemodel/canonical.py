"""The canonical neutral face: MediaPipe's 468-vertex mesh plus 10 iris points.

Head frame (as in ``backend.protocol.take``): x = subject's own left,
y = up, z = out of the face, metres.  Vertex indices equal MediaPipe
FaceMesh landmark indices, so vertex ``i`` is landmark ``i`` of a
``refine_landmarks=True`` track (478 points):

* 468 = centre of the subject's right iris (the eye around 33/133, x < 0),
  469-472 its ring.
* 473 = centre of the subject's left iris (eye around 263/362, x > 0),
  474-477 its ring.

Both rings run +x, +y, -x, -y in the head frame (image right, up, left,
down for a frontal face), as measured on MediaPipe output: 469 is medial for
the right eye while 474 is lateral for the left eye.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = [
    "ASSET", "NUM_MESH", "NUM_VERTICES", "IRIS_RADIUS_M", "RIGHT_EYE", "LEFT_EYE",
    "RIGHT_IRIS", "LEFT_IRIS", "load_canonical", "mirror_map",
]

ASSET = Path(__file__).resolve().parents[1] / "assets" / "mediapipe_canonical_face.npz"
NUM_MESH = 468
NUM_VERTICES = 478
#: Human iris radius (about 11.7 mm diameter), metres.
IRIS_RADIUS_M = 0.0058

#: Eye contours (lower lid from outer to inner corner, then upper lid back).
RIGHT_EYE = dict(outer=33, inner=133, lower=(7, 163, 144, 145, 153, 154, 155),
                 upper=(246, 161, 160, 159, 158, 157, 173))
LEFT_EYE = dict(outer=263, inner=362, lower=(249, 390, 373, 374, 380, 381, 382),
                upper=(466, 388, 387, 386, 385, 384, 398))
#: Iris point indices (centre, +x, +y, -x, -y).
RIGHT_IRIS = (468, 469, 470, 471, 472)
LEFT_IRIS = (473, 474, 475, 476, 477)


def _iris(v: np.ndarray, eye: dict) -> np.ndarray:
    """(5, 3) iris points for one eye from the eye contour of ``v`` (metres)."""
    ring = v[[eye["outer"], eye["inner"], *eye["lower"], *eye["upper"]]]
    centre = ring.mean(axis=0)
    r = IRIS_RADIUS_M
    offsets = np.array([[r, 0, 0], [0, r, 0], [-r, 0, 0], [0, -r, 0]])
    return np.vstack([centre, centre + offsets])


def load_canonical() -> tuple[np.ndarray, np.ndarray]:
    """Return ``(vertices (478, 3) float64 metres, triangles (898, 3) int32)``."""
    with np.load(ASSET) as z:
        v = z["vertices_cm"].astype(np.float64) / 100.0
        tri = z["triangles"].astype(np.int32)
    right = _iris(v, RIGHT_EYE)
    left = _iris(v, LEFT_EYE)
    return np.vstack([v, right, left]), tri


def mirror_map(v: np.ndarray) -> np.ndarray:
    """(N,) int index of each vertex's x -> -x mirror partner (nearest neighbour).

    The canonical mesh is symmetric to ~1e-6 m, so the map is an involution
    on the mesh; on the iris rings it swaps the centres and maps +x ring
    points to -x ring points of the other eye (as MediaPipe's own order does
    not, which is why mirroring uses this map rather than index arithmetic).
    """
    flipped = v * np.array([-1.0, 1.0, 1.0])
    d = np.linalg.norm(v[:, None, :] - flipped[None, :, :], axis=-1)
    return d.argmin(axis=1)
