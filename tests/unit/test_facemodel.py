"""Geometric checks of the built-in face model: each unit moves what its name says."""
from __future__ import annotations

import numpy as np
import pytest

from backend.facemodel import load_face_model, transfer_units
from backend.facemodel.units import mirror_field
from backend.protocol.arkit import ARKIT_NAMES, INDEX, MIRROR
from backend.protocol.errors import FaceKeyError

MM = 1e-3


@pytest.fixture(scope="module")
def model():
    return load_face_model()


def posed(model, **weights):
    w = np.zeros(52, np.float32)
    for name, value in weights.items():
        w[INDEX[name]] = value
    return model.vertices(w).astype(np.float64)


def gap(v, up, lo):
    return v[up, 1] - v[lo, 1]


def test_shapes_and_dtypes(model):
    assert model.neutral.shape == (478, 3) and model.neutral.dtype == np.float32
    assert model.unit_deltas.shape == (52, 478, 3) and model.unit_deltas.dtype == np.float32
    assert model.identity_basis.shape[1:] == (478, 3) and 20 <= model.num_identity <= 40
    assert model.triangles.shape == (898, 3) and model.triangles.dtype == np.int32
    assert model.unit_names == ARKIT_NAMES
    assert np.all(np.isfinite(model.unit_deltas)) and np.all(np.isfinite(model.identity_basis))
    width = model.neutral[454, 0] - model.neutral[234, 0]
    assert 0.13 < width < 0.17  # metres, not centimetres


def test_head_frame_orientation_and_iris(model):
    v = model.neutral
    assert v[263, 0] > 0 > v[33, 0]          # subject's left eye at +x
    assert v[10, 1] > v[1, 1] > v[152, 1]    # forehead above nose above chin
    assert v[1, 2] > v[234, 2]               # nose tip out of the face (+z)
    # MediaPipe order: 468 = subject's right iris centre, 473 = left; rings run +x, +y, -x, -y
    assert v[468, 0] < 0 < v[473, 0]
    for c in (468, 473):
        ring = v[c + 1:c + 5] - v[c]
        assert ring[0, 0] > 0 and ring[1, 1] > 0 and ring[2, 0] < 0 and ring[3, 1] < 0
        np.testing.assert_allclose(np.linalg.norm(ring, axis=1), 5.8 * MM, rtol=1e-4)


def test_mirror_map_and_mirror_units(model):
    m = model.mirror
    assert np.array_equal(m[m], np.arange(478))
    np.testing.assert_allclose(model.neutral[m] * [-1, 1, 1], model.neutral, atol=1e-6)
    for k, mk in enumerate(MIRROR):
        np.testing.assert_allclose(model.unit_deltas[mk], mirror_field(model.unit_deltas[k], m), atol=1e-7,
                                   err_msg=ARKIT_NAMES[k])


def test_right_lid_rings_mirror_the_left(model):
    from backend.facemodel.regions import (LID_LOWER_RING2_LEFT, LID_LOWER_RING2_RIGHT, LID_UPPER_RING2_LEFT,
                                           LID_UPPER_RING2_RIGHT)
    assert [int(model.mirror[i]) for i in LID_UPPER_RING2_LEFT] == list(LID_UPPER_RING2_RIGHT)
    assert [int(model.mirror[i]) for i in LID_LOWER_RING2_LEFT] == list(LID_LOWER_RING2_RIGHT)
    assert (model.neutral[list(LID_UPPER_RING2_RIGHT + LID_LOWER_RING2_RIGHT), 0] < 0).all()


def test_every_unit_moves_something_locally(model):
    for k, name in enumerate(ARKIT_NAMES):
        mag = np.linalg.norm(model.unit_deltas[k], axis=1)
        assert mag.max() > (1.5 * MM if name != "tongueOut" else 1.0 * MM), name
        assert mag.max() < 40 * MM, name
        if name in ("jawLeft", "mouthLeft"):  # whole jaw / mouth slides toward the subject's left
            assert model.unit_deltas[k][mag > 0.3 * mag.max(), 0].min() > 0, name
        elif name.endswith("Left"):  # one-sided units live on the subject's left (+x)
            moved = mag > 0.3 * mag.max()
            assert model.neutral[moved, 0].min() > -5 * MM, name


