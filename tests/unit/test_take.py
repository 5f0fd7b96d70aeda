"""Take files: atomic write, strict validated read, clear errors naming the field."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from backend.protocol.errors import FaceKeyError
from backend.protocol.take import Take, read_take, write_take


def _take(t=12, seed=0):
    rng = np.random.default_rng(seed)
    take = Take.empty(t, fps=30.0, source="clip.mp4")
    take.weights[:] = rng.uniform(0, 1, take.weights.shape)
    take.valid[3] = False
    take.landmarks = rng.normal(size=(t, 478, 3)).astype(np.float32)
    take.landmarks[3] = np.nan
    return take


def test_round_trip_keeps_every_field(tmp_path):
    take = _take()
    path = write_take(tmp_path / "a.npz", take)
    back = read_take(path)
    for f in ("weights", "head_rotation", "head_translation", "eye_gaze", "valid", "confidence", "timestamps"):
        np.testing.assert_array_equal(getattr(back, f), getattr(take, f))
    np.testing.assert_array_equal(back.landmarks, take.landmarks)
    assert back.fps == 30.0 and back.header["source"] == "clip.mp4" and back.header["schema_version"] == 1


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "a.npz"
    write_take(path, _take())
    bad = _take()
    bad.weights[0, 0] = 2.0
    with pytest.raises(FaceKeyError) as e:
        write_take(path, bad)
    assert e.value.code == "take_invalid" and "weights" in str(e.value)
    assert read_take(path).weights.max() <= 1.0          # old file intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]


@pytest.mark.parametrize("field,mutate,needle", [
    ("weights", lambda t: setattr(t, "weights", t.weights[:, :51]), "weights"),
    ("weights", lambda t: t.weights.__setitem__((0, 0), np.nan), "NaN"),
    ("valid", lambda t: setattr(t, "valid", t.valid.astype(np.float32)), "valid"),
    ("timestamps", lambda t: t.timestamps.__setitem__(2, 0.0), "increasing"),
    ("head_rotation", lambda t: t.head_rotation.__setitem__(0, [2, 0, 0, 0]), "quaternion"),
])
def test_invalid_takes_name_the_field(field, mutate, needle):
    take = _take()
    mutate(take)
    with pytest.raises(FaceKeyError) as e:
        take.validate()
    assert e.value.code == "take_invalid" and field in e.value.message and needle in str(e.value) and e.value.hint


def test_read_rejects_non_takes(tmp_path):
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(FaceKeyError) as e:
        read_take(tmp_path / "text.npz")
    assert e.value.code == "take_invalid"
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(FaceKeyError, match="header"):
        read_take(tmp_path / "other.npz")
    with pytest.raises(FaceKeyError) as e:
        read_take(tmp_path / "missing.npz")
    assert e.value.code == "file_missing"


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=0, max_size=2000))
def test_fuzzed_bytes_never_crash_the_reader(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("fuzz") / "f.npz"
    path.write_bytes(blob)
    with pytest.raises(FaceKeyError):
        read_take(path)


def test_truncated_take_is_rejected(tmp_path):
    path = write_take(tmp_path / "a.npz", _take(t=200))
    data = open(path, "rb").read()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(FaceKeyError) as e:
        read_take(tmp_path / "cut.npz")
    assert e.value.code == "take_invalid"


def test_unsure_runs_are_the_stretches_below_the_confidence_line():
    from backend.protocol.take import LOW_CONFIDENCE, unsure_runs

    conf = np.array([0.2, 1.0, 0.9, 0.1, 0.3, 1.0, LOW_CONFIDENCE, 0.0])
    assert unsure_runs(conf) == [(0, 0), (3, 4), (7, 7)]       # exactly LOW_CONFIDENCE is not unsure
    assert unsure_runs(np.ones(5)) == [] and unsure_runs(np.zeros(0)) == []
