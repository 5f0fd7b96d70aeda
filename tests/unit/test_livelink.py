"""Live Link Face CSV import/export: exact layout, round trips, conventions, errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.protocol.arkit import INDEX, LIVELINK_CSV_BLENDSHAPES
from backend.protocol.errors import FaceKeyError
from backend.protocol.livelink import (STANDARD_COLUMNS, format_timecode, parse_timecode,
                                       read_livelink_csv, write_livelink_csv)
from backend.protocol.rotations import quat_to_ypr
from backend.protocol.take import Take, read_take, write_take


def _synthetic_csv(path, rows=90, rate=60, seed=0, newline="\n"):
    """A CSV in Live Link Face's exact layout with float32-exact values (as the app writes)."""
    rng = np.random.default_rng(seed)
    lines = [",".join(STANDARD_COLUMNS)]
    for i in range(rows):
        sub = (0.5 + i * 0.0007) % 1.0
        tc = f"01:02:{(3 + i // rate):02d}:{i % rate:02d}.{int(sub * 1000):03d}"
        bs = rng.uniform(0, 1, 52).astype(np.float32)
        bs[rng.uniform(size=52) < 0.3] = 0.0
        ang = rng.uniform(-0.3, 0.3, 9).astype(np.float32)
        lines.append(",".join([tc, "61"] + ["%.10f" % v for v in np.concatenate([bs, ang])]))
    path.write_bytes((newline.join(lines) + newline).encode())
    return path


def test_synthetic_round_trip_is_byte_equal(tmp_path):
    src = _synthetic_csv(tmp_path / "in.csv")
    take = read_livelink_csv(src)
    assert take.num_frames == 90 and take.fps == 60.0
    out = write_livelink_csv(tmp_path / "out.csv", take)
    assert open(out, "rb").read() == src.read_bytes()


def test_round_trip_through_a_take_file_and_crlf(tmp_path):
    src = _synthetic_csv(tmp_path / "in.csv", rows=40, rate=30, seed=3, newline="\r\n")
    take = read_livelink_csv(src)
    assert take.fps == 30.0
    write_take(tmp_path / "t.npz", take)
    out = write_livelink_csv(tmp_path / "out.csv", read_take(tmp_path / "t.npz"))
    assert open(out, "rb").read() == src.read_bytes()


def test_values_land_on_arkit_units_by_name(tmp_path):
    src = _synthetic_csv(tmp_path / "in.csv", rows=5)
    rows = [line.split(",") for line in src.read_text().splitlines()]
    take = read_livelink_csv(src)
    for col, name in enumerate(rows[0]):
        if name in LIVELINK_CSV_BLENDSHAPES:
            unit = INDEX[name[0].lower() + name[1:]]
            np.testing.assert_allclose(take.weights[:, unit], [float(r[col]) for r in rows[1:]], atol=1e-7)
    # JawRight/JawLeft come in the CSV in the opposite order to ARKit's
    assert rows[0].index("JawRight") < rows[0].index("JawLeft") and INDEX["jawLeft"] < INDEX["jawRight"]


def test_columns_in_any_order_and_case(tmp_path):
    src = _synthetic_csv(tmp_path / "in.csv", rows=6)
    rows = [line.split(",") for line in src.read_text().splitlines()]
    perm = [0, 1] + list(np.random.default_rng(1).permutation(np.arange(2, len(rows[0]))))
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_text("\n".join(",".join(([r[i] for i in perm]) if k else [r[i].upper() for i in perm])
                                  for k, r in enumerate(rows)) + "\n")
    a, b = read_livelink_csv(src), read_livelink_csv(shuffled)
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.eye_gaze, b.eye_gaze)


def test_eye_and_head_sign_conventions(tmp_path):
    src = _synthetic_csv(tmp_path / "in.csv", rows=3)
    rows = [line.split(",") for line in src.read_text().splitlines()]
    col = {n: i for i, n in enumerate(rows[0])}
    take = read_livelink_csv(src)
    for i, r in enumerate(rows[1:]):
        # Live Link: yaw > 0 toward the subject's right, pitch > 0 down; Take: the opposite.
        assert take.eye_gaze[i, 0] == -np.float32(r[col["LeftEyeYaw"]])
        assert take.eye_gaze[i, 3] == -np.float32(r[col["RightEyePitch"]])
        ypr = quat_to_ypr(take.head_rotation[i])
        np.testing.assert_allclose(ypr, [-float(r[col["HeadYaw"]]), -float(r[col["HeadPitch"]]),
                                         float(r[col["HeadRoll"]])], atol=1e-5)


def test_timestamps_follow_the_timecode_rate(tmp_path):
    src = _synthetic_csv(tmp_path / "in.csv", rows=130)
    take = read_livelink_csv(src)
    assert np.all(np.diff(take.timestamps) > 0)
    np.testing.assert_allclose(np.diff(take.timestamps), 1 / 60, atol=0.002 / 60)
    assert take.header["livelink"]["timecodes"][0] == "01:02:03:00.500"


def test_timecode_helpers():
    assert parse_timecode("00:32:09:07.867") == (0, 32, 9, 7, pytest.approx(0.867))
    assert format_timecode(3600 + 61 + 7.5 / 30, 30) == "01:01:01:07.500"
    assert format_timecode(0.0, 60) == "00:00:00:00.000"


