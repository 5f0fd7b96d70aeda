"""Baking through the add-on's operators in real Blender: Import CSV -> new action, nothing else changed."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from blender_fixtures import synthetic_take

MAPPED = {"jawOpen": "jawOpen", "eyeBlinkLeft": "eyeBlinkLeft", "eyeBlinkRight": "EyeBlink_R",
          "mouthSmileLeft": "mouthSmileLeft", "browInnerUp": "browInnerUp"}


def static_key_data(snap: dict) -> dict:
    """Key-block data a bake must keep: names, order, vertex co, slider ranges, mute, relative key, group.

    ``value`` is left out on purpose: it is the animated property, and Blender
    writes the evaluated animation into it whenever the scene is evaluated.
    """
    return {obj: [{k: v for k, v in kb.items() if k != "value"} for kb in blocks] for obj, blocks in snap["keys"].items()}


def _read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], [r[0] for r in rows[1:]], np.array([[float(x) for x in r[1:]] for r in rows[1:]])


@pytest.fixture
def imported(run_scenario, synthetic_csv, tmp_path):
    return run_scenario("import_csv", {"csv": str(synthetic_csv), "start_frame": 5, "head": True,
                                       "probe_frames": [5, 5 + 119 * 0.4], "export": str(tmp_path / "export.csv")})


def test_import_csv_bakes_one_linear_curve_per_mapped_key(imported):
    assert imported["rc"] == ["FINISHED"], imported["state"]
    report = imported["state"]["report"]
    assert report["objects"]["Face"]["mapped"] == MAPPED
    assert report["objects"]["Face"]["unused_keys"] == ["CustomKey"]
    assert report["skipped"] == {"Plain": "has no shape keys"}
    assert report["frames"] == 120
    assert imported["action"] == "FK_synthetic_take"
    take = synthetic_take()
    frames = 5 + np.arange(120) / 60.0 * 24  # start frame + timestamp * scene fps (24)
    curves = {c["path"]: c for c in imported["curves"]}
    assert sorted(curves) == sorted(f'key_blocks["{k}"].value' for k in MAPPED.values())
    from backend.protocol.arkit import INDEX
    for unit, key in MAPPED.items():
        c = curves[f'key_blocks["{key}"].value']
        co = np.array(c["co"]).reshape(-1, 2)
        np.testing.assert_allclose(co[:, 0], frames, atol=1e-4)
        np.testing.assert_allclose(co[:, 1], take.weights[:, INDEX[unit]], atol=1e-6)
        assert co[:, 1].min() >= 0 and co[:, 1].max() <= 1
        assert set(c["interp"]) == {"LINEAR"}


def test_existing_actions_and_shape_keys_are_unchanged(imported):
    before, after = imported["before"], imported["after"]
    for name, curves in before["actions"].items():
        assert after["actions"][name] == curves, f"pre-existing action {name} changed"
    assert before["actions"]["OldAction"], "the fixture's old action must have keys to compare"
    assert static_key_data(after) == static_key_data(before)
    assert imported["old_fake_user"] is True
    assert set(after["actions"]) - set(before["actions"]) == {"FK_synthetic_take", "FK_synthetic_take_head"}


def test_head_rotation_turns_the_face_toward_its_left(imported):
    assert imported["head_action"] == "FK_synthetic_take_head"
    assert imported["rotation_mode"] == "XYZ"
    assert {c["path"] for c in imported["head_curves"]} == {"rotation_euler"}
    first, last = imported["probe"]
    np.testing.assert_allclose(first["front"], [0, -1, 0], atol=1e-5)
    # yaw +0.4 rad: the face (looking along -Y) turns toward the character's left (+X), up stays up
    np.testing.assert_allclose(last["front"], [np.sin(0.4), -np.cos(0.4), 0], atol=1e-4)
    np.testing.assert_allclose(last["up"], [0, 0, 1], atol=1e-5)


def test_export_csv_round_trips_the_import(imported, synthetic_csv, tmp_path):
    assert imported["export_rc"] == ["FINISHED"], imported["export_state"]
    cols_in, tc_in, vals_in = _read_csv(synthetic_csv)
    cols_out, tc_out, vals_out = _read_csv(tmp_path / "export.csv")
    assert cols_out == cols_in and tc_out == tc_in
    np.testing.assert_allclose(vals_out, vals_in, atol=1e-6)


def test_unsure_frame_buttons_walk_the_take_confidence_dips(run_scenario):
    """A take whose confidence dips on two stretches (20 fps take on a 24 fps scene: keys at scene frames
    14.2-17.8 and 37-39.4): the Take panel's Unsure frame buttons land on the first key of the next /
    previous stretch (a subframe where it falls between frames) and say when there is none; without a
    confidence curve on the active object they are greyed out."""
    res = run_scenario("unsure_frames", {})
    assert np.round(res["stretches"], 3).tolist() == [[14.2, 17.8, 0.1], [37.0, 39.4, 0.4]]
    assert res["steps"] == [[["FINISHED"], 14.2], [["FINISHED"], 37.0], [["CANCELLED"], 37.0],
                            [["FINISHED"], 14.2], [["CANCELLED"], 14.2]]
    assert res["poll_without_curve"] is False
    take = res["panel"][res["panel"].index(["panel", "Take"]):]
    assert take.count(["operator", "facekey.unsure_frame"]) == 2
    assert ["label", "Unsure frames"] in take      # drawn with Plain active: no curve, no count
    assert ["label", "Unsure frames: 2 stretch(es)"] in res["panel_face"]


def test_bridge_unsure_replaces_the_unsure_stretches_by_a_line_in_a_new_action(run_scenario):
    """On a take whose jawOpen is junk (1.0) on two stretches the capture is unsure of, Bridge at playhead
    does nothing outside a stretch, bridges the stretch it is in, and Bridge all then bridges the other
    (and nothing the second time): each key inside is on the straight line between the trusted keys either
    side, every other key (the animator's edit included) and the confidence curve are kept, each step is
    a new action named after the captured one, which is left as it was, kept with a fake user."""
    assert_bridged(run_scenario("bridge_unsure", {}))


def assert_bridged(res: dict) -> None:
    """The checks of the bridge scenario (shared with Blender 3.4's run)."""
    before = np.array(res["captured_before"]["jaw"])
    frames = before[:, 0]
    np.testing.assert_allclose(frames, 1 + 1.2 * np.arange(40), atol=1e-4)
    assert before[5, 1] == pytest.approx(0.95) and (before[11:15, 1] == 1.0).all()

    outside, at_37, everything, again = res["steps"]
    assert again["rc"] == ["CANCELLED"] and again["assigned"] == everything["assigned"]    # nothing new to bridge
    assert outside["rc"] == ["CANCELLED"] and outside["assigned"] == res["captured"]
    assert "not in a stretch" in res["error_outside"][1] and res["error_outside"][0] == "bad_argument"

    def line(jaw, first, last):      # the straight line between the trusted keys around take frames first..last
        a, b = first - 1, last + 1
        t = (frames[first:last + 1] - frames[a]) / (frames[b] - frames[a])
        return jaw[a, 1] + t * (jaw[b, 1] - jaw[a, 1])

    assert at_37["rc"] == ["FINISHED"] and at_37["assigned"] == res["captured"] + " bridged"
    jaw = np.array(at_37["jaw"])
    np.testing.assert_allclose(jaw[30:33, 1], line(before, 30, 32), atol=1e-5)
    assert (jaw[30:33, 1] < 0.9).all()
    np.testing.assert_array_equal(np.delete(jaw, range(30, 33), 0), np.delete(before, range(30, 33), 0))
    assert json.loads(at_37["bridged"]) == [[37.0, 39.4]]

    assert everything["rc"] == ["FINISHED"] and everything["assigned"] == res["captured"] + " bridged.001"
    jaw = np.array(everything["jaw"])
    np.testing.assert_allclose(jaw[11:15, 1], line(before, 11, 14), atol=1e-5)
    np.testing.assert_allclose(jaw[30:33, 1], line(before, 30, 32), atol=1e-5)
    kept = [i for i in range(40) if not (11 <= i <= 14 or 30 <= i <= 32)]
    np.testing.assert_array_equal(jaw[kept], before[kept])
    assert len(json.loads(everything["bridged"])) == 2
    for step in (at_37, everything):
        assert step["conf"] == res["captured_before"]["conf"]
    # what Blender plays: scene frame 16 is between the bridged keys at 15.4 and 16.6
    assert res["evaluated_jaw_at_16"] == pytest.approx(np.interp(16.0, frames, jaw[:, 1]), abs=1e-4)

    assert res["captured_after"]["jaw"] == res["captured_before"]["jaw"]
    assert res["captured_after"]["conf"] == res["captured_before"]["conf"] and res["captured_after"]["fake_user"]
    added = sorted(set(res["actions_after"]) - set(res["actions_before"]))
    assert added == [res["captured"] + " bridged", res["captured"] + " bridged.001"]
    assert res["poll_without_curve"] is False
    take = res["panel"][res["panel"].index(["panel", "Take"]):]
    assert take.count(["operator", "facekey.bridge_unsure"]) == 2
    assert ["label", "Unsure frames: 2 stretch(es), bridged"] in res["panel_face"]


def test_bridge_edges_anchors_only_on_trusted_keys_and_refuses_what_it_cannot_do(run_scenario):
    """Stretches at the start and end of the take are held flat at the nearest trusted key; a line never
    leans on the junk of another stretch, even where keys between two stretches were deleted; the keys
    bridged and the one before each stretch are LINEAR.  Bridging again, NLA tweak mode, a take sure of
    every frame and one unsure of every frame are refused with the reason and the fix, adding nothing."""
    res = run_scenario("bridge_edges", {})
    captured, bridged = np.array(res["captured"]), np.array(res["bridged"])
    assert res["name"] == "FK_edges bridged"
    assert res["spans"] == [[1.0, 3.0], [11.0, 13.0], [16.0, 17.0], [28.0, 30.0]]
    frames = captured[:, 0]
    np.testing.assert_array_equal(bridged[:, 0], frames)
    assert 14.0 not in frames and 15.0 not in frames                     # take frames 13-14 deleted
    value = dict(zip(frames.tolist(), captured[:, 1].tolist()))
    expect = dict(value)
    for f in (1.0, 2.0, 3.0):
        expect[f] = value[4.0]                                           # held at the first trusted key
    for f in (28.0, 29.0, 30.0):
        expect[f] = value[27.0]                                          # and at the last one
    for f in (11.0, 12.0, 13.0, 16.0, 17.0):                             # both lines run from 10 to 18
        expect[f] = value[10.0] + (f - 10.0) / 8.0 * (value[18.0] - value[10.0])
    np.testing.assert_allclose(bridged[:, 1], [expect[f] for f in frames.tolist()], atol=1e-5)
    assert bridged[:, 1].max() < 0.75                                    # no junk (1.0) left
    linear = [f for f, i in zip(frames.tolist(), res["interpolation"]) if i == 1]
    assert {1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 13.0, 16.0, 17.0, 27.0, 28.0, 29.0, 30.0} <= set(linear)

    for case, words in (("again", "bridged already"), ("again_at_playhead", "bridged already"),
                        ("tweak_mode", "NLA tweak mode"), ("sure", "sure of every frame"),
                        ("unsure", "unsure of every frame")):
        code, message, hint = res[case]["error"]
        assert code == "bad_argument" and words in message and hint, (case, message)
        assert res[case]["actions_unchanged"], case
    assert res["tweak_mode"]["entered"]
    assert res["sure_if_unsure"]["action"] is None and "sure of every frame" in res["sure_if_unsure"]["skipped"]


def test_bridge_also_bridges_the_head_rotation_of_the_same_take(run_scenario):
    """With the panel's head target set, Bridge all also puts the head's yaw keys inside the unsure stretches
    (junk: 1.2 rad) on the line between the trusted keys, as a new head action beside the captured one
    (kept, unchanged, fake user); a head target that holds nothing of this take is left alone, and the
    message says why."""
    res = run_scenario("bridge_head", {})
    assert res["rc"] == ["FINISHED"] and res["head_assigned"] == res["captured"] + " bridged"
    assert "head rotation" in res["message"]
    before, after = np.array(res["before"]), np.array(res["after"])
    assert before[11:15, 1].max() > 1.0                          # the junk yaw as captured (radians)
    frames = before[:, 0]
    np.testing.assert_allclose(frames, 1 + 1.2 * np.arange(40), atol=1e-4)
    for first, last in ((11, 14), (30, 32)):
        t = (frames[first:last + 1] - frames[first - 1]) / (frames[last + 1] - frames[first - 1])
        line = before[first - 1, 1] + t * (before[last + 1, 1] - before[first - 1, 1])
        np.testing.assert_allclose(after[first:last + 1, 1], line, atol=1e-5)
    kept = [i for i in range(40) if not (11 <= i <= 14 or 30 <= i <= 32)]
    np.testing.assert_array_equal(after[kept], before[kept])
    assert res["captured_after"] == res["before"] and res["fake_user"]
    assert res["other_rc"] == ["FINISHED"] and not res["other_has_action"]
    assert "head rotation left as it is: 'Other' has no head rotation baked by FaceKey" in res["other_message"]
    assert res["head_after_other"] == res["head_assigned"]      # untouched by a bridge that did not target it


@pytest.mark.parametrize("blender", [None, "3.4"])
def test_bake_keeps_other_animation_and_refuses_what_it_cannot_write(run_scenario, tmp_path, blender):
    """A head bake onto one bone of an animated armature leaves the other bone playing (the armature's whole
    action was replaced); baking the same take again does not turn the head twice (the last bake's pose was
    taken as the rest); shape keys in NLA tweak mode, linked from another file, absolute, or shared with an
    object already baked are skipped with the reason (tweak mode raised half-way, linked data was 'baked' and
    lost on save); driven or muted keys are named in the report; the new action plays at full influence."""
    import os

    from blender_fixtures import BLENDER_34
    if blender and not os.path.isfile(BLENDER_34):
        pytest.skip(f"{BLENDER_34} is absent")
    res = run_scenario("bake_guards", {"library": str(tmp_path / "lib.blend")},
                       blender=BLENDER_34 if blender else None)
    assert res["tweak_mode"] and res["linked"]
    assert res["first"]["objects"] == ["Face"]
    skipped = res["first"]["skipped"]
    assert "shares its mesh and shape keys with 'Face'" in skipped["Twin"]
    assert "tweak mode" in skipped["Tweaked"] and "linked from" in skipped["LibFace"]
    assert "absolute" in skipped["Absolute"]                 # 'baked', and no vertex moved
    assert res["absolute_mode"][0] is None and "absolute" in res["absolute_mode"][1]     # nor solved under Auto
    warnings = res["first"]["warnings"]                      # baked, but these keys will not play it
    assert any("'browInnerUp' is driven" in w for w in warnings) and any("'mouthSmileLeft' is muted" in w
                                                                          for w in warnings)
    assert res["spine_deg_before"][0] < 0.1 and res["spine_deg_before"][2] > 57
    np.testing.assert_allclose(res["spine_deg_after"], res["spine_deg_before"], atol=1e-4)
    np.testing.assert_allclose(res["spine_deg_after_second"], res["spine_deg_after"], atol=1e-4)
    assert abs(res["head_after_first"][0] - np.cos(0.1)) < 1e-3         # the take's 0.2 rad, once
    np.testing.assert_allclose(res["head_after_second"], res["head_after_first"], atol=1e-5)
    assert res["influence"] == 1.0 and res["blend"] == "REPLACE"
    assert res["user_action_kept"] and res["tweak_still"]
    assert res["new_actions"] == sorted(["FK_t", "FK_t.001", "FK_t_head", "FK_t_head.001"])


def test_export_follows_a_renamed_key_and_refuses_a_lost_curve(run_scenario, synthetic_csv, tmp_path):
    """A key renamed after the bake (Blender renames its curve): the export reads it under the new name
    (it wrote the unit as 0); a unit whose curve was deleted is a coded error, not a column of zeros."""
    res = run_scenario("export_renamed", {"csv": str(synthetic_csv), "renamed": str(tmp_path / "r.csv"),
                                          "deleted": str(tmp_path / "d.csv")})
    assert res["rc"] == ["FINISHED"] and res["renamed_rc"] == ["FINISHED"], res["renamed_state"]
    header, _, values = _read_csv(tmp_path / "r.csv")
    _, _, source = _read_csv(synthetic_csv)
    jaw = header.index("JawOpen") - 1
    assert values[:, jaw].max() > 0.1
    np.testing.assert_allclose(values[:, jaw], source[:, jaw], atol=1e-4)
    assert res["deleted_rc"] == ["CANCELLED"] and not (tmp_path / "d.csv").exists()
    message = res["deleted_state"]["error_message"]
    assert "eyeBlinkLeft" in message and "export as 0" in message
    # a renamed key whose place another unit's key took since: refused, not exported with that key's curve
    assert res["shifted_rc"] == ["CANCELLED"] and "eyeBlinkLeft" in res["shifted_state"]["error_message"]
