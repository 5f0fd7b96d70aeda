"""Take files: atomic write, strict validated read, clear errors naming the field."""
from __future__ import annotations

import os

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


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=40), st.integers(0, 2**31 - 1))
def test_bridging_puts_only_chosen_unsure_rows_on_a_line_between_trusted_rows(confidence, seed):
    """Any confidence curve, a curve keyed on any subset of its frames (an animator may delete keys), any
    choice among the unsure stretches: keys outside the chosen stretches are never changed, and each chosen
    key lies between the curve's nearest trusted keys around its stretch (another stretch's keys are
    skipped: their junk is no anchor), or level with the one there is."""
    from backend.protocol.bridge import line_over_runs
    from backend.protocol.take import unsure_runs

    rng = np.random.default_rng(seed)
    conf = np.array(confidence)
    runs = unsure_runs(conf)
    chosen = [r for r in runs if rng.random() < 0.5]
    frames = np.flatnonzero(rng.random(len(conf)) < 0.7).astype(np.float64)     # the curve's keys
    values = rng.uniform(0, 1, (len(frames), 3))
    out, changed, starts = line_over_runs(frames, values, chosen, runs)
    key_conf = conf[frames.astype(int)]
    picked = np.zeros(len(frames), bool)
    for first, last in chosen:
        picked |= (frames >= first) & (frames <= last)
    np.testing.assert_array_equal(out[~picked], values[~picked])
    trusted = np.flatnonzero(key_conf >= 0.5)
    if not len(trusted):
        np.testing.assert_array_equal(out, values)
        return
    assert changed.tolist() == picked.tolist() and all(key_conf[i] >= 0.5 for i in starts)
    for first, last in chosen:
        ends = list(trusted[frames[trusted] < first][-1:]) + list(trusted[frames[trusted] > last][:1])
        lo, hi = values[ends].min(0), values[ends].max(0)
        for i in np.flatnonzero((frames >= first) & (frames <= last)):
            assert np.all(out[i] >= lo - 1e-12) and np.all(out[i] <= hi + 1e-12)


def test_bridge_take_and_its_refusals():
    """A captured take's unsure stretch (frames 4-6, junk weights) gets its weights and gaze on the line
    between frames 3 and 7; head pose and confidence are kept and the header lists the stretch.  Takes that
    measured no confidence, are sure everywhere or unsure everywhere are refused with the reason."""
    from backend.protocol.bridge import bridge_take

    take = Take.empty(10, 30.0, confidence="measured", source="clip.mp4")
    take.weights[:] = np.linspace(0, 0.9, 10)[:, None]
    take.weights[4:7] = 1.0
    take.eye_gaze[:, 0] = np.linspace(-0.2, 0.2, 10)
    take.head_rotation[:] = [0.9, 0.1, 0.3, 0.3]
    take.confidence[4:7] = 0.2
    bridged, runs = bridge_take(take)
    assert runs == [(4, 6)] and bridged.header["bridged"] == [[4, 6]]
    np.testing.assert_allclose(bridged.weights[:, 0], np.linspace(0, 0.9, 10), atol=1e-6)
    np.testing.assert_allclose(bridged.eye_gaze[:, 0], take.eye_gaze[:, 0], atol=1e-6)
    np.testing.assert_array_equal(bridged.head_rotation, take.head_rotation)
    np.testing.assert_array_equal(bridged.confidence, take.confidence)
    assert (take.weights[4:7] == 1.0).all()                       # the input take is not changed
    for bad, words in ((Take.empty(10, 30.0), "measured no confidence"),
                       (Take.empty(10, 30.0, confidence="measured"), "sure of every frame")):
        with pytest.raises(FaceKeyError) as e:
            bridge_take(bad)
        assert e.value.code == "bad_argument" and words in e.value.message
    lost = Take.empty(10, 30.0, confidence="measured")
    lost.confidence[:] = 0.1
    with pytest.raises(FaceKeyError) as e:
        bridge_take(lost)
    assert "unsure of every frame" in e.value.message


def test_written_files_get_the_usual_permissions_and_keep_them_on_overwrite(tmp_path):
    """0666 less the umask, like any other new file (a temp file's 0600 made takes unreadable to the other
    users of a shared drive or render farm)."""
    import os
    import stat

    from backend.protocol.livelink import write_livelink_csv
    from backend.protocol.pc2 import write_pc2

    old = os.umask(0o022)
    try:
        take = _take()
        paths = [write_take(tmp_path / "a.npz", take), write_take(tmp_path / "a.npz", take),
                 write_livelink_csv(tmp_path / "a.csv", take), write_pc2(tmp_path / "a.pc2", np.zeros((2, 3, 3)))]
    finally:
        os.umask(old)
    assert {stat.S_IMODE(os.stat(p).st_mode) for p in paths} == {0o644}


def test_an_output_that_cannot_be_written_is_a_coded_error_and_leaves_nothing(tmp_path):
    (tmp_path / "folder.npz").mkdir()
    (tmp_path / "file").write_text("x")
    for bad in (tmp_path / "folder.npz", tmp_path / "file" / "t.npz"):
        with pytest.raises(FaceKeyError) as e:
            write_take(bad, _take())
        assert e.value.code == "write_failed" and str(bad) in e.value.message and e.value.hint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder.npz"]
    assert not list((tmp_path / "folder.npz").iterdir())


def test_a_video_passed_as_a_take_says_it_is_not_one(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(100))
    with pytest.raises(FaceKeyError) as e:
        read_take(tmp_path / "clip.mp4")
    assert e.value.code == "take_invalid" and "not an .npz archive" in e.value.message
    assert "pickled" not in e.value.message


def test_a_long_file_name_is_written(tmp_path):
    """The temp file beside the output has a short name of its own (one built from the output's name ran
    past the system's 255-character limit)."""
    name = "a" * 240 + ".npz"
    assert os.path.basename(write_take(tmp_path / name, _take())) == name
