"""The headless ``render`` command (``blender_runner.render_take_rows``): a take baked onto a character and
rendered from the front, in real Blender (bpy module), read back by the capture."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("bpy")


def _head_blend(tmp_path, body: bool = False):
    """A .blend whose "FaceKeyHead" has our 52 units as ARKit-named keys (the demo head); with ``body`` the
    same mesh also holds a 1.6 m box below the head that no key moves (a character's body), and one key
    (eyeLookInLeft) also carries 2 micrometres of exporter noise on every vertex."""
    from backend.blender_runner import build_head_blend
    from backend.facemodel import load_face_model
    from backend.protocol.arkit import ARKIT_NAMES
    from backend.protocol.take import Take, write_take
    m = load_face_model()
    verts, tris, deltas = m.neutral, m.triangles, m.unit_deltas
    if body:    # head frame, metres: x right, y up; the box from the chin down to 1.6 m below it
        box = np.array([[x, y, z] for x in (-0.25, 0.25) for y in (-1.7, -0.12) for z in (-0.15, 0.05)])
        quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
        box_tris = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))]) + len(verts)
        verts, tris = np.vstack([verts, box]), np.vstack([tris, box_tris])
        deltas = np.concatenate([deltas, np.zeros((52, len(box), 3), deltas.dtype)], 1)
        deltas[ARKIT_NAMES.index("eyeLookInLeft")] += 2e-6 * np.random.default_rng(0).standard_normal(deltas.shape[1:])
    npz = tmp_path / "head.npz"
    np.savez(npz, vertices=verts, triangles=tris, unit_deltas=deltas, names=np.array(ARKIT_NAMES))
    blend = tmp_path / ("body.blend" if body else "head.blend")
    build_head_blend(npz, write_take(tmp_path / "still.npz", Take.empty(2, 24.0)), blend)
    return blend


@pytest.fixture
def arkit_head(tmp_path):
    """A .blend whose "FaceKeyHead" has our 52 units as ARKit-named keys (the demo head)."""
    return _head_blend(tmp_path)


def test_render_rows_show_the_baked_expression_to_the_capture(arkit_head, tmp_path):
    """The rows of a jaw-opening take render as front views of the head (every other row: 0, 2, 4, 6), and
    the capture of the eight rows as one clip reads the jaw opening with them.  (Our low-poly head is a poor
    face to render: its inner lips rest 5.5 mm apart and its mouth has no hole, so a single row solved as a
    photo reads mostly noise; the clip's shared face is what makes its jaw readable.)"""
    import cv2

    from backend.blender_runner import render_take_rows
    from backend.estimators import SolverSettings, get_estimator
    from backend.footage import open_footage
    from backend.protocol.arkit import INDEX
    from backend.protocol.take import Take, write_take
    from backend.tracking import track_footage
    take = Take.empty(8, 24.0, source="jaw.mp4")
    jaw = np.linspace(0.0, 0.8, 8)
    take.weights[:, INDEX["jawOpen"]] = jaw
    out = render_take_rows(write_take(tmp_path / "jaw.npz", take), arkit_head, "FaceKeyHead", tmp_path / "every2",
                           every=2, size=160)
    assert out["rows"] == [0, 2, 4, 6] and out["object"] == "FaceKeyHead" and out["action"].startswith("FK_jaw")
    out = render_take_rows(write_take(tmp_path / "jaw.npz", take), arkit_head, "FaceKeyHead", tmp_path / "frames",
                           size=360)
    images = [cv2.imread(f) for f in out["files"]]
    assert all(im.shape == (360, 360, 3) for im in images) and np.abs(images[0].astype(int) - images[-1]).max() > 50
    captured = get_estimator("solver").estimate(track_footage(open_footage(str(tmp_path / "frames" / "row_*.png"))),
                                                SolverSettings())
    read = captured.weights[:, INDEX["jawOpen"]]
    assert captured.valid.all() and np.corrcoef(read, jaw)[0, 1] >= 0.8 and read[-3:].max() - read[:2].min() >= 0.4


def test_render_rows_refuses_bad_arguments(arkit_head, tmp_path):
    """A row step below 1, more than one object, or an object without shape keys (a camera) is refused with
    a coded error, before anything renders."""
    from backend.blender_runner import render_take_rows
    from backend.protocol.errors import FaceKeyError
    from backend.protocol.take import Take, write_take
    take_path = write_take(tmp_path / "t.npz", Take.empty(4, 24.0))
    with pytest.raises(FaceKeyError) as err:
        render_take_rows(take_path, arkit_head, "FaceKeyHead", tmp_path / "a", every=0)
    assert err.value.code == "bad_argument" and "--every" in err.value.message
    with pytest.raises(FaceKeyError) as err:
        render_take_rows(take_path, arkit_head, "FaceKeyHead,FaceKeyCamera", tmp_path / "b")
    assert err.value.code == "bad_argument" and "one object" in err.value.message
    with pytest.raises(FaceKeyError) as err:
        render_take_rows(take_path, arkit_head, "FaceKeyCamera", tmp_path / "c")
    assert err.value.code == "no_shape_keys" and "FaceKeyCamera" in err.value.message
    assert not any((tmp_path / d).exists() for d in "abc")


def test_render_frames_the_face_of_a_mesh_that_also_holds_a_body(tmp_path):
    """A mesh whose head sits on a 1.6 m body is framed on the part its shape keys move, float noise in a
    key left out: the face fills the frame (the whole mesh framed would make it about a tenth of the frame)
    and the capture finds it."""
    from backend.blender_runner import render_take_rows
    from backend.footage import open_footage
    from backend.protocol.take import Take, write_take
    from backend.tracking import track_footage
    blend = _head_blend(tmp_path, body=True)
    out = render_take_rows(write_take(tmp_path / "still.npz", Take.empty(1, 24.0)), blend, "FaceKeyHead",
                           tmp_path / "frames", size=320)
    track = track_footage(open_footage(out["files"][0]))
    assert track.valid[0]
    assert np.ptp(track.landmarks[0, :, 0]) > 0.4 * 320


def test_render_turn_shows_the_take_head_rotation(arkit_head, tmp_path):
    """With ``turn`` the rows show the head turned by the take's rotation (the camera orbits the face): a
    take turning 30 degrees to its left, then tilting 15 degrees up, is captured turning the same ways."""
    from backend.blender_runner import render_take_rows
    from backend.estimators import SolverSettings, get_estimator
    from backend.footage import open_footage
    from backend.protocol.rotations import quat_to_ypr, ypr_to_quat
    from backend.protocol.take import Take, write_take
    from backend.tracking import track_footage
    take = Take.empty(3, 24.0, source="turn.mp4")
    take.head_rotation[:] = ypr_to_quat(np.radians([0.0, 30.0, 0.0]), np.radians([0.0, 0.0, 15.0]), np.zeros(3))
    out = render_take_rows(write_take(tmp_path / "turn.npz", take), arkit_head, "FaceKeyHead", tmp_path / "frames",
                           size=360, turn=True)
    assert out["head"] and out["rows"] == [0, 1, 2]
    captured = get_estimator("solver").estimate(track_footage(open_footage(str(tmp_path / "frames" / "row_*.png"))),
                                                SolverSettings(smoothing=0.0))
    assert captured.valid.all()
    ypr = np.degrees(quat_to_ypr(captured.head_rotation.astype(np.float64)))
    turn, tilt = ypr[1] - ypr[0], ypr[2] - ypr[0]
    assert 18.0 <= turn[0] <= 36.0 and abs(turn[1]) < 8.0
    assert 8.0 <= tilt[1] <= 20.0 and abs(tilt[0]) < 8.0


def test_bench_rendered_scores_the_keyed_units_of_a_character(arkit_head, tmp_path):
    """`facekey bench rendered`: a recorded jaw and smile rendered on a character through a custom map that
    keys only those two units is scored on those two (a unit the rig cannot show is not scored): the
    capture follows the jaw; the report and table are written, and ``--keep`` leaves the frames and the
    captured take.  A --keep folder that already holds frames, a missing rig and a rig that is not a .blend
    are coded errors."""
    import json

    from typer.testing import CliRunner

    from backend.cli import app
    from backend.protocol.arkit import INDEX
    from backend.protocol.take import Take, read_take, write_take
    take = Take.empty(12, 24.0, source="perf.mp4")
    s = np.linspace(0.0, 1.0, 12)
    take.weights[:, INDEX["jawOpen"]] = 0.8 * np.sin(np.pi * s) ** 2
    take.weights[:, INDEX["mouthSmileLeft"]] = take.weights[:, INDEX["mouthSmileRight"]] = 0.7 * s
    take.weights[:, INDEX["browInnerUp"]] = 0.6 * s
    recording = write_take(tmp_path / "perf.npz", take)
    name_map = tmp_path / "map.json"
    name_map.write_text(json.dumps({"jawOpen": "jawOpen", "mouthSmileLeft": "mouthSmileLeft"}))
    report = tmp_path / "rendered.json"
    res = CliRunner().invoke(app, ["bench", "rendered", str(recording), str(arkit_head), "--object", "FaceKeyHead",
                                   "--every", "1", "--size", "320", "--name-map", str(name_map), "--no-turn",
                                   "-o", str(report), "--keep", str(tmp_path / "kept")])
    assert res.exit_code == 0, res.output
    perf = json.loads(report.read_text())
    assert perf["keyed_units"] == 2 and set(perf["units"]) == {"jawOpen", "mouthSmileLeft"}
    assert perf["tracked"] == [12, 12] and "head_turn" not in perf
    assert perf["units"]["jawOpen"]["corr"] >= 0.9
    assert "jawOpen" in res.output and "perf.npz rendered on FaceKeyHead" in res.output
    captured = read_take(tmp_path / "kept" / "frontal" / "captured.npz")
    assert captured.num_frames == 12 and len(list((tmp_path / "kept" / "frontal" / "frames").glob("row_*.png"))) == 12
    assert np.corrcoef(captured.weights[:, INDEX["jawOpen"]], take.weights[:, INDEX["jawOpen"]])[0, 1] >= 0.9
    res = CliRunner().invoke(app, ["bench", "rendered", str(recording), str(arkit_head), "--object", "FaceKeyHead",
                                   "--no-turn", "--keep", str(tmp_path / "kept")])
    assert res.exit_code != 0 and "already holds files" in res.output
    res = CliRunner().invoke(app, ["bench", "rendered", str(recording), str(tmp_path / "none.blend"),
                                   "--object", "FaceKeyHead"])
    assert res.exit_code != 0 and "error[file_missing]" in res.output and "rig not found" in res.output
    res = CliRunner().invoke(app, ["bench", "rendered", str(recording), str(recording), "--object", "FaceKeyHead"])
    assert res.exit_code != 0 and "error[bad_argument]" in res.output and "must be a .blend or .glb" in res.output


_POSE_AND_EXPORT = r'''
import bpy, sys
bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
head = bpy.data.objects["FaceKeyHead"]
bpy.ops.export_scene.gltf(filepath=sys.argv[3], export_format="GLB")
arm = bpy.data.objects.new("Rig", bpy.data.armatures.new("Rig"))
bpy.context.scene.collection.objects.link(arm)
bpy.context.view_layer.objects.active = arm
bpy.ops.object.mode_set(mode="EDIT")
bone = arm.data.edit_bones.new("Root")
bone.head, bone.tail = (0.0, 0.0, 0.0), (0.0, 0.0, 0.1)
bpy.ops.object.mode_set(mode="POSE")
arm.pose.bones["Root"].location = (0.0, 0.0, -3.0)     # bone's local y is world z: the head moves 3 m back
bpy.ops.object.mode_set(mode="OBJECT")
group = head.vertex_groups.new(name="Root")
group.add(list(range(len(head.data.vertices))), 1.0, "REPLACE")
head.modifiers.new("Armature", "ARMATURE").object = arm
head.modifiers.new("Subdivision", "SUBSURF")          # new vertices: the framing looks under it
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[2])
'''


def test_render_frames_the_face_where_it_is_seen_and_reads_a_glb(arkit_head, tmp_path):
    """The camera frames the face as the character is seen (armature pose and modifiers applied), not the
    mesh's stored vertices: a head whose armature moves it 3 m away from them, as a skinned glTF import's
    bind space does, under a subdivision surface, is still framed and captured, and its keys measured; and
    a character exported as .glb renders from the .glb as it does from the .blend."""
    import subprocess
    import sys

    from backend.blender_runner import render_take_rows
    from backend.facemodel import load_face_model
    from backend.footage import open_footage
    from backend.protocol.take import Take, write_take
    from backend.retarget.pipeline import measure_character
    from backend.tracking import track_footage
    posed, glb = tmp_path / "posed.blend", tmp_path / "head.glb"
    subprocess.run([sys.executable, "-c", _POSE_AND_EXPORT, str(arkit_head), str(posed), str(glb)], check=True,
                   capture_output=True, timeout=300)
    still = write_take(tmp_path / "still.npz", Take.empty(1, 24.0))
    for character, name in ((posed, "posed"), (glb, "glb")):
        out = render_take_rows(still, character, "FaceKeyHead", tmp_path / name, size=320)
        track = track_footage(open_footage(out["files"][0]))
        assert track.valid[0], name
        assert np.ptp(track.landmarks[0, :, 0]) > 0.3 * 320, name
        assert len(out["units"]) == 52, name
    # the character solve measures the keys on the vertices under the subdivision surface
    keys = measure_character(posed, "FaceKeyHead")
    assert keys.rest.shape == (load_face_model().num_vertices, 3) and len(keys.key_names) == 52
