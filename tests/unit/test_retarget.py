"""Character solve on synthetic characters built from the built-in model (numpy only, no Blender)."""
from __future__ import annotations

import numpy as np
import pytest

from backend.facemodel import load_face_model
from backend.protocol.arkit import INDEX
from backend.protocol.errors import FaceKeyError
from backend.protocol.keytake import (CharacterKeys, KeyTake, read_character_keys, read_key_take,
                                      write_character_keys, write_key_take)
from backend.protocol.take import Take
from backend.retarget.character_solve import SolveSettings, retarget_take, solve_values
from backend.retarget.correspondence import find_correspondence

SCALE = np.array([1.4, 1.1, np.sqrt(1.4 * 1.1)])  # wider, taller; depth scale as the fit assumes (not observable frontally)
OFFSET = np.array([0.02, 1.5, -0.03])


def character(keys: dict[str, dict[str, float]], anchors: dict | None = None) -> CharacterKeys:
    """A character = the model mesh stretched by SCALE; each key a known mix {unit: amount} of model units."""
    m = load_face_model()
    rest = m.neutral.astype(np.float64) * SCALE + OFFSET
    deltas = np.stack([sum(a * m.unit_deltas[INDEX[u]].astype(np.float64) for u, a in mix.items()) * SCALE
                       for mix in keys.values()])
    return CharacterKeys("Synth", tuple(keys), rest.astype(np.float32), m.triangles.astype(np.int32),
                         deltas.astype(np.float32), anchors or {}).validate()


def take_of(weights: dict[str, np.ndarray], frames: int = 30) -> Take:
    t = Take.empty(frames, 30.0, source="synthetic")
    for u, w in weights.items():
        t.weights[:, INDEX[u]] = w
    return t.validate()


RAMP = np.concatenate([np.linspace(0, 1, 15), np.linspace(1, 0, 15)]).astype(np.float32)
ARKIT_SUBSET = {u: {u: 1.0} for u in ("jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "mouthSmileLeft",
                                      "mouthSmileRight", "browInnerUp", "mouthFunnel")}


def test_correspondence_on_a_stretched_copy_finds_the_same_points():
    m = load_face_model()
    ck = character(ARKIT_SUBSET)
    pts = find_correspondence(ck, m.neutral.astype(np.float64), m.unit_deltas.astype(np.float64), m.unit_names)
    assert pts.anchor_source == "keys"
    assert len(pts.model_index) > 400
    np.testing.assert_allclose(pts.scale[:2], SCALE[:2], rtol=0.01)
    pos = pts.positions(ck.rest.astype(np.float64), ck.triangles)
    want = ck.rest[pts.model_index].astype(np.float64)
    err = np.linalg.norm(pos - want, axis=1)
    assert np.median(err) < 5e-4 and np.percentile(err, 95) < 2e-3  # metres


def test_arkit_named_character_recovers_the_take():
    ck = character(ARKIT_SUBSET)
    take = take_of({"jawOpen": RAMP, "eyeBlinkLeft": RAMP[::-1].copy()})
    kt, report = retarget_take(take, ck, load_face_model(), SolveSettings(l1=0.001, smooth=0.0))
    v = dict(zip(kt.key_names, kt.values.T))
    assert np.abs(v["jawOpen"] - RAMP).max() < 0.05
    assert np.abs(v["eyeBlinkLeft"] - RAMP[::-1]).max() < 0.05
    for other in ("eyeBlinkRight", "browInnerUp"):
        assert v[other].max() < 0.02, other
    for other in ("mouthSmileLeft", "mouthFunnel"):  # lip points match less exactly: a little cross-talk
        assert v[other].max() < 0.15, other
    assert report["take_residual"] < 0.15


def test_keys_that_are_mixes_of_units_are_recovered():
    keys = {"Fcl_MTH_A": {"jawOpen": 1.0, "mouthFunnel": 0.3}, "Fcl_MTH_Joy": {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0},
            "Fcl_EYE_Close": {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0},
            "Fcl_EYE_Close_L": {"eyeBlinkLeft": 1.0}, "Fcl_EYE_Close_R": {"eyeBlinkRight": 1.0}}
    ck = character(keys)
    a, joy = RAMP, np.roll(RAMP, 7)
    take = take_of({"jawOpen": a, "mouthFunnel": 0.3 * a, "mouthSmileLeft": joy, "mouthSmileRight": joy})
    kt, _ = retarget_take(take, ck, load_face_model(), SolveSettings(l1=0.001, smooth=0.0))
    v = dict(zip(kt.key_names, kt.values.T))
    assert np.abs(v["Fcl_MTH_A"] - a).max() < 0.1
    assert np.abs(v["Fcl_MTH_Joy"] - joy).max() < 0.1
    assert max(v[k].max() for k in ("Fcl_EYE_Close", "Fcl_EYE_Close_L", "Fcl_EYE_Close_R")) < 0.02


