"""Rotation helpers: conventions of the head frame and exact inverses."""
import numpy as np
from hypothesis import given, settings, strategies as st

from backend.protocol.rotations import matrix_to_quat, quat_to_matrix, quat_to_ypr, ypr_to_quat

angles = st.floats(-1.2, 1.2, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(angles, angles, angles)
def test_ypr_round_trip(y, p, r):
    np.testing.assert_allclose(quat_to_ypr(ypr_to_quat(y, p, r)), [y, p, r], atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(angles, angles, angles)
def test_matrix_round_trip(y, p, r):
    q = ypr_to_quat(y, p, r)
    np.testing.assert_allclose(matrix_to_quat(quat_to_matrix(q)), q, atol=1e-9)


def test_sign_conventions():
    forward = np.array([0.0, 0.0, 1.0])      # out of the face
    left = quat_to_matrix(ypr_to_quat(0.3, 0, 0)) @ forward
    up = quat_to_matrix(ypr_to_quat(0, 0.3, 0)) @ forward
    assert left[0] > 0.29 and abs(left[1]) < 1e-12     # yaw>0 turns toward subject's left (+x)
    assert up[1] > 0.29 and abs(up[0]) < 1e-12         # pitch>0 looks up (+y)
