"""A .pc2 written by the backend plays in real Blender (bpy 5.0 module) through the Mesh Cache modifier."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend.protocol.errors import FaceKeyError
from backend.protocol.pc2 import write_pc2
from backend.retarget.pc2 import attach_mesh_cache

_MAKE = """
import bpy, json, sys
p = json.load(open(sys.argv[1]))
bpy.ops.wm.read_homefile(use_empty=True)
me = bpy.data.meshes.new("Head")
me.from_pydata(p["verts"], [], p["faces"])
ob = bpy.data.objects.new("Head", me)
bpy.context.scene.collection.objects.link(ob)
bpy.ops.wm.save_as_mainfile(filepath=p["blend"])
"""

_READ = """
import bpy, json, sys
p = json.load(open(sys.argv[1]))
bpy.ops.wm.open_mainfile(filepath=p["blend"])
ob = bpy.data.objects["Head"]
scene = bpy.context.scene
out = {"rest": [list(v.co) for v in ob.data.vertices], "frames": [],
       "modifiers": [(m.name, m.type, getattr(m, "cache_format", None)) for m in ob.modifiers]}
for f in p["frames"]:
    scene.frame_set(f)
    ev = ob.evaluated_get(bpy.context.evaluated_depsgraph_get())
    out["frames"].append([list(v.co) for v in ev.data.vertices])
json.dump(out, open(p["out"], "w"))
"""


def _bpy(script: str, params: dict, tmp: Path) -> None:
    pp = tmp / "params.json"
    pp.write_text(json.dumps(params))
    proc = subprocess.run([sys.executable, "-c", script, str(pp)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_pc2_plays_through_mesh_cache_modifier(tmp_path):
    pytest.importorskip("bpy")
    n = 6
    g = np.stack(np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n)), -1).reshape(-1, 2)
    rest = np.concatenate([g, np.zeros((len(g), 1))], 1)
    faces = [[i * n + j, i * n + j + 1, (i + 1) * n + j + 1, (i + 1) * n + j] for i in range(n - 1) for j in range(n - 1)]
    _bpy(_MAKE, {"verts": rest.tolist(), "faces": faces, "blend": str(tmp_path / "in.blend")}, tmp_path)
    t = 4
    frames = rest[None] + np.linspace(0, 0.3, t)[:, None, None] * np.array([0.0, 0.0, 1.0]) * rest[None, :, :1]
    write_pc2(tmp_path / "take.pc2", frames, start_frame=10)
    rep = attach_mesh_cache(tmp_path / "take.pc2", tmp_path / "in.blend", tmp_path / "out.blend", "Head",
                            start_frame=10)
    assert rep["points"] == n * n and rep["samples"] == t
    _bpy(_READ, {"blend": str(tmp_path / "out.blend"), "frames": [10, 11, 12, 13], "out": str(tmp_path / "r.json")},
         tmp_path)
    got = json.loads((tmp_path / "r.json").read_text())
    assert got["modifiers"] == [["FaceKey Mesh Cache", "MESH_CACHE", "PC2"]]
    np.testing.assert_allclose(np.array(got["rest"]), rest, atol=1e-6)       # mesh data untouched
    np.testing.assert_allclose(np.array(got["frames"]), frames, atol=1e-6)   # each frame plays its sample


_MAKE_SUBSURF = _MAKE.replace("bpy.ops.wm.save_as_mainfile", "ob.modifiers.new('Subdivision', 'SUBSURF')\n"
                                                             "pin = ob.modifiers.new('Pinned', 'SMOOTH')\n"
                                                             "pin.factor, pin.use_pin_to_last = 0.0, True\n"
                                                             "bpy.context.scene.render.fps = 24\n"
                                                             "bpy.ops.wm.save_as_mainfile")


def test_cache_plays_at_the_takes_rate_before_the_other_modifiers(tmp_path):
    """A 12 fps take in a 24 fps scene: one sample every two scene frames (it played one a frame, twice as
    fast); the cache goes first in the stack (after a Subdivision it did nothing: vertex count mismatch), also
    when a modifier is pinned last."""
    pytest.importorskip("bpy")
    rest = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0.0]])
    _bpy(_MAKE_SUBSURF, {"verts": rest.tolist(), "faces": [[0, 1, 2, 3]], "blend": str(tmp_path / "in.blend")},
         tmp_path)
    frames = rest[None] + np.arange(3)[:, None, None] * np.array([0.0, 0.0, 0.1])
    write_pc2(tmp_path / "take.pc2", frames, start_frame=1)
    attach_mesh_cache(tmp_path / "take.pc2", tmp_path / "in.blend", tmp_path / "out.blend", "Head",
                      start_frame=1, take_fps=12.0)
    _bpy(_READ, {"blend": str(tmp_path / "out.blend"), "frames": [1, 2, 3, 5], "out": str(tmp_path / "r.json")},
         tmp_path)
    got = json.loads((tmp_path / "r.json").read_text())
    assert [m[0] for m in got["modifiers"]] == ["FaceKey Mesh Cache", "Subdivision", "Pinned"]
    heights = [max(v[2] for v in f) for f in got["frames"]]
    np.testing.assert_allclose(heights, [0.0, 0.05, 0.1, 0.2], atol=1e-5)     # sample = (frame - 1) / 2


def test_mesh_cache_rejects_wrong_point_count(tmp_path):
    pytest.importorskip("bpy")
    rest = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0.0]])
    _bpy(_MAKE, {"verts": rest.tolist(), "faces": [[0, 1, 2]], "blend": str(tmp_path / "in.blend")}, tmp_path)
    write_pc2(tmp_path / "take.pc2", np.zeros((2, 5, 3)))
    with pytest.raises(FaceKeyError) as e:
        attach_mesh_cache(tmp_path / "take.pc2", tmp_path / "in.blend", tmp_path / "out.blend", "Head")
    assert e.value.code == "bad_argument" and "5 points" in str(e.value)
