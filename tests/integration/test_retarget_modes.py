"""Retarget mode per target and the one-frame preview in real Blender (issue 5, item 3).

"Apply take to selected" sends each selected object down its own mode (name map, character solve,
mesh-level) and one object's failure does not stop the others; "Preview frame" shows one take frame on
a copy of the active object, computed for that frame only, and leaves the object itself byte-identical;
"Clear preview" removes exactly what the preview made.
"""
from __future__ import annotations

import numpy as np
import pytest

from blender_fixtures import VENV_PYTHON, synthetic_take
from test_bake_operator import static_key_data
from test_mesh_retarget_operator import CHIN, blender_head  # noqa: F401  (fixture)
from test_solve_operator import custom_head  # noqa: F401  (fixture)

pytest.importorskip("bpy")

ARKIT_KEYS = {"jawOpen": "jawOpen", "eyeBlinkLeft": "eyeBlinkLeft", "eyeBlinkRight": "EyeBlink_R",
              "mouthSmileLeft": "mouthSmileLeft", "browInnerUp": "browInnerUp"}
FOREHEAD = 10


def _jaw_take(tmp_path, values, name="jaw_ramp"):
    from backend.protocol.arkit import INDEX
    from backend.protocol.take import Take, write_take
    t = Take.empty(len(values), 24.0, source=f"{name}.mp4")
    t.weights[:, INDEX["jawOpen"]] = values
    return write_take(tmp_path / f"{name}.npz", t)


@pytest.fixture
def jaw_ramp(tmp_path):
    """24 frames at 24 fps, jawOpen 0 -> 1."""
    return _jaw_take(tmp_path, np.linspace(0, 1, 24))


@pytest.fixture
def jaw_peak(tmp_path):
    """48 frames at 24 fps, jawOpen 0 -> 1 (frame 23) -> 0."""
    return _jaw_take(tmp_path, np.concatenate([np.linspace(0, 1, 24), np.linspace(1, 0, 24)]), "jaw_peak")


def test_apply_take_dispatches_each_selected_object_by_its_mode(run_scenario, blender_head, jaw_ramp):  # noqa: F811
    from backend.protocol.pc2 import read_pc2
    res = run_scenario("apply_take", {"python": VENV_PYTHON, "head_npz": str(blender_head), "take": jaw_ramp})
    # the panel's target list: AUTO resolved per object, Head set to mesh-level by hand
    assert sorted(map(tuple, res["rows"])) == [("Face", "NAMEMAP", None), ("Head", "MESH", None),
                                               ("Plain", "MESH", None)]
    assert res["rc"] == ["FINISHED"], res["state"]
    report = res["state"]["report"]
    assert report["modes"] == {"Face": "NAMEMAP", "Head": "MESH", "Plain": "MESH"}
    assert "2 of 3" in res["state"]["message"]
    # Face: a new action with one curve per ARKit-named key, jawOpen following the take
    assert res["action"] == "FK_jaw_ramp" and report["objects"]["Face"]["mapped"] == ARKIT_KEYS
    curves = {c["path"]: np.array(c["co"]).reshape(-1, 2) for c in res["curves"]}
    assert sorted(curves) == sorted(f'key_blocks["{k}"].value' for k in ARKIT_KEYS.values())
    jaw = curves['key_blocks["jawOpen"].value']
    np.testing.assert_allclose(jaw[:, 0], np.arange(1, 25))
    np.testing.assert_allclose(jaw[:, 1], np.linspace(0, 1, 24), atol=1e-6)
    assert np.abs(curves['key_blocks["eyeBlinkLeft"].value'][:, 1]).max() == 0.0
    # Head: a Mesh Cache modifier playing a 24-sample cache whose chin drops; its mesh data untouched
    (kind, path, start), = res["head_modifiers"]
    assert kind == "MESH_CACHE" and start == 1.0 and path == report["meshes"]["Head"]["pc2"]
    cache = read_pc2(path)[0]
    assert cache.shape[0] == 24 and cache[-1, CHIN, 2] < cache[0, CHIN, 2] - 0.01
    assert res["head_mesh_changed_m"] == 0.0
    # Plain (a 3-vertex triangle, no face): the backend's coded error, reported under its name; nothing added to it
    assert report["errors"]["Plain"]["code"] == "bad_argument" and report["errors"]["Plain"]["hint"]
    assert "(3, 3)" in report["skipped"]["Plain"] and res["plain_modifiers"] == []
    # the panel lists each target with its mode (AUTO resolved), then the per-object outcome
    before = [text for kind, text in res["panel_before"] if kind == "label"]
    assert "Face" in before and "-> Name map" in before and "-> Mesh-level" in before
    assert ["prop", "facekey_retarget_mode"] in res["panel_before"]
    assert ["operator", "facekey.apply_take"] in res["panel_before"]
    assert ["operator", "facekey.preview_frame"] in res["panel_before"] and ["prop", "serep_weights"] in res["panel_before"]
    after = [text for kind, text in res["panel_after"] if kind == "label"]
    assert any(t.startswith("Plain: skipped, failed [bad_argument]") for t in after)
    assert any(t.startswith("Head: Mesh Cache") for t in after)
    # existing animation and shape keys untouched
    assert res["after"]["actions"]["OldAction"] == res["before"]["actions"]["OldAction"]
    assert static_key_data(res["after"]) == static_key_data(res["before"])


