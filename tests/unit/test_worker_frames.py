"""The worker ops' ``frames`` / ``frame`` argument (one-frame preview): only those take frames are solved /
transferred, with the same result as the whole take there; bad indices are coded ``bad_argument`` errors."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from backend.facemodel import load_face_model
from backend.protocol.arkit import INDEX
from backend.protocol.client import BackendClient
from backend.protocol.errors import FaceKeyError
from backend.protocol.keytake import read_key_take, write_character_keys
from backend.protocol.pc2 import read_pc2
from backend.protocol.take import Take, select_frames, write_take
from test_retarget import ARKIT_SUBSET, RAMP, character, take_of

CHIN = 152


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    client = BackendClient(sys.executable, str(tmp_path_factory.mktemp("log") / "backend.log"))
    client.start()
    yield client
    client.close()


@pytest.fixture
def mesh_args(tmp_path) -> dict:
    """mesh_retarget arguments: a 10-frame jawOpen ramp onto a bigger built-in face (head axes)."""
    np.savez(tmp_path / "head.npz", vertices=load_face_model().neutral[:468].astype(np.float64) * 1.08)
    take = Take.empty(10, 24.0, source="jaw.mp4")
    take.weights[:, INDEX["jawOpen"]] = np.linspace(0, 1, 10)
    return {"take": write_take(tmp_path / "jaw.npz", take), "vertices": str(tmp_path / "head.npz"),
            "output": str(tmp_path / "all.pc2"), "serep": None, "start_frame": 5.0, "axes": "head"}


@pytest.fixture
def solve_args(tmp_path) -> dict:
    """retarget_solve arguments: a 30-frame jawOpen ramp up and down (peak 1.0 at frame 14)."""
    return {"take": write_take(tmp_path / "take.npz", take_of({"jawOpen": RAMP})),
            "character": write_character_keys(tmp_path / "char.npz", character(ARKIT_SUBSET)),
            "output": str(tmp_path / "keys.npz"), "keys": ["*"], "exclude": []}


def test_select_frames_keeps_the_rows_and_records_them():
    take = take_of({"jawOpen": RAMP})
    take.dense_offsets = np.random.default_rng(0).normal(size=(30, 5, 3)).astype(np.float32)
    one = select_frames(take, [np.int64(3), 14])
    assert one.num_frames == 2 and one.header["frames"] == [3, 14] and one.fps == take.fps
    np.testing.assert_array_equal(one.weights, take.weights[[3, 14]])
    np.testing.assert_array_equal(one.timestamps, take.timestamps[[3, 14]])
    np.testing.assert_array_equal(one.dense_offsets, take.dense_offsets[[3, 14]])
    assert take.num_frames == 30                                                  # the original is not cut


def test_mesh_retarget_frames_is_the_whole_transfer_at_that_frame(backend, mesh_args, tmp_path):
    full = backend.request("mesh_retarget", mesh_args, timeout=120)
    one = backend.request("mesh_retarget", {**mesh_args, "output": str(tmp_path / "one.pc2"), "frames": [7]},
                          timeout=120)
    same = backend.request("mesh_retarget", {**mesh_args, "output": str(tmp_path / "same.pc2"), "frame": 7},
                           timeout=120)
    all_frames, start, _ = read_pc2(full["pc2"])
    cache, one_start, _ = read_pc2(one["pc2"])
    assert full["frames"] is None and one["frames"] == [7] and one["samples"] == 1 and cache.shape[0] == 1
    assert start == 5.0 and one_start == 5.0 + 7                                   # plays where the full cache does
    np.testing.assert_allclose(cache[0], all_frames[7], atol=1e-6)
    np.testing.assert_array_equal(read_pc2(same["pc2"])[0], cache)
    assert cache[0, CHIN, 1] < all_frames[0, CHIN, 1] - 0.005                      # the chin is down at frame 7


def test_retarget_solve_frames_solves_only_that_frame(backend, solve_args, tmp_path):
    out = backend.request("retarget_solve", {**solve_args, "frames": [14]}, timeout=120)
    kt = read_key_take(out["key_take"])
    take = take_of({"jawOpen": RAMP})
    assert out["frames"] == [14] and kt.values.shape[0] == 1
    assert kt.timestamps[0] == take.timestamps[14]
    v = dict(zip(kt.key_names, kt.values[0]))
    assert abs(v["jawOpen"] - 1.0) < 0.1 and v["eyeBlinkLeft"] < 0.02


@pytest.mark.parametrize("op", ["mesh_retarget", "retarget_solve"])
def test_bad_frames_are_coded_bad_argument_errors(backend, mesh_args, solve_args, op):
    args, last = (mesh_args, 9) if op == "mesh_retarget" else (solve_args, 29)
    cases = [{"frames": [last + 1]}, {"frame": -1}, {"frames": [1.5]}, {"frames": "3"}, {"frames": []},
             {"frames": [3, 2]}, {"frame": True}, {"frames": [1], "frame": 1}]
    for extra in cases:
        with pytest.raises(FaceKeyError) as e:
            backend.request(op, {**args, **extra}, timeout=60)
        assert e.value.code == "bad_argument", (extra, e.value)
        assert e.value.hint, extra
    with pytest.raises(FaceKeyError) as e:
        backend.request(op, {**args, "frames": [last + 1]}, timeout=60)
    assert f"0..{last}" in e.value.message and f"0 to {last}" in e.value.hint
