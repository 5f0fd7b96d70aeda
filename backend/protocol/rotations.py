"""Rotation helpers (numpy only; copied into the add-on).

Head frame (see ``take``): x = subject's left, y = up, z = out of the face.
Yaw/pitch/roll in radians:

* yaw   > 0: face turns toward the subject's left (rotation about +y),
* pitch > 0: face looks up (rotation about -x),
* roll  > 0: rotation about +z (top of the head toward the subject's right).

``R = Ry(yaw) @ Rx(-pitch) @ Rz(roll)``.  Quaternions are (w, x, y, z).
"""
from __future__ import annotations

import numpy as np

__all__ = ["quat_to_matrix", "matrix_to_quat", "ypr_to_quat", "quat_to_ypr", "quat_normalize"]


def quat_normalize(q: np.ndarray) -> np.ndarray:
    """(..., 4) -> unit quaternions with w >= 0."""
    q = np.asarray(q, np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternions (w, x, y, z) -> (..., 3, 3) rotation matrices."""
    q = quat_normalize(q)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    m = np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], axis=-1)
    return m.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (w, x, y, z), w >= 0."""
    m = np.asarray(m, np.float64)
    flat = m.reshape(-1, 3, 3)
    out = np.empty((flat.shape[0], 4))
    for i, r in enumerate(flat):
        tr = r[0, 0] + r[1, 1] + r[2, 2]
        if tr > 0:
            s = np.sqrt(tr + 1.0) * 2
            out[i] = (0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s)
        elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
            s = np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2]) * 2
            out[i] = ((r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s)
        elif r[1, 1] > r[2, 2]:
            s = np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2]) * 2
            out[i] = ((r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s)
        else:
            s = np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1]) * 2
            out[i] = ((r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s)
    return quat_normalize(out).reshape(m.shape[:-2] + (4,))


def _axis_angle(axis: int, angle: np.ndarray) -> np.ndarray:
    q = np.zeros(np.shape(angle) + (4,))
    q[..., 0] = np.cos(np.asarray(angle) / 2)
    q[..., 1 + axis] = np.sin(np.asarray(angle) / 2)
    return q


def _qmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def ypr_to_quat(yaw, pitch, roll) -> np.ndarray:
    """Arrays of yaw, pitch, roll (radians, same shape S) -> (S..., 4) quaternions."""
    q = _qmul(_qmul(_axis_angle(1, np.asarray(yaw, np.float64)), _axis_angle(0, -np.asarray(pitch, np.float64))),
              _axis_angle(2, np.asarray(roll, np.float64)))
    return quat_normalize(q)


def quat_to_ypr(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions -> (..., 3) (yaw, pitch, roll) radians; inverse of :func:`ypr_to_quat`."""
    r = quat_to_matrix(q)
    # R = Ry(a) Rx(b) Rz(c) with b = -pitch:  R[1,2] = -sin(b)
    b = np.arcsin(np.clip(-r[..., 1, 2], -1.0, 1.0))
    a = np.arctan2(r[..., 0, 2], r[..., 2, 2])
    c = np.arctan2(r[..., 1, 0], r[..., 1, 1])
    return np.stack([a, -b, c], axis=-1)