def test_mouth_only_take_does_not_drive_an_eye_only_key():
    ck = character({"MouthOpenish": {"jawOpen": 0.7, "mouthLowerDownLeft": 0.5, "mouthLowerDownRight": 0.5},
                    "eyeBlinkLeft": {"eyeBlinkLeft": 1.0}, "eyeBlinkRight": {"eyeBlinkRight": 1.0},
                    "jawOpen": {"jawOpen": 0.01}})  # a nearly inert key named like an anchor is skipped for anchors
    take = take_of({"jawOpen": RAMP})
    kt, report = retarget_take(take, ck, load_face_model())
    v = dict(zip(kt.key_names, kt.values.T))
    assert v["MouthOpenish"].max() > 0.5
    assert v["eyeBlinkLeft"].max() < 0.02 and v["eyeBlinkRight"].max() < 0.02


def test_unmapped_motion_is_reported():
    ck = character({k: ARKIT_SUBSET[k] for k in ("jawOpen", "eyeBlinkLeft", "eyeBlinkRight")})
    take = take_of({"jawOpen": RAMP, "browInnerUp": RAMP})
    _, report = retarget_take(take, ck, load_face_model())
    assert "browInnerUp" in report["unmapped_units"]
    assert "jawOpen" not in report["unmapped_units"]
    assert report["unit_residual"]["jawOpen"] < 0.15 and report["unit_residual"]["browInnerUp"] > 0.9


def test_key_filter_and_inert_keys_are_skipped():
    ck = character({**ARKIT_SUBSET, "Inert": {"jawOpen": 0.0}})
    kt, report = retarget_take(take_of({"jawOpen": RAMP}), ck, load_face_model(),
                               SolveSettings(exclude=["mouth*"]))
    assert "Inert" not in kt.key_names and report["skipped_keys"]["Inert"] == "does not move the face surface"
    assert "mouthSmileLeft" not in kt.key_names and report["skipped_keys"]["mouthSmileLeft"] == "not selected"
    with pytest.raises(FaceKeyError) as e:
        retarget_take(take_of({"jawOpen": RAMP}), ck, load_face_model(), SolveSettings(keys=["Nothing*"]))
    assert e.value.code == "no_shape_keys"


def test_user_anchors_replace_missing_semantic_keys():
    m = load_face_model()
    near = lambda p: np.argsort(np.linalg.norm(m.neutral - p, axis=1))[:3].astype(np.int32)
    from backend.retarget.correspondence import model_anchors
    anchors = {a: near(p) for a, p in model_anchors(m.neutral, m.unit_deltas, m.unit_names).items()}
    ck = character({"A": {"jawOpen": 1.0}, "B": {"browInnerUp": 1.0}}, anchors=anchors)
    kt, report = retarget_take(take_of({"jawOpen": RAMP}), ck, m)
    assert report["anchors"] == "user"
    v = dict(zip(kt.key_names, kt.values.T))
    assert v["A"].max() > 0.8 and v["B"].max() < 0.02
    with pytest.raises(FaceKeyError) as e:
        retarget_take(take_of({"jawOpen": RAMP}), character({"A": {"jawOpen": 1.0}}), m)
    assert e.value.code == "no_shape_keys" and "facekey_eye_left" in e.value.hint


def test_invalid_frames_hold_values_and_stay_invalid():
    ck = character(ARKIT_SUBSET)
    take = take_of({"jawOpen": RAMP})
    take.valid[10:13] = False
    kt, _ = retarget_take(take, ck, load_face_model())
    assert not kt.valid[10:13].any()
    j = kt.key_names.index("jawOpen")
    np.testing.assert_array_equal(kt.values[10:12, j], kt.values[9, j])       # the nearest valid frame's
    np.testing.assert_array_equal(kt.values[12, j], kt.values[13, j])


