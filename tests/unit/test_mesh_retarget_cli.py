"""`facekey mesh-retarget`: a take onto a mesh without shape keys, as a .pc2 point cache."""
from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from backend.cli import app
from backend.facemodel import load_face_model
from backend.protocol.arkit import INDEX
from backend.protocol.take import Take, write_take
from backend.protocol.pc2 import read_pc2


def _obj(path, verts, tris):
    with open(path, "w") as f:
        f.writelines(f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in verts)
        f.writelines(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in tris)
    return path


def test_mesh_retarget_writes_a_cache_that_follows_the_take(tmp_path):
    m = load_face_model()
    target = _obj(tmp_path / "head.obj", m.neutral[:468] * 1.08, m.triangles)     # a bigger face, no keys
    take = Take.empty(10, 24.0, source="jaw.mp4")
    take.weights[:, INDEX["jawOpen"]] = np.linspace(0, 1, 10)
    take_path = write_take(tmp_path / "jaw.npz", take)
    res = CliRunner().invoke(app, ["mesh-retarget", take_path, str(target), "-o", str(tmp_path / "jaw.pc2")])
    assert res.exit_code == 0, res.output
    frames, start, rate = read_pc2(tmp_path / "jaw.pc2")
    assert frames.shape == (10, 468, 3) and start == 1.0
    rest = m.neutral[:468] * 1.08
    assert np.abs(frames[0] - rest).max() < 1e-4                       # neutral frame = rest shape (0.1 mm)
    chin = 152
    drops = rest[chin, 1] - frames[:, chin, 1]
    assert np.all(np.diff(drops) > 0) and drops[-1] > 0.01             # the chin goes down with jawOpen (> 1 cm)
    assert np.abs(frames[:, 10] - rest[10]).max() < 1e-3               # forehead stays (< 1 mm)


def test_mesh_retarget_errors_are_coded(tmp_path):
    res = CliRunner().invoke(app, ["mesh-retarget", str(tmp_path / "none.npz"), str(tmp_path / "none.obj"),
                                   "-o", str(tmp_path / "x.pc2")])
    assert res.exit_code == 2 and "file_missing" in res.output
