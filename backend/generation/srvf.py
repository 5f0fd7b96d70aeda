"""Landmark motions as points on a hypersphere: the square-root velocity function (SRVF).

Motion3DGAN (Otberdout et al., CVPR 2022) represents the motion of k 3D
landmarks over time, a curve ``alpha: [0, 1] -> R^(k x 3)``, by its SRVF

    q(t) = alpha'(t) / sqrt(|alpha'(t)|)      (q = 0 where alpha' = 0)

scaled to unit L2 norm, so every motion is a point on the hypersphere
``C = {q : ||q|| = 1}``; the GAN works in the tangent space of C at a
reference point (the training set's mean SRVF), reached with the sphere's
logarithm / exponential maps.  The curve comes back by integration,
``alpha(t) = alpha(0) + integral_0^t q(s) |q(s)| ds`` with ``alpha(0)`` the
neutral landmarks; the unit-norm scaling removes the motion's size, which
:func:`srvf_to_motion` restores from a given ``scale`` (the L2 norm of the
unscaled SRVF).

Discretisation: T frames at t = 0, 1/(T-1), ..., 1; velocities are forward
differences times (T - 1), so q has T - 1 rows; the L2 norm over [0, 1] is
``sqrt(sum |q_i|^2 / (T - 1))``.  Shapes: motions (B, T, k, 3) or (T, k, 3),
SRVFs (B, T - 1, k, 3); any length unit (the product uses metres).
"""
from __future__ import annotations

import numpy as np

__all__ = ["motion_to_srvf", "srvf_to_motion", "sphere_log", "sphere_exp", "sphere_mean", "geodesic"]

_EPS = 1e-12


def _inner(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """L2 inner product over [0, 1] of SRVFs (..., T-1, k, 3) -> (...,)."""
    return (a * b).sum(axis=(-1, -2, -3)) / a.shape[-3]


def motion_to_srvf(motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Landmark motions (..., T, k, 3) -> (unit-norm SRVFs (..., T-1, k, 3), scales (...,)).

    A still motion (no velocity) has scale 0 and SRVF 0.
    """
    m = np.asarray(motion, np.float64)
    if m.ndim < 3 or m.shape[-3] < 2 or m.shape[-1] != 3:
        raise ValueError(f"expected motions (..., T >= 2, k, 3), got shape {m.shape}")
    vel = np.diff(m, axis=-3) * (m.shape[-3] - 1)
    speed = np.linalg.norm(vel.reshape(vel.shape[:-2] + (-1,)), axis=-1)[..., None, None]
    q = vel / np.sqrt(np.maximum(speed, _EPS))
    scale = np.sqrt(_inner(q, q))
    return q / np.maximum(scale, _EPS)[..., None, None, None], scale


def srvf_to_motion(q: np.ndarray, start: np.ndarray, scale: np.ndarray | float = 1.0) -> np.ndarray:
    """Inverse of :func:`motion_to_srvf`: SRVFs (..., T-1, k, 3) from ``start`` (..., k, 3) -> motions (..., T, k, 3).

    ``scale``: the SRVF norm to restore (``motion_to_srvf``'s second output); the
    motion's size grows with the square of it.
    """
    q = np.asarray(q, np.float64) * np.asarray(scale, np.float64)[..., None, None, None]
    steps = q.shape[-3]
    norm = np.linalg.norm(q.reshape(q.shape[:-2] + (-1,)), axis=-1)[..., None, None]
    vel = q * norm                                           # alpha' = q |q|
    path = np.cumsum(vel, axis=-3) / steps
    start = np.asarray(start, np.float64)[..., None, :, :]
    return np.concatenate([start, start + path], axis=-3)


def sphere_log(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Logarithm map of the unit sphere at ``p``: the tangent vector at p pointing to ``q`` (same shapes)."""
    cos = np.clip(_inner(p, q), -1.0, 1.0)[..., None, None, None]
    theta = np.arccos(cos)
    u = q - cos * p
    return np.where(theta > 1e-9, theta / np.maximum(np.sin(theta), _EPS) * u, 0.0 * u)


def sphere_exp(p: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Exponential map of the unit sphere at ``p``: the point reached along tangent vector ``v``."""
    n = np.sqrt(np.maximum(_inner(v, v), 0.0))[..., None, None, None]
    return np.cos(n) * p + np.where(n > 1e-9, np.sin(n) / np.maximum(n, _EPS) * v, v)


def sphere_mean(qs: np.ndarray, iterations: int = 20) -> np.ndarray:
    """Karcher (intrinsic) mean of unit SRVFs (B, T-1, k, 3) -> (T-1, k, 3)."""
    mu = qs.mean(axis=0)
    mu = mu / np.sqrt(max(float(_inner(mu, mu)), _EPS))
    for _ in range(iterations):
        step = sphere_log(mu[None], qs).mean(axis=0)
        mu = sphere_exp(mu, step)
        if np.sqrt(float(_inner(step, step))) < 1e-8:
            break
    return mu


def geodesic(q1: np.ndarray, q2: np.ndarray, tau: float) -> np.ndarray:
    """The point a fraction ``tau`` in [0, 1] along the great circle from ``q1`` to ``q2``."""
    return sphere_exp(q1, tau * sphere_log(q1, q2))
