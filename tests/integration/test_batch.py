"""`facekey batch`: every take of a folder baked into its own action in one .blend, by name map (one
Blender run) and by character solve (measured once), in real Blender (bpy module); checked by reopening
the .blend."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from backend.cli import app
from blender_fixtures import custom_character_keys, inspect_blend, synthetic_take

pytest.importorskip("bpy")


_MAKE_WITH_ACTION = (
    "import bpy,sys; bpy.ops.wm.read_homefile(use_empty=True); "
    "me=bpy.data.meshes.new('H'); me.from_pydata([(0,0,0),(1,0,0),(0,1,0)],[],[(0,1,2)]); "
    "o=bpy.data.objects.new('Head',me); bpy.context.scene.collection.objects.link(o); o.shape_key_add(name='Basis'); "
    "[o.shape_key_add(name=n) for n in ('jawOpen','eyeBlink_L')]; "
    "o.data.shape_keys.key_blocks['jawOpen'].value=0.25; "
    "o.data.shape_keys.key_blocks['jawOpen'].keyframe_insert('value', frame=1); "
    "o.data.shape_keys.animation_data.action.name='AnimatorsWork'; "
    "bpy.ops.wm.save_as_mainfile(filepath=sys.argv[-1])")


def _character_with_action(tmp_path):
    """``tmp_path/in.blend``: mesh "Head" with jawOpen and eyeBlink_L keys and the animator's own action."""
    blend_in = tmp_path / "in.blend"
    subprocess.run([sys.executable, "-c", _MAKE_WITH_ACTION, str(blend_in)], check=True, capture_output=True,
                   timeout=120)
    return blend_in


def test_batch_bakes_a_folder_one_action_per_take(tmp_path):
    """`facekey batch`: every take of a folder (.npz and Live Link .csv) gets its own action in one .blend;
    a broken take is listed (exit code 3) and does not stop the others; nothing existing is changed."""
    from backend.protocol.livelink import write_livelink_csv
    from backend.protocol.take import write_take
    blend_in = _character_with_action(tmp_path)
    before = blend_in.read_bytes()
    takes = tmp_path / "takes"
    takes.mkdir()
    captured = synthetic_take(20, 30.0)          # as a capture writes it: its confidence, measured, dips on 3 frames
    captured.confidence[5:8] = 0.2
    captured.header.update(confidence="measured", low_confidence_frames=3)
    write_take(takes / "day1_take1.npz", captured)
    write_livelink_csv(takes / "day1_take2.csv", synthetic_take(45, 30.0))
    (takes / "day1_take3.npz").write_bytes(b"truncated download")
    (takes / "shot_list.txt").write_text("not a take")
    out = tmp_path / "out.blend"
    res = CliRunner().invoke(app, ["batch", str(takes), str(blend_in), "-o", str(out), "--objects", "Head",
                                   "--start-frame", "101"])
    assert res.exit_code == 3, res.output
    assert "2 of 3 takes baked" in res.output and "day1_take3.npz not baked" in res.output
    assert "take_invalid" in res.output and "hint:" in res.output
    assert "3 frame(s) the capture is unsure of" in res.output
    assert blend_in.read_bytes() == before
    info = inspect_blend(out, "Head")
    keys = {'key_blocks["eyeBlink_L"].value[0]', 'key_blocks["jawOpen"].value[0]'}
    assert info["actions"]["FK_day1_take1"] == {**{k: 20 for k in keys}, '["facekey_confidence"][0]': 20}
    assert info["actions"]["FK_day1_take2"] == {k: 45 for k in keys}    # a Live Link CSV measures no confidence
    assert info["actions"]["AnimatorsWork"] == {'key_blocks["jawOpen"].value[0]': 1}
    assert not any("take3" in name for name in info["actions"])


def _unsure_take(take, amplitude: float = 0.2):
    """``take`` as a capture writes it (confidence measured) with jawOpen a gentle wave (0.3 +- amplitude)
    and head yaw a ramp to 0.3 rad, except on frames 5-7, where the capture was unsure (confidence 0.2)
    and the values are junk (jawOpen 1.0, yaw 1.2 rad)."""
    from backend.protocol.arkit import INDEX
    from backend.protocol.rotations import ypr_to_quat
    t = len(take.weights)
    take.weights[:, INDEX["jawOpen"]] = 0.3 + amplitude * np.sin(np.arange(t) / 3.0)
    take.weights[5:8, INDEX["jawOpen"]] = 1.0
    yaw = np.linspace(0.0, 0.3, t)
    yaw[5:8] = 1.2
    take.head_rotation = ypr_to_quat(yaw, np.zeros(t), np.zeros(t)).astype(np.float32)
    take.confidence[5:8] = 0.2
    take.header.update(confidence="measured", low_confidence_frames=3)
    return take