def _check_preview_copy(p: dict, target: str) -> None:
    assert p["rc"] == ["FINISHED"], p["state"]
    assert p["changed"] == [], f"preview at frame {p['frame']} changed {target}"
    assert p["preview_objects"] == [f"{target}.FaceKeyPreview"]                  # a new preview replaces the old
    assert p["collections"] == ["FaceKey Preview"] and not p["same_mesh"]
    assert p["offset_x"] == pytest.approx(1.2 * p["width"], rel=1e-5)
    assert not p["object_anim"] and not p["key_anim"] and p["modifiers"] == []
    shown = p["state"]["report"]["preview"]
    assert ["label", f"Preview: take frame {shown['take_frame']} on {target}.FaceKeyPreview"] in p["panel"]


def _check_cleared(res: dict) -> None:
    assert res["clear_rc"] == ["FINISHED"] and res["changed_by_clear"] == []
    assert res["names_after_clear"] == res["names_before"]                       # copy, mesh, keys, collection gone


def test_namemap_preview_shows_the_take_weights_of_the_current_frame(run_scenario, tmp_path):
    from backend.protocol.arkit import INDEX
    from backend.protocol.take import write_take
    take = synthetic_take(120, 60.0)                  # 60 fps take on a 24 fps scene: scene frame f <-> (f-1)*2.5
    res = run_scenario("preview", {"kind": "namemap", "take": write_take(tmp_path / "synthetic.npz", take),
                                   "frames": [21, 500, -10]})
    for p, k in zip(res["previews"], (50, 119, 0)):                                  # 500 / -10 clamp to the ends
        _check_preview_copy(p, "Face")
        assert p["state"]["report"]["preview"]["take_frame"] == k and p["state"]["report"]["preview"]["mode"] == "NAMEMAP"
        for unit, key in ARKIT_KEYS.items():
            assert p["values"][key] == pytest.approx(float(take.weights[k, INDEX[unit]]), abs=1e-6), (k, key)
        assert p["values"]["CustomKey"] == 0.0
    _check_cleared(res)


