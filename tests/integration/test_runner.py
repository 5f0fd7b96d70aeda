"""backend.blender_runner with the bpy module: bake_take_file, bake_take_folder (``facekey batch``) and
build_head_blend, checked by reopening the .blend."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from blender_fixtures import synthetic_take

pytest.importorskip("bpy")

_INSPECT = r"""
import bpy, json, sys, numpy as np
argv = sys.argv[sys.argv.index('--') + 1:]
bpy.ops.wm.open_mainfile(filepath=argv[0])
out = {'fps': bpy.context.scene.render.fps, 'range': [bpy.context.scene.frame_start, bpy.context.scene.frame_end],
       'objects': sorted(o.name for o in bpy.data.objects), 'actions': {}}
for a in bpy.data.actions:
    fcs = [fc for l in a.layers for s in l.strips for b in s.channelbags for fc in b.fcurves]
    out['actions'][a.name] = {fc.data_path + '[%d]' % fc.array_index: len(fc.keyframe_points) for fc in fcs}
obj = bpy.data.objects.get(argv[1])
if obj is not None and obj.data.shape_keys is not None:
    out['keys'] = [kb.name for kb in obj.data.shape_keys.key_blocks]
    out['verts'] = len(obj.data.vertices)
print('JSON' + json.dumps(out))
"""


def _inspect(blend, obj: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", _INSPECT, "--", str(blend), obj], capture_output=True, text=True,
                          check=True, timeout=120)
    return json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("JSON")][-1][4:])


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
    info = _inspect(tmp_path / "demo.blend", "FaceKeyHead")
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
    info = _inspect(tmp_path / "out.blend", "Head")
    assert info["actions"]["FK_synthetic_take"] == {'key_blocks["eyeBlink_L"].value[0]': 20,
                                                    'key_blocks["jawOpen"].value[0]': 20}
    with pytest.raises(FaceKeyError) as err:
        bake_take_file(take_path, blend_in, tmp_path / "out2.blend", ["Nope"])
    assert err.value.code == "object_missing" and "Head" in err.value.hint


_MAKE_WITH_ACTION = (
    "import bpy,sys; bpy.ops.wm.read_homefile(use_empty=True); "
    "me=bpy.data.meshes.new('H'); me.from_pydata([(0,0,0),(1,0,0),(0,1,0)],[],[(0,1,2)]); "
    "o=bpy.data.objects.new('Head',me); bpy.context.scene.collection.objects.link(o); o.shape_key_add(name='Basis'); "
    "[o.shape_key_add(name=n) for n in ('jawOpen','eyeBlink_L')]; "
    "o.data.shape_keys.key_blocks['jawOpen'].value=0.25; "
    "o.data.shape_keys.key_blocks['jawOpen'].keyframe_insert('value', frame=1); "
    "o.data.shape_keys.animation_data.action.name='AnimatorsWork'; "
    "bpy.ops.wm.save_as_mainfile(filepath=sys.argv[-1])")


def test_batch_bakes_a_folder_one_action_per_take(tmp_path):
    """`facekey batch`: every take of a folder (.npz and Live Link .csv) gets its own action in one .blend;
    a broken take is listed (exit code 3) and does not stop the others; nothing existing is changed."""
    from typer.testing import CliRunner

    from backend.cli import app
    from backend.protocol.livelink import write_livelink_csv
    from backend.protocol.take import write_take
    blend_in = tmp_path / "in.blend"
    subprocess.run([sys.executable, "-c", _MAKE_WITH_ACTION, str(blend_in)], check=True, capture_output=True,
                   timeout=120)
    before = blend_in.read_bytes()
    takes = tmp_path / "takes"
    takes.mkdir()
    write_take(takes / "day1_take1.npz", synthetic_take(20, 30.0))
    write_livelink_csv(takes / "day1_take2.csv", synthetic_take(45, 30.0))
    (takes / "day1_take3.npz").write_bytes(b"truncated download")
    (takes / "shot_list.txt").write_text("not a take")
    out = tmp_path / "out.blend"
    res = CliRunner().invoke(app, ["batch", str(takes), str(blend_in), "-o", str(out), "--objects", "Head",
                                   "--start-frame", "101"])
    assert res.exit_code == 3, res.output
    assert "2 of 3 takes baked" in res.output and "day1_take3.npz not baked" in res.output
    assert "take_invalid" in res.output and "hint:" in res.output
    assert blend_in.read_bytes() == before
    info = _inspect(out, "Head")
    keys = {'key_blocks["eyeBlink_L"].value[0]', 'key_blocks["jawOpen"].value[0]'}
    assert info["actions"]["FK_day1_take1"] == {k: 20 for k in keys}
    assert info["actions"]["FK_day1_take2"] == {k: 45 for k in keys}
    assert info["actions"]["AnimatorsWork"] == {'key_blocks["jawOpen"].value[0]': 1}
    assert not any("take3" in name for name in info["actions"])


def test_batch_with_no_bakeable_take_saves_nothing(tmp_path):
    from backend.blender_runner import bake_take_folder
    from backend.protocol.errors import FaceKeyError
    blend_in = tmp_path / "in.blend"
    subprocess.run([sys.executable, "-c", _MAKE_WITH_ACTION, str(blend_in)], check=True, capture_output=True,
                   timeout=120)
    takes = tmp_path / "takes"
    takes.mkdir()
    (takes / "a.npz").write_bytes(b"x")
    (takes / "b.csv").write_text("Timecode\n")
    with pytest.raises(FaceKeyError) as err:
        bake_take_folder(takes, blend_in, tmp_path / "out.blend", ["Head"])
    assert err.value.code == "take_invalid" and "No take" in err.value.message and "a.npz" in err.value.message
    assert not (tmp_path / "out.blend").exists()
    with pytest.raises(FaceKeyError) as err:
        (takes / "ok.npz").write_bytes(b"x")
        bake_take_folder(takes, blend_in, tmp_path / "out.blend", ["Nope"])
    assert err.value.code == "object_missing" and "Head" in err.value.hint
