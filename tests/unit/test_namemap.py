"""Name maps: built-in spellings, ranking, custom JSON maps, fuzzed spellings."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from backend.protocol.arkit import ARKIT_NAMES, INDEX, LIVELINK_CSV_BLENDSHAPES, pascal
from backend.protocol.errors import FaceKeyError
from backend.protocol.namemap import load_name_map, normalize_name


@pytest.mark.parametrize("kind, keys", [
    ("arkit", list(ARKIT_NAMES)),
    ("livelink", list(LIVELINK_CSV_BLENDSHAPES)),
    ("auto", [n.upper() for n in ARKIT_NAMES]),
])
def test_full_sets_map_every_unit_to_its_own_key(kind, keys):
    res = load_name_map(kind).resolve(keys)
    assert res.unmapped_units == [] and res.unused_keys == []
    for unit, key in res.mapping.items():
        assert key.lower() == ARKIT_NAMES[unit].lower()


def test_character_with_51_keys_reports_the_missing_unit_and_extra_keys():
    keys = ["Basis"] + [k for k in LIVELINK_CSV_BLENDSHAPES if k != "TongueOut"] + ["Fcl_EYE_Close_L"]
    res = load_name_map("auto").resolve(keys)
    assert res.unmapped_units == ["tongueOut"]
    assert res.unused_keys == ["Basis", "Fcl_EYE_Close_L"]
    assert res.mapping[INDEX["jawLeft"]] == "JawLeft"


@pytest.mark.parametrize("key, unit", [
    ("eyeBlink_L", "eyeBlinkLeft"), ("EyeBlink.R", "eyeBlinkRight"), ("mouthSmile_l", "mouthSmileLeft"),
    ("blendShape1.jawOpen", "jawOpen"), ("ARKit_cheekPuff", "cheekPuff"), ("EYE_BLINK_LEFT", "eyeBlinkLeft"),
    ("browOuterUp-Right", "browOuterUpRight"), ("Head|noseSneerLeft", "noseSneerLeft"),
    ("mouth_Right", "mouthRight"), ("CC_Base_mouthPucker", "mouthPucker"),
])
def test_common_spellings(key, unit):
    assert load_name_map("auto").resolve([key]).mapping == {INDEX[unit]: key}


def test_ranking_prefers_the_maps_own_spelling():
    keys = ["arkit_eyeBlinkLeft", "eyeblinkleft", "EyeBlinkLeft", "eyeBlinkLeft"]
    assert load_name_map("arkit").resolve(keys).mapping == {0: "eyeBlinkLeft"}
    assert load_name_map("livelink").resolve(keys).mapping == {0: "EyeBlinkLeft"}
    res = load_name_map("auto").resolve(keys[:2])
    assert res.mapping == {0: "eyeblinkleft"} and res.unused_keys == ["arkit_eyeBlinkLeft"]


def test_unrelated_names_do_not_match():
    res = load_name_map("auto").resolve(["Fcl_ALL_Joy", "Smile", "blink", "jaw", "eyeBlinkLeftX"])
    assert res.mapping == {}
    assert len(res.unmapped_units) == 52


_SEPARATORS = st.sampled_from(["_", ".", "-", " "])


@settings(max_examples=200, deadline=None)
@given(unit=st.sampled_from(ARKIT_NAMES), flips=st.lists(st.booleans(), min_size=30, max_size=30),
       sep=_SEPARATORS, short=st.booleans(), prefix=st.sampled_from(["", "blendShape1.", "ARKit_", "Face:"]))
def test_fuzzed_spellings_always_resolve(unit, flips, sep, short, prefix):
    name = unit
    if name.endswith(("Left", "Right")):
        side = "Left" if name.endswith("Left") else "Right"
        base = name[: -len(side)]
        name = base + sep + (side[0] if short else side)
    name = "".join(c.swapcase() if flips[i % len(flips)] else c for i, c in enumerate(name))
    key = prefix + name
    assert normalize_name(key).endswith(unit.lower())
    assert load_name_map("auto").resolve([key]).mapping == {INDEX[unit]: key}


@settings(max_examples=50, deadline=None)
@given(perm=st.permutations(list(range(52))))
def test_resolution_does_not_depend_on_key_order(perm):
    keys = [pascal(ARKIT_NAMES[i]) for i in perm]
    assert load_name_map("auto").resolve(keys).mapping == {i: pascal(n) for i, n in enumerate(ARKIT_NAMES)}


def test_custom_map(tmp_path):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"eyeBlinkLeft": "Blink_L", "EyeBlinkRight": "Blink_R", "jawOpen": "MouthOpen",
                                "tongueOut": "tongue"}))
    nm = load_name_map("custom", path)
    res = nm.resolve(["Basis", "Blink_L", "blink_r", "MouthOpen", "eyeBlinkLeft"])
    assert res.mapping == {0: "Blink_L", 7: "blink_r", 17: "MouthOpen"}
    assert "tongueOut" in res.unmapped_units and "eyeBlinkRight" not in res.unmapped_units
    assert res.unused_keys == ["Basis", "eyeBlinkLeft"]
    path.write_text(json.dumps({"eyeBlinkRight": "BLINK_L", "eyeBlinkLeft": "Blink_L"}))
    res = load_name_map("custom", path).resolve(["Blink_L", "Blink_R"])     # one key, two units asking for it
    assert res.mapping == {0: "Blink_L"} and res.unused_keys == ["Blink_R"]


@pytest.mark.parametrize("content, what", [
    ('{"eyeBlinkLeftt": "x"}', "is not an ARKit unit name"),
    ('{"eyeBlinkLeft": 3}', "must be a shape-key name"),
    ('{"eyeBlinkLeft": "a", "EyeBlinkLeft": "b"}', "listed twice"),
    ('{"eyeBlinkLeft": "Blink", "eyeBlinkRight": "Blink"}', "one unit per key"),
    ('["eyeBlinkLeft"]', "non-empty JSON object"),
    ('{"eyeBlinkLeft": "a",', "not valid JSON"),
])
def test_invalid_custom_maps(tmp_path, content, what):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(FaceKeyError) as e:
        load_name_map("custom", path)
    assert e.value.code == "name_map_invalid" and what in e.value.message and e.value.hint


def test_bad_kind_and_missing_file(tmp_path):
    with pytest.raises(FaceKeyError) as e:
        load_name_map("vroid")
    assert e.value.code == "bad_argument"
    with pytest.raises(FaceKeyError) as e:
        load_name_map("custom")
    assert e.value.code == "bad_argument"
    with pytest.raises(FaceKeyError) as e:
        load_name_map("custom", tmp_path / "none.json")
    assert e.value.code == "file_missing"