def test_batch_bridge_unsure_adds_a_bridged_action_where_the_capture_was_unsure(tmp_path):
    """`facekey batch --bridge-unsure`: a captured take with an unsure stretch gets, beside its baked action
    (kept as baked, junk included), a bridged one without the junk; a Live Link CSV (no confidence) gets
    none, and the output says why; the input .blend is not written."""
    from backend.protocol.livelink import write_livelink_csv
    from backend.protocol.take import write_take
    blend_in = _character_with_action(tmp_path)
    before = blend_in.read_bytes()
    takes = tmp_path / "takes"
    takes.mkdir()
    write_take(takes / "day1_take1.npz", _unsure_take(synthetic_take(20, 30.0)))
    write_livelink_csv(takes / "day1_take2.csv", synthetic_take(45, 30.0))
    out = tmp_path / "out.blend"
    res = CliRunner().invoke(app, ["batch", str(takes), str(blend_in), "-o", str(out), "--objects", "Head",
                                   "--start-frame", "101", "--bridge-unsure"])
    assert res.exit_code == 0, res.output
    assert "bridged 1 unsure stretch(es) (scene frames 105-106.6) into action 'FK_day1_take1 bridged'" in res.output
    assert res.output.count("bridged 1 unsure") == 1
    assert "nothing bridged: The shape keys of 'Head' have no action with a facekey_confidence curve" in res.output
    assert blend_in.read_bytes() == before
    info = inspect_blend(out, "Head")
    jaw = 'key_blocks["jawOpen"].value[0]'
    assert sorted(info["actions"]) == ["AnimatorsWork", "FK_day1_take1", "FK_day1_take1 bridged", "FK_day1_take2"]
    assert info["actions"]["FK_day1_take1 bridged"] == info["actions"]["FK_day1_take1"]   # same curves and keys
    assert info["peaks"]["FK_day1_take1"][jaw] == pytest.approx(1.0)
    assert info["peaks"]["FK_day1_take1 bridged"][jaw] <= 0.5 + 1e-6


def test_batch_with_no_bakeable_take_saves_nothing(tmp_path):
    from backend.blender_runner import bake_take_folder
    from backend.protocol.errors import FaceKeyError
    blend_in = _character_with_action(tmp_path)
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


@pytest.fixture
def custom_key_character(tmp_path):
    """A .blend whose head "FaceKeyHead" has :func:`custom_character_keys` (not one ARKit unit each),
    plus an existing action."""
    from backend.blender_runner import build_head_blend
    from backend.facemodel import load_face_model
    from backend.protocol.arkit import INDEX
    from backend.protocol.take import Take, write_take
    m = load_face_model()
    keys = custom_character_keys()
    npz = tmp_path / "head.npz"
    np.savez(npz, vertices=m.neutral, triangles=m.triangles, unit_deltas=np.stack(list(keys.values())),
             names=np.array(list(keys)))
    blink = Take.empty(10, 24.0, source="existing_blink.mp4")
    blink.weights[:, INDEX["eyeBlinkLeft"]] = 0.5
    blend = tmp_path / "character.blend"
    build_head_blend(npz, write_take(tmp_path / "existing_blink.npz", blink), blend)
    return blend