def test_blink_closes_its_own_eye_only(model):
    n = posed(model)
    v = posed(model, eyeBlinkLeft=1.0)
    assert gap(n, 386, 374) > 5 * MM
    assert abs(gap(v, 386, 374)) < 0.6 * MM and abs(gap(v, 387, 373)) < 1.5 * MM
    right_eye = [33, 133, 159, 145, 158, 153, 468]
    np.testing.assert_allclose(v[right_eye], n[right_eye], atol=1e-6)
    assert gap(posed(model, eyeWideLeft=1.0), 386, 374) > gap(n, 386, 374) + 2 * MM
    assert gap(posed(model, eyeSquintLeft=1.0), 386, 374) < gap(n, 386, 374) - 2 * MM


def test_jaw_open_drops_chin_and_parts_lips(model):
    n, v = posed(model), posed(model, jawOpen=1.0)
    chin_drop = n[152, 1] - v[152, 1]
    assert chin_drop > 15 * MM                                  # chin down
    parted = gap(v, 13, 14) - gap(n, 13, 14)
    assert 25 * MM < parted < 40 * MM and parted > chin_drop    # ARKit: lips wide apart, more than the chin drops
    np.testing.assert_allclose(v[[0, 13, 1, 10, 33, 263]], n[[0, 13, 1, 10, 33, 263]], atol=0.2 * MM)
    closed = posed(model, jawOpen=1.0, mouthClose=1.0)
    assert gap(closed, 13, 14) < gap(n, 13, 14) + 3 * MM        # mouthClose closes the lips with the jaw open
    assert n[152, 1] - closed[152, 1] > 15 * MM                 # ... while the jaw stays open


def test_mouth_corner_units(model):
    n = posed(model)
    smile = posed(model, mouthSmileLeft=1.0) - n
    assert smile[291, 1] > 6 * MM and abs(smile[61]).max() < 0.5 * MM
    frown = posed(model, mouthFrownLeft=1.0) - n
    assert frown[291, 1] < -5 * MM
    dimple = posed(model, mouthDimpleLeft=1.0) - n
    assert dimple[291, 2] < -4 * MM and abs(dimple[291, 1]) < 1 * MM
    stretch = posed(model, mouthStretchLeft=1.0) - n
    assert stretch[291, 0] > 5 * MM and stretch[291, 1] < -2 * MM
    shift = posed(model, mouthLeft=1.0) - n
    assert shift[[61, 291, 0, 17], 0].min() > 6 * MM


def test_lip_shape_units(model):
    n = posed(model)
    width = n[291, 0] - n[61, 0]
    pucker, funnel = posed(model, mouthPucker=1.0), posed(model, mouthFunnel=1.0)
    assert pucker[291, 0] - pucker[61, 0] < width - 10 * MM and pucker[0, 2] - n[0, 2] > 6 * MM
    assert gap(funnel, 13, 14) > gap(n, 13, 14) + 1.5 * MM
    assert gap(funnel, 13, 14) > gap(pucker, 13, 14) + 3 * MM
    assert posed(model, mouthRollLower=1.0)[17, 2] < n[17, 2] - 2 * MM
    assert posed(model, mouthShrugLower=1.0)[17, 1] > n[17, 1] + 2 * MM
    assert posed(model, mouthUpperUpLeft=1.0)[267, 1] > n[267, 1] + 3 * MM
    assert posed(model, mouthLowerDownLeft=1.0)[314, 1] < n[314, 1] - 3 * MM
    press = posed(model, mouthPressLeft=1.0)
    assert gap(press, 312, 317) < gap(n, 312, 317) - 2 * MM


def test_brow_cheek_nose_units(model):
    n = posed(model)
    inner = posed(model, browInnerUp=1.0) - n
    assert inner[285, 1] > 5 * MM and inner[55, 1] > 5 * MM and inner[300, 1] < inner[285, 1] / 2
    outer = posed(model, browOuterUpLeft=1.0) - n
    assert outer[300, 1] > 6 * MM and abs(outer[70]).max() < 1e-6
    assert (posed(model, browDownLeft=1.0) - n)[285, 1] < -4 * MM
    puff = posed(model, cheekPuff=1.0) - n
    assert puff[411, 0] > 3 * MM and puff[187, 0] < -3 * MM
    assert (posed(model, cheekSquintLeft=1.0) - n)[330, 1] > 2 * MM
    assert (posed(model, noseSneerLeft=1.0) - n)[327, 1] > 2 * MM


