"""Take folders for batch retargeting: which files are takes, reading both kinds, clear errors."""
from __future__ import annotations

import numpy as np
import pytest

from backend.protocol.errors import FaceKeyError
from backend.protocol.livelink import write_livelink_csv
from backend.protocol.take import Take, write_take
from backend.protocol.takefolder import read_any_take, take_files


def _take(frames: int) -> Take:
    take = Take.empty(frames, 30.0)
    take.weights[:, 17] = np.linspace(0.0, 0.8, frames)  # jawOpen
    return take


def test_take_files_lists_npz_and_csv_in_name_order(tmp_path):
    write_take(tmp_path / "b_take.npz", _take(5))
    write_livelink_csv(tmp_path / "A_rec.CSV", _take(7))
    (tmp_path / "notes.txt").write_text("not a take")
    write_take(tmp_path / ".hidden.npz", _take(3))
    (tmp_path / "sub.npz").mkdir()                      # a folder, not a file
    write_take(tmp_path / "sub.npz" / "inner.npz", _take(3))
    paths = take_files(tmp_path)
    assert [p.rsplit("/", 1)[1] for p in paths] == ["A_rec.CSV", "b_take.npz"]
    assert [read_any_take(p).num_frames for p in paths] == [7, 5]
    np.testing.assert_allclose(read_any_take(paths[0]).weights[:, 17], np.linspace(0.0, 0.8, 7), atol=1e-4)


def test_missing_or_empty_folder_is_a_coded_error(tmp_path):
    with pytest.raises(FaceKeyError) as err:
        take_files(tmp_path / "nope")
    assert err.value.code == "file_missing" and "not found" in err.value.message
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(FaceKeyError) as err:
        take_files(tmp_path)
    assert err.value.code == "file_missing" and "No takes" in err.value.message and "facekey capture" in err.value.hint


def test_read_any_take_reports_what_is_wrong(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(FaceKeyError) as err:
        read_any_take(tmp_path / "bad.npz")
    assert err.value.code == "take_invalid"
    (tmp_path / "bad.csv").write_text("Timecode,BlendShapeCount\n")
    with pytest.raises(FaceKeyError) as err:
        read_any_take(tmp_path / "bad.csv")
    assert err.value.code == "csv_invalid"


def test_two_takes_of_one_name_are_refused_before_anything_is_made(tmp_path):
    """a.npz and a.CSV: batch solve wrote both to a_keys.npz (both actions held the npz take) and
    mesh-retarget both to a.pc2; the folder is refused, naming the two files."""
    write_take(tmp_path / "a.npz", _take(3))
    write_livelink_csv(tmp_path / "a.CSV", _take(9))
    with pytest.raises(FaceKeyError) as err:
        take_files(tmp_path)
    assert err.value.code == "bad_argument" and "a.CSV and a.npz" in err.value.message and err.value.hint
