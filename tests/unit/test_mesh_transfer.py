"""Mesh-level transfer: closest-triangle map, model fit, PC2 files, FLAME head acceptance."""
from __future__ import annotations

import numpy as np
import pytest

from backend.facemodel import load_face_model
from backend.protocol.arkit import INDEX
from backend.protocol.errors import FaceKeyError
from backend.retarget.mesh_transfer import FaceTransfer, closest_on_triangles, fit_face, read_obj, take_to_mesh
from backend.protocol.pc2 import read_pc2, write_pc2

FLAME = "meshes/flame_topology/smirk_flame_head_template.obj"


def test_closest_on_triangles_matches_dense_sampling():
    rng = np.random.default_rng(0)
    verts, tris, pts = rng.normal(size=(30, 3)), rng.integers(0, 30, (20, 3)), rng.normal(size=(50, 3))
    d, t, b = closest_on_triangles(pts, verts, tris)
    g = np.linspace(0, 1, 80)
    u, v = np.meshgrid(g, g)
    keep = u + v <= 1
    bs = np.stack([1 - u[keep] - v[keep], u[keep], v[keep]], 1)
    samples = np.einsum("sk,fkd->fsd", bs, verts[tris]).reshape(-1, 3)
    dense = np.linalg.norm(pts[:, None] - samples[None], axis=-1).min(1)
    assert np.all(d <= dense + 1e-9) and np.all(dense - d < 0.02)
    np.testing.assert_allclose(np.einsum("pk,pkd->pd", b, verts[tris[t]]) - pts,
                               np.einsum("pk,pkd->pd", b, verts[tris[t]]) - pts, atol=0)
    np.testing.assert_allclose(np.linalg.norm(np.einsum("pk,pkd->pd", b, verts[tris[t]]) - pts, axis=1), d,
                               atol=1e-9)


def test_fit_recovers_a_moved_model_face():
    m = load_face_model()
    ident = np.random.default_rng(1).normal(size=m.num_identity) * 0.5
    face = m.vertices(np.zeros(52), ident).astype(np.float64)
    a = np.deg2rad(5)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    target = 1.05 * face @ rot.T + [0.01, 1.5, -0.02]
    fit = fit_face(target)
    assert abs(fit.scale - 1.05) < 0.02
    assert np.abs(fit.points - target).max() < 0.002
    # the transfer onto the same surface reproduces the model displacement where the faces coincide
    tr = FaceTransfer(fit, target)
    d = m.unit_deltas[INDEX["jawOpen"]][None]
    moved = tr.displace(d)[0]
    want = 1.05 * d[0].astype(np.float64) @ rot.T
    assert np.median(np.linalg.norm(moved[:468] - want[:468], axis=1)) < 0.001


@pytest.mark.parametrize("turn", ["face -z", "face +x", "Y-up as Z-up"])
def test_fit_finds_a_face_turned_away_from_the_head_frame(turn):
    """A head exported facing another axis (a Y-up head read as Z-up, a face looking back)
    is found anyway: the fit lands on the same face, turned."""
    m = load_face_model()
    face = m.vertices(np.zeros(52), np.random.default_rng(2).normal(size=m.num_identity) * 0.5).astype(np.float64)
    rot = {"face -z": [[-1, 0, 0], [0, 1, 0], [0, 0, -1]], "face +x": [[0, 0, 1], [0, 1, 0], [-1, 0, 0]],
           "Y-up as Z-up": [[1, 0, 0], [0, 0, -1], [0, 1, 0]]}[turn]
    target = face @ np.array(rot, np.float64).T
    fit = fit_face(target)
    assert np.abs(fit.points - target).max() < 0.002
    np.testing.assert_allclose(fit.rotation, rot, atol=0.02)


def test_fit_rejects_meshes_without_a_head_sized_face():
    m = load_face_model()
    with pytest.raises(FaceKeyError) as e:
        fit_face(m.neutral.astype(np.float64) * 100)              # centimetres
    assert e.value.code == "face_not_found" and "metres" in e.value.hint
    blob = np.random.default_rng(0).normal(size=(2000, 3)) * 0.06
    with pytest.raises(FaceKeyError) as e:
        fit_face(blob)
    assert e.value.code == "face_not_found" and "RMS" in e.value.message


def test_pc2_round_trip_and_errors(tmp_path):
    frames = np.random.default_rng(0).normal(size=(4, 7, 3)).astype(np.float32)
    p = write_pc2(tmp_path / "a" / "c.pc2", frames, start_frame=5, sample_rate=1)
    data = p.read_bytes()
    assert data[:12] == b"POINTCACHE2\0" and len(data) == 32 + 4 * 7 * 12
    back, start, rate = read_pc2(p)
    np.testing.assert_array_equal(back, frames)
    assert (start, rate) == (5.0, 1.0)
    with pytest.raises(FaceKeyError):
        write_pc2(tmp_path / "b.pc2", frames[0])
    (tmp_path / "bad.pc2").write_bytes(data[:-4])
    with pytest.raises(FaceKeyError):
        read_pc2(tmp_path / "bad.pc2")


@pytest.fixture(scope="module")
def flame(realdata):
    verts, tris = read_obj(realdata / FLAME)
    fit = fit_face(verts)
    return verts, tris, FaceTransfer(fit, verts)


def test_flame_neutral_take_keeps_rest_shape(flame):
    verts, _, tr = flame
    assert verts.shape == (5023, 3)          # FLAME topology
    assert tr.fit.rms_m < 0.003 and 0.9 < tr.fit.scale < 1.1
    out = take_to_mesh(np.zeros((5, 52), np.float32), verts, transfer=tr)
    assert np.abs(out - verts[None]).max() < 1e-4          # within 0.1 mm of rest


def test_flame_geometry_follows_jaw_open_ramp(flame):
    verts, _, tr = flame
    w = np.zeros((6, 52), np.float32)
    w[:, INDEX["jawOpen"]] = np.linspace(0, 1, 6)
    out = take_to_mesh(w, verts, transfer=tr)
    disp = out - verts[None]
    chin = np.argmin(np.linalg.norm(verts - tr.fit.points[152], axis=1))
    drops = -disp[:, chin, 1]
    assert np.all(np.diff(drops) > 0.001) and drops[-1] > 0.01    # the chin goes down with the ramp
    forehead = np.argmin(np.linalg.norm(verts - tr.fit.points[10], axis=1))
    assert np.abs(disp[:, forehead]).max() < 1e-4
    back = verts[:, 2] < verts[:, 2].min() + 0.05                  # the back of the head stays still
    assert np.abs(disp[:, back]).max() < 1e-6                       # float32 rounding at y ~ 1.5 m only


def test_a_part_in_front_of_the_nose_does_not_turn_the_face_onto_the_scalp(flame):
    """A 7 x 2 cm plate 5 mm in front of the FLAME head's nose (a glasses lens): the start with the nose tip on
    the most forward vertex got stuck on the plate, and a face turned to look up, half its points laid on the
    scalp, won (its nose 13 cm above the real one); the face is found where it is."""
    verts, _, tr = flame
    nose = tr.fit.points[4]
    xs, ys = np.meshgrid(np.linspace(-0.035, 0.035, 8), np.linspace(-0.01, 0.01, 3))
    plate = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], 1) + nose + [0, 0.02, 0.005]
    fit = fit_face(np.vstack([verts, plate]))
    assert np.linalg.norm(fit.points[4] - nose) < 0.012
    assert fit.rotation[2, 2] > 0.95                                    # still looking along +z