def test_gaze_units_move_the_iris(model):
    n = posed(model)
    # left eye: "out" is toward the ear (+x); right eye: "in" is toward the nose (+x)
    assert (posed(model, eyeLookOutLeft=1.0) - n)[473, 0] > 4 * MM
    assert (posed(model, eyeLookInRight=1.0) - n)[468, 0] > 4 * MM
    assert (posed(model, eyeLookUpLeft=1.0) - n)[473, 1] > 4 * MM
    down = posed(model, eyeLookDownLeft=1.0) - n
    assert down[473, 1] < -4 * MM and down[386, 1] < -1 * MM  # lid follows the gaze
    np.testing.assert_allclose(down[468], 0.0, atol=1e-9)


def test_rest_lids_sit_where_mediapipe_puts_them(model):
    """The model's neutral lids are the canonical mesh's opened by REST_EYE_OPENING of eyeWide
    (about 1.7 mm at the middle of the upper lid), the lower lids and the rest of the face unmoved."""
    from backend.facemodel.canonical import load_canonical
    from backend.facemodel.model import REST_EYE_OPENING

    canonical, _ = load_canonical()
    n = model.neutral.astype(np.float64)
    opened = gap(n, 386, 374) - gap(canonical, 386, 374)
    assert 1.2 * MM < opened < 2.5 * MM and REST_EYE_OPENING > 0
    assert gap(n, 159, 145) - gap(canonical, 159, 145) == pytest.approx(opened, abs=0.2 * MM)
    far = [1, 4, 152, 61, 291, 10, 234, 454]
    np.testing.assert_allclose(n[far], canonical[far], atol=1e-6)


def test_rest_irises_sit_above_the_eye_contour_centre(model):
    """MediaPipe's irises of a person looking into the lens sit REST_IRIS_RAISE_M above the centre of
    the canonical eye contour; whole irises move (rings with their centres), nothing else."""
    from backend.facemodel.canonical import NUM_MESH, load_canonical
    from backend.facemodel.model import REST_IRIS_RAISE_M

    canonical, _ = load_canonical()
    d = model.neutral[NUM_MESH:].astype(np.float64) - canonical[NUM_MESH:]
    np.testing.assert_allclose(d, np.tile([0.0, REST_IRIS_RAISE_M, 0.0], (len(d), 1)), atol=1e-6)
    assert 1 * MM <= REST_IRIS_RAISE_M <= 3 * MM


def test_vertices_is_linear(model):
    rng = np.random.default_rng(0)
    w = rng.uniform(0, 1, (3, 52))
    a = rng.normal(size=(3, model.num_identity))
    v = model.vertices(w, a)
    expect = model.neutral + np.einsum("bk,knc->bnc", w, model.unit_deltas) + np.einsum("bk,knc->bnc", a, model.identity_basis)
    np.testing.assert_allclose(v, expect, atol=1e-6)
    with pytest.raises(ValueError):
        model.vertices(np.zeros(51))


def test_identity_components_are_shapes_not_head_motion(model):
    """No identity component translates or turns the face as a whole (the head pose does that),
    and each still changes the face's shape: width moves the cheeks apart, depth the nose out."""
    mesh = model.neutral[:468].astype(np.float64)
    r = mesh - mesh.mean(0)
    rigid = np.zeros((6, 468, 3))
    for a in range(3):
        rigid[a, :, a] = 1.0
        rigid[3 + a] = np.cross(np.eye(3)[a], r)
    m = rigid.reshape(6, -1).T
    for k, name in enumerate(model.identity_names):
        field = model.identity_basis[k, :468].astype(np.float64).ravel()
        coef, *_ = np.linalg.lstsq(m, field, rcond=None)
        assert np.linalg.norm(m @ coef) <= 1e-4 * max(np.linalg.norm(field), 1e-12), name
    names = list(model.identity_names)
    width = model.identity_basis[names.index("width")]
    assert width[454, 0] - width[234, 0] > 3 * MM
    depth = model.identity_basis[names.index("depth")]
    assert depth[4, 2] - depth[234, 2] > 2 * MM


def test_transfer_units_scales_with_the_face(model):
    scaled = transfer_units(model.neutral * np.array([1.2, 0.9, 1.0]))
    np.testing.assert_allclose(scaled[:, :, 0], model.unit_deltas[:, :, 0] * 1.2, atol=1e-6)
    np.testing.assert_allclose(scaled[:, :, 1], model.unit_deltas[:, :, 1] * 0.9, atol=1e-6)
    np.testing.assert_allclose(transfer_units(model.neutral), model.unit_deltas, atol=1e-6)
    with pytest.raises(FaceKeyError) as e:
        transfer_units(np.zeros((100, 3)))
    assert e.value.code == "bad_argument"