def test_edited_take_exports_its_own_values(tmp_path):
    src = _synthetic_csv(tmp_path / "in.csv", rows=10)
    take = read_livelink_csv(src)
    take.weights[:, INDEX["jawOpen"]] = 0.25
    take.head_rotation[:] = np.array([1, 0, 0, 0], np.float32)
    again = read_livelink_csv(write_livelink_csv(tmp_path / "out.csv", take))
    np.testing.assert_allclose(again.weights[:, INDEX["jawOpen"]], 0.25)
    np.testing.assert_allclose(again.head_rotation, take.head_rotation, atol=1e-7)


def test_captured_take_exports_standard_layout(tmp_path):
    take = Take.empty(75, 30.0, source="clip.mp4")
    take.weights[:, INDEX["mouthLeft"]] = np.linspace(0, 1, 75)
    take.eye_gaze[:, 1] = 0.1  # left eye looks up
    out = write_livelink_csv(tmp_path / "cap.csv", take)
    lines = open(out).read().splitlines()
    assert lines[0] == ",".join(STANDARD_COLUMNS)
    assert lines[1].startswith("00:00:00:00.000,61,") and lines[31].startswith("00:00:01:00.000,")
    back = read_livelink_csv(out)
    np.testing.assert_allclose(back.weights, take.weights, atol=1e-9)
    np.testing.assert_allclose(back.timestamps, take.timestamps, atol=1e-6)
    assert "-0.1000000015" in lines[1].split(",")  # LeftEyePitch, Live Link sign
    assert "-0.0000000000" not in ",".join(lines)


@pytest.mark.parametrize("mutate, where", [
    (lambda rows: rows[3].__setitem__(5, "abc"), "row 4, column EyeLookOutLeft"),
    (lambda rows: rows[2].__setitem__(2, "1.5"), "row 3, column EyeBlinkLeft"),
    (lambda rows: rows[4].pop(), "row 5"),
    (lambda rows: rows[2].__setitem__(0, "12:00"), "row 3, column Timecode"),
    (lambda rows: rows[3].__setitem__(0, rows[2][0]), "row 4, column Timecode"),
    (lambda rows: [r.pop(20) for r in rows], "lacks column(s) MouthClose"),
])
def test_malformed_csv_names_row_and_column(tmp_path, mutate, where):
    src = _synthetic_csv(tmp_path / "in.csv", rows=6)
    rows = [line.split(",") for line in src.read_text().splitlines()]
    mutate(rows)
    src.write_text("\n".join(",".join(r) for r in rows) + "\n")
    with pytest.raises(FaceKeyError) as e:
        read_livelink_csv(src)
    assert e.value.code == "csv_invalid" and where in e.value.message and e.value.hint


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(FaceKeyError) as e:
        read_livelink_csv(tmp_path / "nope.csv")
    assert e.value.code == "file_missing"
    (tmp_path / "empty.csv").write_text(",".join(STANDARD_COLUMNS) + "\n")
    with pytest.raises(FaceKeyError) as e:
        read_livelink_csv(tmp_path / "empty.csv")
    assert e.value.code == "csv_invalid"


_CELLS = st.one_of(st.sampled_from(["", " ", "nan", "inf", "-inf", "1e309", "-0", "0x10", "1,5", "\"", "\n", "NaN",
                                    "00:00:00:00.000", "99:99:99:99.999", "1.0000001", "-1", "𝟙"]),
                   st.text(max_size=8), st.floats(allow_nan=True, allow_infinity=True).map(repr))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 62), _CELLS), min_size=1, max_size=6),
       drop_rows=st.lists(st.integers(1, 7), max_size=3), truncate=st.one_of(st.none(), st.integers(0, 4000)))
def test_any_damaged_csv_reads_or_names_the_problem(tmp_path, edits, drop_rows, truncate):
    """Fuzz: cells replaced by junk (NaN, inf, text, quotes, newlines, other timecodes), rows dropped, the
    file cut anywhere: the reader returns a valid Take or raises csv_invalid with a hint, nothing else."""
    src = _synthetic_csv(tmp_path / "fuzz.csv", rows=7)
    rows = [line.split(",") for line in src.read_text().splitlines()]
    for r, c, value in edits:
        rows[r][c] = value
    rows = [row for k, row in enumerate(rows) if k not in drop_rows]
    data = ("\n".join(",".join(r) for r in rows) + "\n").encode()
    src.write_bytes(data if truncate is None else data[:truncate])
    try:
        take = read_livelink_csv(src)
    except FaceKeyError as e:
        assert e.code == "csv_invalid" and e.message and e.hint
        return
    take.validate()
    assert np.isfinite(take.weights).all() and 0.0 <= take.weights.min() and take.weights.max() <= 1.0
    assert np.all(np.diff(take.timestamps) > 0)


@pytest.mark.parametrize("fps", [15.0, 20.0, 26.4, 29.97, 30.0, 60.0])
def test_takes_at_any_frame_rate_come_back_at_their_own_times(tmp_path, fps):
    """A 15 fps webcam capture written at 15 timecode frames a second was read back at 24 (the smallest
    standard rate above frame 14): 0.6 s of every second, then a jump.  Written at the smallest standard
    rate >= fps, with fractions of a frame, every time comes back."""
    t = int(2.5 * fps)
    take = Take.empty(t, fps)
    take.weights[:, INDEX["jawOpen"]] = np.linspace(0, 1, t)
    back = read_livelink_csv(write_livelink_csv(tmp_path / "a.csv", take))
    np.testing.assert_allclose(back.timestamps, take.timestamps, atol=2e-4)
    np.testing.assert_allclose(back.weights, take.weights, atol=1e-6)
    assert back.fps >= fps - 0.05
