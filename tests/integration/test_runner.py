"""backend.blender_runner with the bpy module: bake_take_file and build_head_blend, checked by reopening the .blend."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from blender_fixtures import inspect_blend, synthetic_take

pytest.importorskip("bpy")

def test_build_head_blend_makes_an_animated_arkit_head(tmp_path):
    from backend.blender_runner import build_head_blend
    from backend.protocol.arkit import ARKIT_NAMES
    from backend.protocol.take import write_take
    rng = np.random.default_rng(0)
    n = 40
    verts = rng.normal(size=(n, 3)).astype(np.float32) * 0.05
    tris = np.array([[i, (i + 1) % n, (i + 2) % n] for i in range(0, n, 3)], np.int32)
    deltas = rng.normal(size=(52, n, 3)).astype(np.float32) * 0.005
    npz = tmp_path / "head.npz"
    np.savez(npz, vertices=verts, triangles=tris, unit_deltas=deltas, names=np.array(ARKIT_NAMES))
    take_path = write_take(tmp_path / "take.npz", synthetic_take(90, 30.0))
    report = build_head_blend(npz, take_path, tmp_path / "demo.blend", preview_png=tmp_path / "preview.png")
    assert (tmp_path / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["objects"]["FaceKeyHead"]["unmapped_units"] == []
    assert len(report["objects"]["FaceKeyHead"]["mapped"]) == 52
    info = inspect_blend(tmp_path / "demo.blend", "FaceKeyHead")
    assert info["fps"] == 30 and info["range"] == [1, 90]
    assert {"FaceKeyHead", "FaceKeyCamera", "FaceKeyLight"} <= set(info["objects"])
    assert info["keys"] == ["Basis", *ARKIT_NAMES] and info["verts"] == n
    curves = info["actions"]["FK_synthetic_take"]
    assert len(curves) == 52 and set(curves.values()) == {90}
    assert set(info["actions"]["FK_synthetic_take_head"]) == {f"rotation_euler[{i}]" for i in range(3)}


def test_bake_take_file_reports_and_never_writes_the_input(tmp_path):
    from backend.blender_runner import bake_take_file
    from backend.protocol.errors import FaceKeyError
    from backend.protocol.take import write_take
    make = ("import bpy,sys; bpy.ops.wm.read_homefile(use_empty=True); "
            "me=bpy.data.meshes.new('H'); me.from_pydata([(0,0,0),(1,0,0),(0,1,0)],[],[(0,1,2)]); "
            "o=bpy.data.objects.new('Head',me); bpy.context.scene.collection.objects.link(o); o.shape_key_add(name='Basis'); "
            "[o.shape_key_add(name=n) for n in ('jawOpen','eyeBlink_L','Extra')]; "
            "bpy.ops.wm.save_as_mainfile(filepath=sys.argv[-1])")
    blend_in = tmp_path / "in.blend"
    subprocess.run([sys.executable, "-c", make, str(blend_in)], check=True, capture_output=True, timeout=120)
    before = blend_in.read_bytes()
    take_path = write_take(tmp_path / "t.npz", synthetic_take(20, 30.0))
    report = bake_take_file(take_path, blend_in, tmp_path / "out.blend", ["Head"], start_frame=10)
    assert report["objects"]["Head"]["mapped"] == {"eyeBlinkLeft": "eyeBlink_L", "jawOpen": "jawOpen"}
    assert report["objects"]["Head"]["unused_keys"] == ["Extra"]
    assert blend_in.read_bytes() == before
    info = inspect_blend(tmp_path / "out.blend", "Head")
    assert info["actions"]["FK_synthetic_take"] == {'key_blocks["eyeBlink_L"].value[0]': 20,
                                                    'key_blocks["jawOpen"].value[0]': 20}
    with pytest.raises(FaceKeyError) as err:
        bake_take_file(take_path, blend_in, tmp_path / "out2.blend", ["Nope"])
    assert err.value.code == "object_missing" and "Head" in err.value.hint