def test_smoothing_does_not_pull_across_untracked_frames():
    """Frames 0 (mouth shut) and 39 (open) tracked, 1-38 not: they are not neighbours in time, so the
    smoothing leaves each its own value (it read 0.29 and 0.66 when it coupled them)."""
    ck = character(ARKIT_SUBSET)
    take = take_of({"jawOpen": (np.arange(40) >= 20).astype(np.float32)}, frames=40)
    take.valid[1:39] = False
    j = ck.key_names.index("jawOpen")
    smooth, _ = retarget_take(take, ck, load_face_model(), SolveSettings(smooth=1.0))
    plain, _ = retarget_take(take, ck, load_face_model(), SolveSettings(smooth=0.0))
    np.testing.assert_allclose(smooth.values[[0, 39], j], plain.values[[0, 39], j], atol=1e-3)
    assert smooth.values[0, j] < 0.02 and smooth.values[39, j] > 0.8


def test_solver_matches_a_naive_reference():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(4, 10, 3))
    y = np.einsum("tk,kpd->tpd", rng.uniform(0, 1, (5, 4)), d)
    fast = solve_values(d, y, l1=0.0, iterations=2000)
    for t in range(5):  # reference: scipy's bounded least squares, one frame at a time
        from scipy.optimize import lsq_linear
        ref = lsq_linear(d.reshape(4, -1).T, y[t].ravel(), bounds=(0, 1)).x
        np.testing.assert_allclose(fast[t], ref, atol=1e-4)


def test_key_take_and_character_files_round_trip(tmp_path):
    kt = KeyTake(("A", "B"), np.array([[0, 0.5], [1, 0.25]], np.float32), np.array([0.0, 0.04]),
                 np.array([True, False]), 25.0, {"object": "Face"})
    back = read_key_take(write_key_take(tmp_path / "k.npz", kt))
    assert back.key_names == ("A", "B") and back.fps == 25.0 and back.header["object"] == "Face"
    np.testing.assert_array_equal(back.values, kt.values)
    ck = character({"A": {"jawOpen": 1.0}}, anchors={"mouth": np.array([1, 2], np.int32)})
    ck2 = read_character_keys(write_character_keys(tmp_path / "c.npz", ck))
    assert ck2.key_names == ("A",) and list(ck2.anchors) == ["mouth"]
    np.testing.assert_array_equal(ck2.deltas, ck.deltas)


def test_bad_files_give_coded_errors(tmp_path):
    with pytest.raises(FaceKeyError) as e:
        KeyTake(("A",), np.array([[1.5]], np.float32), np.zeros(1), np.ones(1, bool), 30.0).validate()
    assert e.value.code == "take_invalid" and "values" in str(e.value)
    with pytest.raises(FaceKeyError) as e:
        read_key_take(tmp_path / "missing.npz")
    assert e.value.code == "file_missing"
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(FaceKeyError) as e:
        read_character_keys(tmp_path / "junk.npz")
    assert e.value.code == "take_invalid"


def test_worker_solves_a_measured_character(tmp_path):
    """The add-on's path: CharacterKeys measured in Blender + a Take -> worker op
    ``retarget_solve`` (real backend process) -> KeyTake the add-on bakes."""
    import sys

    from backend.protocol.client import BackendClient
    from backend.protocol.take import write_take

    ck_path = write_character_keys(tmp_path / "char.npz", character(ARKIT_SUBSET))
    take_path = write_take(tmp_path / "take.npz", take_of({"jawOpen": RAMP}))
    client = BackendClient(sys.executable, str(tmp_path / "backend.log"))
    client.start()
    try:
        out = client.request("retarget_solve", {"take": take_path, "character": ck_path,
                                                "output": str(tmp_path / "keys.npz"), "keys": ["*"], "exclude": []},
                             timeout=120)
    finally:
        client.close()
    kt = read_key_take(out["key_take"])
    v = dict(zip(kt.key_names, kt.values.T))
    assert np.abs(v["jawOpen"] - RAMP).max() < 0.1 and v["eyeBlinkLeft"].max() < 0.02
    assert out["report"]["take_residual"] < 0.2 and "unit_residual" in out["report"]


def test_anchor_keys_are_found_under_any_spelling_the_name_maps_accept():
    """Blender-style eyeBlink.L, EYE_BLINK_RIGHT, Jaw_Open: the name map maps them, so the solve must find
    its anchors on them too (it refused with 'has no shape key that marks the eye left')."""
    import dataclasses

    from backend.retarget.correspondence import character_anchors

    ck = character(ARKIT_SUBSET)
    spelled = {"eyeBlinkLeft": "eyeBlink.L", "eyeBlinkRight": "EYE_BLINK_RIGHT", "jawOpen": "Jaw_Open"}
    renamed = dataclasses.replace(ck, key_names=tuple(spelled.get(n, n) for n in ck.key_names))
    plain, _ = character_anchors(ck)
    found, source = character_anchors(renamed)
    assert source == "keys" and all(np.allclose(found[a], plain[a]) for a in plain)