def _ramp_take(unit_names: tuple[str, ...], frames: int = 24):
    from backend.protocol.arkit import INDEX
    from backend.protocol.take import Take
    take = Take.empty(frames, 24.0)
    for name in unit_names:
        take.weights[:, INDEX[name]] = np.concatenate([np.linspace(0, 1, frames // 2), np.linspace(1, 0, frames // 2)])
    return take


def test_batch_solve_measures_once_and_drives_each_takes_own_keys(custom_key_character, tmp_path):
    from backend.protocol.livelink import write_livelink_csv
    from backend.protocol.take import Take, write_take
    takes = tmp_path / "takes"
    takes.mkdir()
    write_take(takes / "jaw.npz", _ramp_take(("jawOpen",)))
    write_livelink_csv(takes / "smile.csv", _ramp_take(("mouthSmileLeft", "mouthSmileRight")))
    lost = Take.empty(12, 24.0)
    lost.valid[:] = False                                    # face never tracked: nothing to solve
    write_take(takes / "lost.npz", lost)
    before = custom_key_character.read_bytes()
    out = tmp_path / "out.blend"
    res = CliRunner().invoke(app, ["batch", str(takes), str(custom_key_character), "-o", str(out),
                                   "--objects", "FaceKeyHead", "--mode", "solve"])
    assert res.exit_code == 3, res.output
    assert "2 of 3 takes baked" in res.output and "lost.npz not baked" in res.output and "no_face" in res.output
    assert "Mouth_Open (0.9" in res.output and "Smile (0.9" in res.output   # peaks of the driven keys
    assert custom_key_character.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out_keys").iterdir()) == ["jaw_keys.npz", "smile_keys.npz"]
    info = inspect_blend(out, "FaceKeyHead")
    peak = {a: {k.split('"')[1]: v for k, v in curves.items() if k.startswith("key_blocks")}
            for a, curves in info["peaks"].items()}
    assert peak["FK_jaw"]["Mouth_Open"] > 0.6 and peak["FK_jaw"]["Smile"] < 0.1
    assert peak["FK_smile"]["Smile"] > 0.6 and peak["FK_smile"]["Mouth_Open"] < 0.1
    assert max(peak["FK_jaw"]["eyeBlinkLeft"], peak["FK_smile"]["eyeBlinkLeft"]) < 0.05
    existing = inspect_blend(custom_key_character, "FaceKeyHead")
    for what in ("actions", "peaks"):
        assert info[what]["FK_existing_blink"] == existing[what]["FK_existing_blink"]
    assert not any("lost" in name for name in info["actions"])


def test_batch_solve_argument_errors(custom_key_character, tmp_path):
    from backend.protocol.take import write_take
    takes = tmp_path / "takes"
    takes.mkdir()
    write_take(takes / "jaw.npz", _ramp_take(("jawOpen",)))
    out = tmp_path / "out.blend"
    res = CliRunner().invoke(app, ["batch", str(takes), str(custom_key_character), "-o", str(out),
                                   "--objects", "FaceKeyHead,Other", "--mode", "solve"])
    assert res.exit_code == 2 and "error[bad_argument]" in res.output and "exactly one object" in res.output
    res = CliRunner().invoke(app, ["batch", str(takes), str(custom_key_character), "-o", str(out),
                                   "--objects", "Nope", "--mode", "solve"])
    assert res.exit_code == 2 and "error[object_missing]" in res.output
    res = CliRunner().invoke(app, ["batch", str(takes), str(custom_key_character), "-o", str(out),
                                   "--objects", "FaceKeyHead", "--mode", "solve", "--keys", "Nothing*"])
    assert res.exit_code == 2 and "error[no_shape_keys]" in res.output and "could be solved" not in res.output
    assert not out.exists()


def test_bake_solve_bridge_unsure(custom_key_character, tmp_path):
    """`facekey bake --mode solve --bridge-unsure`: the character solve's action keeps what was solved and a
    bridged action, without the junk of the unsure stretch, is added beside it."""
    from backend.protocol.take import Take, write_take
    take = _unsure_take(Take.empty(24, 24.0, source="jaw.mp4"), amplitude=0.1)
    path = write_take(tmp_path / "jaw.npz", take)
    out = tmp_path / "out.blend"
    res = CliRunner().invoke(app, ["bake", str(path), str(custom_key_character), "-o", str(out),
                                   "--objects", "FaceKeyHead", "--mode", "solve", "--bridge-unsure"])
    assert res.exit_code == 0, res.output
    assert "bridged 1 unsure stretch(es) (scene frames 6-8) into action 'FK_jaw bridged'" in res.output
    info = inspect_blend(out, "FaceKeyHead")
    mouth = 'key_blocks["Mouth_Open"].value[0]'
    assert info["peaks"]["FK_jaw"][mouth] > 0.6              # the junk, solved faithfully
    assert info["peaks"]["FK_jaw bridged"][mouth] < 0.45


def test_bake_bridge_unsure_by_name_map(tmp_path):
    """`facekey bake --bridge-unsure` (one take, name map, head rotation onto the mesh itself): bridged
    shape-key and head actions are added and assigned, the baked ones kept; a take the capture is sure of
    everywhere is baked and the output says nothing needed bridging."""
    from backend.protocol.take import write_take
    blend_in = _character_with_action(tmp_path)
    path = write_take(tmp_path / "take1.npz", _unsure_take(synthetic_take(20, 24.0)))
    out = tmp_path / "out.blend"
    res = CliRunner().invoke(app, ["bake", str(path), str(blend_in), "-o", str(out), "--objects", "Head",
                                   "--head-object", "Head", "--bridge-unsure"])
    assert res.exit_code == 0, res.output
    assert ("bridged 1 unsure stretch(es) (scene frames 6-8) into action 'FK_synthetic_take bridged', head "
            "rotation into 'FK_synthetic_take_head bridged'") in res.output
    info = inspect_blend(out, "Head")
    jaw = 'key_blocks["jawOpen"].value[0]'
    assert info["peaks"]["FK_synthetic_take"][jaw] == pytest.approx(1.0)
    assert info["peaks"]["FK_synthetic_take bridged"][jaw] <= 0.5 + 1e-6
    yaw = "rotation_euler[2]"                                   # the head faces -Y, Z up: yaw about Z
    assert info["peaks"]["FK_synthetic_take_head"][yaw] == pytest.approx(1.2, abs=1e-3)
    assert info["peaks"]["FK_synthetic_take_head bridged"][yaw] == pytest.approx(0.3, abs=1e-3)
    sure = synthetic_take(20, 24.0)
    sure.header.update(confidence="measured", low_confidence_frames=0)
    res = CliRunner().invoke(app, ["bake", str(write_take(tmp_path / "take2.npz", sure)), str(blend_in), "-o",
                                   str(tmp_path / "out2.blend"), "--objects", "Head", "--bridge-unsure"])
    assert res.exit_code == 0, res.output
    assert "nothing bridged: The capture on 'Head' is sure of every frame" in res.output
