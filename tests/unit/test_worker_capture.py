"""Capture settings, and capture through the real worker (skips until the pipeline is importable)."""
from __future__ import annotations

import os
import sys

import pytest

from backend.capture import CaptureSettings
from backend.protocol.client import BackendClient
from backend.protocol.errors import FaceKeyError
from backend.protocol.take import read_take

from clips import DEMO_CLIP, cut_clip

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_settings_round_trip_and_validation():
    s = CaptureSettings(face_index=1, max_side=480, smoothing=0.0, exclusive=False, sparsity=2.0, device="cpu",
                        rest_frame=3, actor_take="actor.npz", hands=True)
    assert CaptureSettings.from_dict(s.to_dict()) == s
    assert CaptureSettings.from_dict({}) == CaptureSettings()
    for bad in ({"smoothnes": 1.0}, {"smoothing": -1}, {"device": "tpu"}, {"face_index": -1},
                {"max_side": 10}, {"exclusive": "yes"}, {"smoothing": True}, {"face_index": 1.5},
                {"rest_frame": -1}, {"rest_frame": 2.0}, {"actor_take": ""}, {"actor_take": 3}, {"hands": 1}):
        with pytest.raises(FaceKeyError) as e:
            CaptureSettings.from_dict(bad)
        assert e.value.code == "bad_argument" and e.value.hint, bad
    with pytest.raises(FaceKeyError):
        CaptureSettings.from_dict(["smoothing"])


def _has_pipeline() -> bool:
    try:
        from backend.estimators import get_estimator  # noqa: F401
        from backend.footage import open_footage  # noqa: F401
        from backend.tracking import track_footage  # noqa: F401
    except ImportError:
        return False
    return True


pipeline = pytest.mark.skipif(not _has_pipeline(), reason="footage/tracking/estimators not available yet")


def short_clip(path, frames: int = 6) -> str:
    """The first ``frames`` frames of the bundled demo clip at 320x180."""
    return str(cut_clip(path, frames=frames, size=(320, 180)))


@pytest.fixture
def worker(tmp_path):
    client = BackendClient(sys.executable, str(tmp_path / "backend.log"), cwd=REPO)
    client.start(timeout=120)
    yield client
    client.close()


@pipeline
def test_capture_through_the_worker(worker, tmp_path):
    seen = []
    out = tmp_path / "take.npz"
    clip = short_clip(tmp_path / "clip.mp4")
    res = worker.request("capture", {"footage": clip, "output": str(out),
                                     "settings": {"max_side": 320, "device": "cpu", "rest_frame": 2},
                                     "face_index": None},
                         on_progress=seen.append, timeout=600)
    take = read_take(out)
    assert res["take"] == str(out) and res["frames"] == take.num_frames == 6
    assert res["valid_frames"] == int(take.valid.sum()) == 6
    assert res["fps"] == pytest.approx(take.fps) and res["source"] == clip
    assert take.header["capture_settings"]["max_side"] == 320
    assert take.header["settings"]["rest_frame"] == 2 and len(take.header["rest_offset"]) == 478
    stages = {p.message.split(":")[0] for p in seen}
    assert "tracking" in stages and "solving" in stages, stages


@pipeline
def test_capture_errors_come_back_coded(worker, tmp_path):
    with pytest.raises(FaceKeyError) as e:
        worker.request("capture", {"footage": str(tmp_path / "none.mp4"), "output": str(tmp_path / "t.npz"),
                                   "settings": {"device": "cpu"}}, timeout=120)
    assert e.value.code == "file_missing" and e.value.hint
    with pytest.raises(FaceKeyError) as e:
        worker.request("capture", {"footage": str(DEMO_CLIP), "output": str(tmp_path / "t.npz"),
                                   "settings": {"smoothnes": 2}}, timeout=120)
    assert e.value.code == "bad_argument"
    assert not (tmp_path / "t.npz").exists() and worker.alive


@pipeline
def test_cancel_during_capture(worker, tmp_path):
    rid = worker.submit("capture", {"footage": str(DEMO_CLIP), "output": str(tmp_path / "t.npz"),
                                    "settings": {"max_side": 320, "device": "cpu"}})
    with pytest.raises(FaceKeyError) as e:
        worker.wait(rid, on_progress=lambda p: worker.cancel(rid, kill_after=1.0), timeout=120)
    assert e.value.code == "cancelled"
    assert not (tmp_path / "t.npz").exists()
    if worker.alive:  # the pipeline stopped by itself (between frames): the worker is still usable
        assert worker.request("ping", {}, timeout=30)["pong"]