def test_solve_preview_follows_a_jaw_open_take(run_scenario, custom_head, jaw_peak):  # noqa: F811
    """Its keys include ARKit names (jawOpen, eyeBlink*), so AUTO would pick the name map: SOLVE is set by hand."""
    res = run_scenario("preview", {"kind": "solve", "mode": "SOLVE", "python": VENV_PYTHON,
                                   "head_npz": str(custom_head), "take": jaw_peak, "frames": [1, 24]})
    rest, peak = res["previews"]
    for p in (rest, peak):
        _check_preview_copy(p, "Head")
        assert p["state"]["report"]["preview"]["mode"] == "SOLVE"
        assert max(p["values"]["eyeBlinkLeft"], p["values"]["eyeBlinkRight"]) < 0.05
    assert rest["state"]["report"]["preview"]["take_frame"] == 0 and rest["values"]["Mouth_Open"] < 0.1
    assert peak["state"]["report"]["preview"]["take_frame"] == 23 and peak["values"]["Mouth_Open"] > 0.6
    _check_cleared(res)


def test_mesh_preview_is_the_full_transfer_at_that_frame(run_scenario, blender_head, jaw_ramp):  # noqa: F811
    from backend.protocol.axes import points_from_blender, points_to_blender
    from backend.protocol.take import read_take
    from backend.retarget.mesh_transfer import take_to_mesh
    res = run_scenario("preview", {"kind": "mesh", "python": VENV_PYTHON, "head_npz": str(blender_head),
                                   "take": jaw_ramp, "frames": [18]})
    p, = res["previews"]
    _check_preview_copy(p, "Head")
    assert p["state"]["report"]["preview"]["take_frame"] == 17 and p["state"]["report"]["preview"]["mode"] == "MESH"
    rest, shown = np.array(res["rest"]), np.array(p["vertices"])
    full = points_to_blender(take_to_mesh(read_take(jaw_ramp).weights, points_from_blender(rest)))
    np.testing.assert_allclose(shown, full[17], atol=1e-5)                       # what the whole bake plays there
    assert shown[CHIN, 2] < rest[CHIN, 2] - 0.005 and np.abs(shown[FOREHEAD] - rest[FOREHEAD]).max() < 1e-3
    _check_cleared(res)


def test_preview_copies_the_user_keeps_survive_and_the_copy_is_not_previewed(run_scenario, tmp_path):
    """A duplicate (Shift+D copies the preview tag) or a renamed copy is the user's: a new preview and
    Clear preview leave it (both deleted it); previewing with the live copy active is refused with a hint
    (it deleted the copy, then failed as an internal error)."""
    from backend.protocol.take import write_take
    res = run_scenario("preview_copies", {"take": write_take(tmp_path / "synthetic.npz", synthetic_take(40, 24.0))})
    assert res["first"] == ["FINISHED"] and res["duplicate"] == "Face.FaceKeyPreview.001"
    assert res["on_copy"] == ["CANCELLED"] and res["on_copy_state"]["error_code"] == "bad_argument"
    assert "preview copy" in res["on_copy_state"]["error_message"] and res["on_copy_state"]["error_hint"]
    assert "Face.FaceKeyPreview" in res["after_on_copy"]
    assert res["again"] == ["FINISHED"]
    assert {"Face.FaceKeyPreview", "Face.FaceKeyPreview.001", "Face_open_pose"} <= set(res["after_again"])
    assert res["clear"] == ["FINISHED"]
    assert "Face.FaceKeyPreview" not in res["after_clear"]
    assert {"Face.FaceKeyPreview.001", "Face_open_pose"} <= set(res["after_clear"])
    assert "Face_open_pose" in res["meshes_after_clear"]


def test_mesh_preview_of_an_object_named_with_a_slash(run_scenario, blender_head, jaw_ramp):  # noqa: F811
    """Imported FBX/glTF objects are often named "Body/Face": the scratch file name used to hold the
    slash (a folder that does not exist) and the preview failed as an internal error."""
    res = run_scenario("preview", {"kind": "mesh", "python": VENV_PYTHON, "head_npz": str(blender_head),
                                   "take": jaw_ramp, "frames": [18], "name": "Body/Head"})
    p, = res["previews"]
    _check_preview_copy(p, "Body/Head")
    _check_cleared(res)
