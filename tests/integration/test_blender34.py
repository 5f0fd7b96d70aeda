"""Debian's Blender 3.4 binary: the legacy zip installs with addon_install, enables, bakes (one take,
and a folder of takes in one `blender -b` run) and bridges unsure stretches."""
from __future__ import annotations

import os

import numpy as np
import pytest

from blender_fixtures import BLENDER_34, numpy_path_dir, synthetic_take
from test_bake_operator import assert_bridged

pytestmark = [pytest.mark.blender_binary,
              pytest.mark.skipif(not os.path.isfile(BLENDER_34), reason=f"{BLENDER_34} is absent")]


def test_legacy_addon_imports_csv_in_blender_34(run_scenario, synthetic_csv, tmp_path):
    res = run_scenario("import_csv", {"csv": str(synthetic_csv), "start_frame": 1, "head": True,
                                      "probe_frames": [1, 1 + 119 * 0.4]}, blender=BLENDER_34)
    assert res["rc"] == ["FINISHED"], res["state"]
    assert res["action"] == "FK_synthetic_take"
    assert len(res["curves"]) == 5
    for c in res["curves"]:
        co = np.array(c["co"]).reshape(-1, 2)
        assert co.shape == (120, 2) and set(c["interp"]) == {"LINEAR"}
    for name, curves in res["before"]["actions"].items():
        assert res["after"]["actions"][name] == curves
    np.testing.assert_allclose(res["probe"][1]["front"], [np.sin(0.4), -np.cos(0.4), 0], atol=1e-4)


def test_bridge_unsure_in_blender_34(run_scenario):
    """Bridging the unsure stretches works the same on Blender 3.4's legacy actions (no slots)."""
    assert_bridged(run_scenario("bridge_unsure", {}, blender=BLENDER_34))


_MAKE_CHARACTER = """
import bpy
me = bpy.data.meshes.new('Head'); me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 0, 1)], [], [(0, 1, 2)])
ob = bpy.data.objects.new('Head', me); bpy.context.scene.collection.objects.link(ob)
ob.shape_key_add(name='Basis')
for n in ('JawOpen', 'EyeBlinkLeft', 'MouthSmile_R'):
    ob.shape_key_add(name=n).data[0].co = (0, 0, 0.5)
bpy.ops.wm.save_as_mainfile(filepath=r'%s')
"""


def test_bake_take_file_with_the_blender_34_binary(tmp_path):
    import subprocess

    from backend.blender_runner import bake_take_file
    from backend.protocol.errors import FaceKeyError
    from backend.protocol.take import write_take
    blend_in = tmp_path / "head34.blend"
    subprocess.run([BLENDER_34, "-b", "--factory-startup", "--python-exit-code", "1", "--python-expr",
                    _MAKE_CHARACTER % blend_in], check=True, capture_output=True, timeout=120)
    take_path = write_take(tmp_path / "take.npz", synthetic_take(30, 30.0))
    extra = [str(numpy_path_dir(tmp_path))]
    report = bake_take_file(take_path, blend_in, tmp_path / "out.blend", ["Head", "Camera"], blender=BLENDER_34,
                            python_paths=extra, timeout=120)
    assert report["objects"]["Head"]["mapped"] == {"eyeBlinkLeft": "EyeBlinkLeft", "jawOpen": "JawOpen",
                                                   "mouthSmileRight": "MouthSmile_R"}
    assert report["skipped"] == {"Camera": "not a mesh (camera)"}
    assert report["frames"] == 30 and (tmp_path / "out.blend").is_file()
    with pytest.raises(FaceKeyError) as err:
        bake_take_file(take_path, blend_in, tmp_path / "out2.blend", ["Camera"], blender=BLENDER_34,
                       python_paths=extra, timeout=120)
    assert err.value.code == "no_shape_keys" and err.value.hint
    assert not (tmp_path / "out2.blend").exists()


def test_batch_bakes_a_take_folder_with_the_blender_34_binary(tmp_path):
    import subprocess

    from backend.blender_runner import bake_take_folder
    from backend.protocol.livelink import write_livelink_csv
    from backend.protocol.take import write_take
    blend_in = tmp_path / "head34.blend"
    subprocess.run([BLENDER_34, "-b", "--factory-startup", "--python-exit-code", "1", "--python-expr",
                    _MAKE_CHARACTER % blend_in], check=True, capture_output=True, timeout=120)
    takes = tmp_path / "takes"
    takes.mkdir()
    write_take(takes / "a.npz", synthetic_take(30, 30.0))
    write_livelink_csv(takes / "b.csv", synthetic_take(12, 30.0))
    (takes / "c.npz").write_bytes(b"x")
    report = bake_take_folder(takes, blend_in, tmp_path / "out.blend", ["Head"], blender=BLENDER_34,
                              python_paths=[str(numpy_path_dir(tmp_path))], timeout=120)
    assert {os.path.basename(p): r["objects"]["Head"]["action"] for p, r in report["takes"].items()} == {
        "a.npz": "FK_a", "b.csv": "FK_b"}
    assert [r["frames"] for r in report["takes"].values()] == [30, 12]
    assert {os.path.basename(p): e["code"] for p, e in report["failed"].items()} == {"c.npz": "take_invalid"}
    assert (tmp_path / "out.blend").is_file()


def test_facekey_blender_writes_a_blend_blender_34_opens(tmp_path, monkeypatch):
    """$FACEKEY_BLENDER wins over the installed bpy module (5.0, whose new .blend format 3.4-4.4 cannot
    read): the demo head comes back as a Blender 3.4 file.  The bpy module used to be taken whatever the
    variable said, and `facekey demo` had no --blender."""
    from backend.blender_runner import build_head_blend
    from backend.protocol.arkit import ARKIT_NAMES
    from backend.protocol.take import write_take

    rng = np.random.default_rng(0)
    verts = rng.normal(size=(12, 3)).astype(np.float32) * 0.05
    npz = tmp_path / "head.npz"
    np.savez(npz, vertices=verts, triangles=np.array([[0, 1, 2], [3, 4, 5]], np.int32),
             unit_deltas=rng.normal(size=(52, 12, 3)).astype(np.float32) * 0.005, names=np.array(ARKIT_NAMES))
    monkeypatch.setenv("FACEKEY_BLENDER", BLENDER_34)
    build_head_blend(npz, write_take(tmp_path / "take.npz", synthetic_take(10, 30.0)), tmp_path / "demo.blend",
                     python_paths=[str(numpy_path_dir(tmp_path))])
    assert (tmp_path / "demo.blend").read_bytes()[:12] in (b"BLENDER-v304", b"BLENDER_v304")
