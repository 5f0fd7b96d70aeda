"""Worker op ``mesh_retarget`` through the real backend process: a take onto a mesh without shape
keys as a .pc2, in the head frame and in Blender object-local axes."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from backend.facemodel import load_face_model
from backend.protocol.arkit import INDEX
from backend.protocol.client import BackendClient
from backend.protocol.errors import FaceKeyError
from backend.protocol.take import Take, write_take
from backend.protocol.pc2 import read_pc2

CHIN, FOREHEAD = 152, 10


@pytest.fixture
def backend(tmp_path):
    client = BackendClient(sys.executable, str(tmp_path / "backend.log"))
    client.start()
    yield client
    client.close()


def _jaw_take(tmp_path, n=10):
    take = Take.empty(n, 24.0, source="jaw.mp4")
    take.weights[:, INDEX["jawOpen"]] = np.linspace(0, 1, n)
    return write_take(tmp_path / "jaw.npz", take)


def test_worker_mesh_retarget_in_blender_axes_matches_head_axes(tmp_path, backend):
    """The same face given in head axes and in Blender axes (head = (x, z, -y)) gives the same motion,
    the Blender cache in Blender axes; the chin drops with jawOpen, the forehead stays."""
    rest = load_face_model().neutral[:468].astype(np.float64) * 1.08
    local = np.stack([rest[:, 0], -rest[:, 2], rest[:, 1]], 1)          # Blender local: (x_h, -z_h, y_h)
    np.savez(tmp_path / "head.npz", vertices=rest)
    np.savez(tmp_path / "local.npz", vertices=local)
    take = _jaw_take(tmp_path)
    outs = {}
    for axes, verts in (("head", "head.npz"), ("blender", "local.npz")):
        outs[axes] = backend.request("mesh_retarget", {"take": take, "vertices": str(tmp_path / verts),
                                                       "output": str(tmp_path / f"{axes}.pc2"), "serep": None,
                                                       "start_frame": 5.0, "axes": axes}, timeout=120)
    head, start, _ = read_pc2(outs["head"]["pc2"])
    blend, _, _ = read_pc2(outs["blender"]["pc2"])
    assert start == 5.0 and outs["head"]["samples"] == 10 and outs["head"]["points"] == 468
    assert np.abs(head[0] - rest).max() < 1e-4
    drops = rest[CHIN, 1] - head[:, CHIN, 1]
    assert np.all(np.diff(drops) > 0) and drops[-1] > 0.01
    assert np.abs(head[:, FOREHEAD] - rest[FOREHEAD]).max() < 1e-3
    assert abs(outs["head"]["max_displacement_mm"] - 1000 * np.abs(head - rest).max()) < 0.01
    back = np.stack([head[..., 0], -head[..., 2], head[..., 1]], -1)
    assert np.abs(blend - back).max() < 1e-5                           # Blender-axes cache = head cache, rotated
    assert blend[-1, CHIN, 2] < local[CHIN, 2] - 0.01                   # chin lower along Blender's Z


def test_worker_mesh_retarget_errors_are_coded(tmp_path, backend):
    take = _jaw_take(tmp_path)
    np.savez(tmp_path / "bad.npz", points=np.zeros((500, 3)))
    cases = [({"vertices": str(tmp_path / "none.npz")}, "file_missing"),
             ({"vertices": str(tmp_path / "bad.npz")}, "bad_argument"),
             ({"vertices": str(tmp_path / "bad.npz"), "axes": "maya"}, "bad_argument")]
    for extra, code in cases:
        with pytest.raises(FaceKeyError) as e:
            backend.request("mesh_retarget", {"take": take, "output": str(tmp_path / "x.pc2"), **extra}, timeout=60)
        assert e.value.code == code
