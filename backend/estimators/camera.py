"""Pinhole camera shared by the solver and the synthetic generator.

Camera space (as ``Take.head_translation``): x right in the image, y up,
z toward the viewer; the face is at z < 0.  The rest head (head rotation =
identity) has its axes aligned with the camera's: head x (subject's left)
-> camera x (image right), head y -> camera y, head z (out of the face)
-> camera z (toward the camera).  So the head-frame rotation stored in a
Take is the head-to-camera rotation matrix itself.

Pixels: u right, v down, principal point at the image centre.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["DEFAULT_FOV_DEG", "default_focal", "project", "FACE_WIDTH_M"]

#: Diagonal field of view assumed when the footage carries no focal length
#: (a typical webcam / phone main camera is 60-75 degrees).
DEFAULT_FOV_DEG = 60.0
#: Distance between canonical landmarks 234 and 454 (face width at the
#: cheekbones/ears), metres; used to guess depth from a face's pixel width.
FACE_WIDTH_M = 0.1533


def default_focal(width: int, height: int, fov_deg: float = DEFAULT_FOV_DEG) -> float:
    """Focal length in pixels for a diagonal field of view of ``fov_deg``."""
    return 0.5 * math.hypot(width, height) / math.tan(math.radians(fov_deg) / 2.0)


def project(points: np.ndarray, focal: float, size: tuple[int, int]) -> np.ndarray:
    """Camera-space points (..., 3) metres -> (..., 3) MediaPipe-style pixels.

    x, y are pixel coordinates (y down); z is relative depth in the same
    pixel scale, smaller = closer to the camera, 0 at the points' mean depth.
    """
    p = np.asarray(points, np.float64)
    depth = -p[..., 2]
    u = size[0] / 2.0 + focal * p[..., 0] / depth
    v = size[1] / 2.0 - focal * p[..., 1] / depth
    zref = depth.mean(axis=-1, keepdims=True)
    z = (depth - zref) * focal / zref
    return np.stack([u, v, z], axis=-1)
