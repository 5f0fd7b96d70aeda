"""Head frame <-> Blender axes (numpy only; copied into the add-on).

Take head frame: x = subject's left, y = up, z = out of the face.  A
character in Blender faces -Y with Z up, so x -> +X, y -> +Z, z -> -Y.
This map is a proper rotation, so quaternions transform by rotating their
vector part the same way.
"""
from __future__ import annotations

import numpy as np

__all__ = ["points_to_blender", "points_from_blender", "quats_to_blender"]


def points_to_blender(p: np.ndarray) -> np.ndarray:
    """(..., 3) head-frame points/vectors -> (..., 3) Blender (facing -Y, Z up), same units."""
    p = np.asarray(p)
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)


def points_from_blender(p: np.ndarray) -> np.ndarray:
    """(..., 3) Blender points/vectors (facing -Y, Z up) -> (..., 3) head frame (X, Z, -Y); inverse of
    :func:`points_to_blender`."""
    p = np.asarray(p)
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


def quats_to_blender(q: np.ndarray) -> np.ndarray:
    """(..., 4) head-frame quaternions (w, x, y, z) -> (..., 4) Blender-frame quaternions (w, x, y, z)."""
    q = np.asarray(q)
    return np.stack([q[..., 0], q[..., 1], -q[..., 3], q[..., 2]], axis=-1)
