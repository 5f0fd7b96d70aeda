"""The real Live Link Face recording: import values, conventions, exact export."""
from __future__ import annotations

import csv

import numpy as np

from backend.protocol.arkit import INDEX
from backend.protocol.livelink import read_livelink_csv, write_livelink_csv
from backend.protocol.take import read_take, write_take

NAME = "blendshape_recordings/livelinkface_MySlate_3_Jason_Millers_iPhone.csv"


def test_real_csv_import_and_byte_equal_export(realdata, tmp_path):
    src = realdata / NAME
    rows = list(csv.reader(open(src, newline="")))
    take = read_livelink_csv(src)
    assert take.num_frames == 328 == len(rows) - 1
    assert take.fps == 60.0
    np.testing.assert_allclose(take.timestamps[-1], 5.45, atol=0.01)
    for col, name in enumerate(rows[0]):
        if col >= 2 and col < 54:
            want = np.array([float(r[col]) for r in rows[1:]])
            np.testing.assert_allclose(take.weights[:, INDEX[name[0].lower() + name[1:]]], want, atol=1e-6)
    write_take(tmp_path / "t.npz", take)
    out = write_livelink_csv(tmp_path / "out.csv", read_take(tmp_path / "t.npz"))
    assert open(out, "rb").read() == src.read_bytes()


def test_real_csv_eye_gaze_agrees_with_eye_look_units(realdata):
    take = read_livelink_csv(realdata / NAME)
    w = take.weights
    up_left = w[:, INDEX["eyeLookUpLeft"]] - w[:, INDEX["eyeLookDownLeft"]]
    toward_left = w[:, INDEX["eyeLookOutLeft"]] - w[:, INDEX["eyeLookInLeft"]]
    assert np.corrcoef(take.eye_gaze[:, 1], up_left)[0, 1] > 0.9       # pitch > 0 looks up
    assert np.corrcoef(take.eye_gaze[:, 0], toward_left)[0, 1] > 0.9   # yaw > 0 toward subject's left
