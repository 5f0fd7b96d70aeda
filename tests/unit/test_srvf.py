"""SRVF tools: motion <-> SRVF round trip, sphere log/exp, geodesics, Karcher mean."""
from __future__ import annotations

import numpy as np
import pytest

from backend.generation.srvf import geodesic, motion_to_srvf, sphere_exp, sphere_log, sphere_mean, srvf_to_motion


def _inner(a, b):
    return (a * b).sum(axis=(-1, -2, -3)) / a.shape[-3]


def _unit(rng, shape):
    q = rng.normal(size=shape)
    return q / np.sqrt(_inner(q, q))[..., None, None, None]


def test_round_trip_recovers_the_motion():
    rng = np.random.default_rng(0)
    motion = np.cumsum(rng.normal(scale=1e-3, size=(4, 30, 68, 3)), axis=1)
    q, scale = motion_to_srvf(motion)
    assert q.shape == (4, 29, 68, 3) and scale.shape == (4,)
    np.testing.assert_allclose(_inner(q, q), 1.0, atol=1e-12)
    back = srvf_to_motion(q, motion[:, 0], scale)
    assert back.shape == motion.shape
    np.testing.assert_allclose(back, motion, rtol=0, atol=1e-9)
    # a single motion (no batch axis) too, from another start: the same shape moved there
    start = rng.normal(size=(68, 3))
    q1, s1 = motion_to_srvf(motion[0])
    np.testing.assert_allclose(srvf_to_motion(q1, start, s1), motion[0] - motion[0, 0] + start, atol=1e-9)


def test_motion_size_grows_with_the_square_of_the_scale():
    rng = np.random.default_rng(1)
    motion = np.cumsum(rng.normal(size=(10, 5, 3)), axis=0)
    q, scale = motion_to_srvf(motion)
    q2, scale2 = motion_to_srvf(4.0 * motion)
    np.testing.assert_allclose(q2, q, atol=1e-12)
    assert scale2 == pytest.approx(2.0 * scale)
    np.testing.assert_allclose(srvf_to_motion(q, np.zeros((5, 3)), 2.0 * scale), 4.0 * (motion - motion[0]),
                               atol=1e-9)


def test_still_motion_has_scale_zero():
    still = np.repeat(np.random.default_rng(2).normal(size=(1, 68, 3)), 30, axis=0)
    q, scale = motion_to_srvf(still)
    assert scale == 0.0
    assert np.all(q == 0.0)
    np.testing.assert_allclose(srvf_to_motion(q, still[0], scale), still, atol=0)


def test_log_and_exp_are_inverse():
    rng = np.random.default_rng(3)
    p, q = _unit(rng, (8, 29, 68, 3)), _unit(rng, (8, 29, 68, 3))
    v = sphere_log(p, q)
    np.testing.assert_allclose(_inner(v, p), 0.0, atol=1e-12)                       # tangent at p
    np.testing.assert_allclose(np.sqrt(_inner(v, v)), np.arccos(_inner(p, q)), atol=1e-12)  # length = angle
    np.testing.assert_allclose(sphere_exp(p, v), q, atol=1e-10)
    # exp of a small tangent vector, then log, gives the vector back
    w = sphere_log(p, _unit(rng, p.shape)) * 0.3
    np.testing.assert_allclose(sphere_log(p, sphere_exp(p, w)), w, atol=1e-10)
    np.testing.assert_allclose(sphere_log(p, p), 0.0, atol=1e-12)


def test_geodesic_ends_at_its_points_and_stays_on_the_sphere():
    rng = np.random.default_rng(4)
    q1, q2 = _unit(rng, (29, 10, 3)), _unit(rng, (29, 10, 3))
    np.testing.assert_allclose(geodesic(q1, q2, 0.0), q1, atol=1e-12)
    np.testing.assert_allclose(geodesic(q1, q2, 1.0), q2, atol=1e-10)
    theta = np.arccos(_inner(q1, q2))
    for tau in (0.25, 0.5, 0.8):
        g = geodesic(q1, q2, tau)
        assert _inner(g, g) == pytest.approx(1.0, abs=1e-12)
        assert np.arccos(np.clip(_inner(q1, g), -1, 1)) == pytest.approx(tau * theta, abs=1e-9)
    # the midpoint is the normalised chord midpoint (the paper's slerp formula at tau = 1/2)
    mid = (q1 + q2) / np.sqrt(_inner(q1 + q2, q1 + q2))
    np.testing.assert_allclose(geodesic(q1, q2, 0.5), mid, atol=1e-10)


def test_mean_of_points_symmetric_about_a_pole_is_the_pole():
    rng = np.random.default_rng(5)
    pole = _unit(rng, (29, 4, 3))
    # tangent directions at the pole in +/- pairs: the points are symmetric about it
    dirs = sphere_log(pole[None], _unit(rng, (3, 29, 4, 3)))
    dirs = dirs / np.sqrt(_inner(dirs, dirs))[:, None, None, None]
    angles = np.array([0.4, 0.9, 1.2])[:, None, None, None]
    pts = np.concatenate([sphere_exp(pole[None], angles * dirs), sphere_exp(pole[None], -angles * dirs)])
    mean = sphere_mean(pts)
    np.testing.assert_allclose(mean, pole, atol=1e-8)
    # the extrinsic mean of only one side is not the pole (the test can tell them apart)
    assert np.abs(sphere_mean(pts[:3]) - pole).max() > 1e-2
