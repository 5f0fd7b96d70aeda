"""Bad input to a capture gives a FaceKeyError with a code and a hint, and writes nothing."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from backend.protocol.errors import FaceKeyError

capture_mod = pytest.importorskip("backend.capture")
DEMO = __import__("backend.bench", fromlist=["DEMO_CLIP"]).DEMO_CLIP


def _capture_error(path, tmp_path) -> FaceKeyError:
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(FaceKeyError) as e:
        capture_mod.capture(path)
    assert e.value.hint, f"{e.value.code} has no hint"
    assert str(path.name) in e.value.message or e.value.code == "no_face"
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "a failed capture left files behind"
    return e.value


def test_missing_file(tmp_path):
    assert _capture_error(tmp_path / "nope.mp4", tmp_path).code == "file_missing"


def test_text_file_renamed_mp4(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n" * 50)
    assert _capture_error(bad, tmp_path).code == "video_unreadable"


def test_zero_length_clip(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert _capture_error(empty, tmp_path).code in {"video_unreadable", "video_empty"}


def test_truncated_video_is_clear(tmp_path):
    cut = tmp_path / "cut.mp4"
    data = DEMO.read_bytes()
    cut.write_bytes(data[:2000])          # header only: no decodable frame
    assert _capture_error(cut, tmp_path).code in {"video_unreadable", "video_empty"}


def test_no_face_in_any_frame(tmp_path):
    cv2 = pytest.importorskip("cv2")
    img = np.full((240, 320, 3), 90, np.uint8)
    cv2.rectangle(img, (40, 40), (200, 180), (200, 30, 30), -1)
    photo = tmp_path / "wall.png"
    cv2.imwrite(str(photo), img)
    assert _capture_error(photo, tmp_path).code == "no_face"


def test_half_truncated_video_keeps_what_decodes(tmp_path):
    """A clip cut mid-stream captures the frames that decode (or fails clearly); it never crashes."""
    cut = tmp_path / "half.mp4"
    shutil.copy(DEMO, cut)
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    try:
        take = capture_mod.capture(cut)
    except FaceKeyError as e:
        assert e.code in {"video_unreadable", "video_empty"} and e.hint
    else:
        assert 0 < take.num_frames and take.valid.any()
