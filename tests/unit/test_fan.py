"""The FAN (face-alignment) landmark source, offline: weights checks, crop geometry,
and the whole path with a randomly initialised network (no trained weights here)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("face_alignment")
torch = pytest.importorskip("torch")

from backend.footage import open_footage  # noqa: E402
from backend.protocol.errors import FaceKeyError  # noqa: E402
from backend.tracking import track_footage  # noqa: E402
from backend.tracking.fan import FAN_WEIGHTS_ENV, FanLandmarker, fan_track  # noqa: E402
from backend.tracking.select import face_box  # noqa: E402
from clips import cut_clip  # noqa: E402


@pytest.fixture(scope="module")
def random_fan(tmp_path_factory):
    """A FAN(4) with random weights saved as safetensors (stands in for the user's 2DFAN4 file)."""
    from face_alignment.models import FAN
    from safetensors.torch import save_file
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("fan") / "fan_random.safetensors"
    save_file({k: v.contiguous() for k, v in FAN(4).state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def clip_and_track(tmp_path_factory):
    clip = cut_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=2)
    return clip, track_footage(open_footage(clip))


def test_missing_weights_are_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv(FAN_WEIGHTS_ENV, raising=False)
    for arg in (None, tmp_path / "2DFAN4.zip"):
        with pytest.raises(FaceKeyError) as e:
            FanLandmarker(arg)
        assert e.value.code == "weights_missing" and "never downloads" in e.value.hint or "2DFAN4" in e.value.hint


def test_wrongly_shaped_weights_are_rejected_by_name_and_shape(tmp_path):
    from safetensors.torch import save_file
    bad = tmp_path / "bad.safetensors"
    save_file({"conv1.weight": torch.zeros(3, 3, 3, 3)}, str(bad))
    with pytest.raises(FaceKeyError) as e:
        FanLandmarker(bad)
    assert e.value.code == "weights_invalid" and "FAN(4)" in e.value.message
    junk = tmp_path / "junk.safetensors"                 # a damaged download: safetensors' own error escaped
    junk.write_bytes(b"\xff" * 64)
    with pytest.raises(FaceKeyError) as e:
        FanLandmarker(junk)
    assert e.value.code == "weights_invalid" and "safetensors" in e.value.message and e.value.hint


def test_random_network_runs_the_whole_path(random_fan, clip_and_track):
    clip, track = clip_and_track
    fan = fan_track(open_footage(clip), track, FanLandmarker(random_fan))
    assert fan.scheme == "ibug68" and fan.landmarks.shape == (track.num_frames, 68, 3)
    assert (fan.valid == track.valid).all() and np.isfinite(fan.landmarks[fan.valid]).all()
    x0, y0, x1, y1 = face_box(track.landmarks[0])
    size = max(x1 - x0, y1 - y0)
    pts = fan.landmarks[0, :, :2]
    assert (pts[:, 0] > x0 - size).all() and (pts[:, 0] < x1 + size).all()   # inside face-alignment's crop
    assert ((0 <= fan.confidence) & (fan.confidence <= 1)).all()


def test_heat_map_peaks_map_back_to_the_right_pixels(random_fan, clip_and_track):
    """A network whose heat maps peak where known image points fall in the crop must
    give those points back (within one heat-map cell): checks our centre/scale/crop use."""
    clip, track = clip_and_track
    lm = FanLandmarker(random_fan)
    truth = track.landmarks[0, :68, :2].astype(np.float64)                     # any 68 image points
    box = face_box(track.landmarks[0])
    x0, y0, x1, y1 = box
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2 - (y1 - y0) * 0.12])
    scale = (x1 - x0 + y1 - y0) / 195.0
    cell = 200.0 * scale / 64.0                                               # image pixels per heat-map cell
    grid = (truth - centre) / cell + 32.0                                     # heat-map coordinates

    class Peaks(torch.nn.Module):
        def forward(self, x):
            hm = torch.zeros(1, 68, 64, 64)
            for k, (gx, gy) in enumerate(grid):
                hm[0, k, int(np.clip(gy, 0, 63)), int(np.clip(gx, 0, 63))] = 1.0
            return [hm]

    lm.net = Peaks()
    frame = next(iter(open_footage(clip).frames()))
    pts, scores = lm.landmarks(frame.image, box)
    assert np.abs(pts[:, :2] - truth).max() < 1.5 * cell
    assert np.allclose(scores, 1.0)


def test_capture_with_the_fan_source_fits_68_points(random_fan, clip_and_track):
    """The capture path end to end with landmarks="fan": an iBUG-68 track reaches the
    solver and a valid Take comes out (a random network gives meaningless weights,
    so only the plumbing is checked here)."""
    from backend.capture import CaptureSettings, capture
    clip, _ = clip_and_track
    take = capture(clip, CaptureSettings(landmarks="fan", fan_weights=str(random_fan)))
    assert take.landmarks.shape[1] == 68 and take.header["landmark_scheme"] == "ibug68"
    assert take.valid.all() and 0.0 <= take.weights.min() and take.weights.max() <= 1.0


def test_fidelity_scores_the_fan_source_when_weights_exist(random_fan, clip_and_track, tmp_path):
    """`facekey bench fidelity` compares both landmark sources: the FAN path of the
    landmark scoring gives 68 finite points on a photo."""
    import cv2
    from backend.fidelity.landmark_gt import photo_landmarks68
    clip, _ = clip_and_track
    photo = tmp_path / "frame.png"
    cv2.imwrite(str(photo), cv2.cvtColor(next(iter(open_footage(clip).frames())).image, cv2.COLOR_RGB2BGR))
    pts = photo_landmarks68(photo, FanLandmarker(random_fan))
    assert pts.shape == (68, 2) and np.isfinite(pts).all()
    assert photo_landmarks68(photo).shape == (68, 2)
