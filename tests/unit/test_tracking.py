"""Tracking pieces that need no shared data: face selection, gaze, the iBUG map, FaceTrack
helpers, and the tracker's error/progress/cancel paths on synthetic footage."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from backend.protocol.errors import FaceKeyError
from backend.tracking import FaceTrack, gaze_from_landmarks, to_ibug68
from backend.tracking.gaze import CLOSED_OPENNESS, LEFT_EYE, REST_OFFSET_V, RIGHT_EYE, eye_openness
from backend.tracking.ibug68 import IBUG68_MIRROR, IBUG68_REGIONS, MEDIAPIPE_TO_IBUG68
from backend.tracking.select import FaceSelector, face_box, order_left_to_right

ASSET = Path(__file__).resolve().parents[2] / "backend" / "assets" / "mediapipe_canonical_face.npz"


# -- a synthetic MediaPipe face from the canonical mesh ---------------------------------------


def canonical_vertices() -> np.ndarray:
    return np.load(ASSET)["vertices_cm"].astype(np.float64)  # (468, 3) x = subject's left, y up, z out


def synthetic_face(scale=20.0, centre=(320.0, 240.0), roll_deg=0.0) -> np.ndarray:
    """(478, 3) pixel landmarks of the canonical face seen by an unmirrored camera.

    Image x = subject's left (the subject faces the camera), image y = down,
    MediaPipe z = smaller is closer (so -canonical z).  Irises sit at rest:
    level with the eye-corner midpoint, ``REST_OFFSET_V`` eye widths above it.
    """
    v = canonical_vertices()
    pts = np.stack([v[:, 0], -v[:, 1], -v[:, 2]], axis=1) * scale
    r = np.radians(roll_deg)
    rot = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    pts = pts @ rot.T
    pts[:, 0] += centre[0]
    pts[:, 1] += centre[1]
    out = np.zeros((478, 3))
    out[:468] = pts
    for iris, outer, inner, _, _ in (RIGHT_EYE, LEFT_EYE):
        mid = (out[outer] + out[inner]) / 2
        width = np.linalg.norm(out[outer] - out[inner])
        up = out[10] - out[152]
        up /= np.linalg.norm(up)
        c = mid + REST_OFFSET_V * width * up
        out[iris] = c
        out[iris + 1:iris + 5] = c + np.array([[1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0]]) * width * 0.15
    return out.astype(np.float32)


def shift_iris(face: np.ndarray, eye, dx_widths: float, dy_widths: float) -> np.ndarray:
    """Move one iris by fractions of that eye's width along the face's own right/up axes."""
    f = face.copy().astype(np.float64)
    iris, outer, inner, _, _ = eye
    width = np.linalg.norm(f[outer] - f[inner])
    toward_left = f[263] - f[33]
    toward_left /= np.linalg.norm(toward_left)
    up = f[10] - f[152]
    up /= np.linalg.norm(up)
    f[iris:iris + 5] += (dx_widths * toward_left + dy_widths * up) * width
    return f.astype(np.float32)


# -- face selection ---------------------------------------------------------------------------


def box_face(x0, y0, size) -> np.ndarray:
    pts = np.zeros((478, 3), np.float32)
    pts[:, 0] = np.linspace(x0, x0 + size, 478)
    pts[:, 1] = np.linspace(y0, y0 + size, 478)
    return pts


def test_selector_picks_largest_by_default():
    small, big = box_face(0, 0, 50), box_face(300, 0, 120)
    assert FaceSelector().choose([small, big]) == 1
    assert face_box(big) == (300.0, 0.0, 420.0, 120.0)


def test_selector_face_index_counts_from_the_left():
    faces = [box_face(400, 0, 50), box_face(0, 0, 60), box_face(200, 0, 70)]
    assert order_left_to_right(faces) == [1, 2, 0]
    assert FaceSelector(0).choose(faces) == 1
    assert FaceSelector(1).choose(faces) == 2
    assert FaceSelector(2).choose(faces) == 0
    assert FaceSelector(3).choose(faces) is None


def test_selector_follows_the_same_face():
    sel = FaceSelector()
    a, b = box_face(0, 0, 100), box_face(400, 0, 80)
    assert sel.choose([a, b]) == 0
    # b grows larger than a, the list order changes: still following a.
    for step in range(1, 6):
        a2, b2 = box_face(10 * step, 0, 100), box_face(400, 0, 80 + 20 * step)
        assert sel.choose([b2, a2]) == 1
    # A frame without faces does not forget whom we follow.
    assert sel.choose([]) is None
    assert sel.choose([box_face(400, 0, 180), box_face(60, 5, 100)]) == 1
    assert sel.acquisitions == 1


def test_selector_reacquires_after_the_face_leaves():
    sel = FaceSelector()
    assert sel.choose([box_face(0, 0, 100)]) == 0
    # The followed face is gone and only a far-away face remains: the rule picks it.
    assert sel.choose([box_face(500, 300, 60)]) == 0
    assert sel.acquisitions == 2


def test_selector_gate_for_single_candidates():
    sel = FaceSelector()
    assert not sel.accepts(box_face(0, 0, 100)) and sel.followed is None
    sel.choose([box_face(0, 0, 100)])
    assert sel.accepts(box_face(30, 20, 100))
    assert not sel.accepts(box_face(400, 0, 100))
    sel.take(box_face(30, 20, 100))
    centre, diag = sel.followed
    np.testing.assert_allclose(centre, [80, 70])
    assert diag == pytest.approx(100 * np.sqrt(2))


# -- gaze ----------------------------------------------------------------------------------------


def test_gaze_at_rest_is_zero():
    g = gaze_from_landmarks(synthetic_face()[None])
    assert g.shape == (1, 4) and g.dtype == np.float32
    # The synthetic iris is placed along the face's up axis, which is not exactly perpendicular
    # to each (slanted) eye axis: a few tenths of a degree remain.
    np.testing.assert_allclose(g, 0.0, atol=0.01)


def test_gaze_signs_and_magnitude():
    face = synthetic_face()
    k = 30.0 / 12.0
    # Subject's left eye looks toward the subject's left (image right): left yaw > 0.
    g = gaze_from_landmarks(shift_iris(face, LEFT_EYE, 0.1, 0.0))[0]
    assert g[0] == pytest.approx(np.arcsin(0.1 * k), abs=0.02)
    assert abs(g[1]) < 0.01 and abs(g[2]) < 0.01 and abs(g[3]) < 0.01
    # Subject's right eye looks up and toward the subject's right.
    g = gaze_from_landmarks(shift_iris(face, RIGHT_EYE, -0.08, 0.06))[0]
    assert g[2] == pytest.approx(-np.arcsin(0.08 * k), abs=0.02)
    assert g[3] == pytest.approx(np.arcsin(0.06 * k), abs=0.02)
    assert abs(g[0]) < 0.01 and abs(g[1]) < 0.01


def test_gaze_is_eye_in_head_under_roll_and_scale():
    moved = shift_iris(synthetic_face(), LEFT_EYE, 0.1, 0.05)
    ref = gaze_from_landmarks(moved)[0]
    rolled = shift_iris(synthetic_face(scale=35.0, centre=(100, 400), roll_deg=25.0), LEFT_EYE, 0.1, 0.05)
    np.testing.assert_allclose(gaze_from_landmarks(rolled)[0], ref, atol=0.01)


def test_gaze_invalid_frames_give_zero():
    face = shift_iris(synthetic_face(), LEFT_EYE, 0.1, 0.0)
    lm = np.stack([face, np.full_like(face, np.nan), face])
    g = gaze_from_landmarks(lm)
    assert np.all(g[1] == 0) and np.all(np.isfinite(g))
    g = gaze_from_landmarks(lm[[0, 2]], valid=np.array([True, False]))
    assert g[0, 0] > 0.1 and np.all(g[1] == 0)


def test_gaze_holds_closed_eye():
    face = synthetic_face()
    looking = shift_iris(face, LEFT_EYE, 0.1, 0.0)
    closed = looking.copy()
    closed[386] = closed[374]  # upper lid on the lower lid
    closed[473:478, 1] += 20.0  # the iris landmark drifts while the lid is shut
    lm = np.stack([looking, closed, closed, looking])
    assert eye_openness(closed[None])[0, 0] < CLOSED_OPENNESS
    g = gaze_from_landmarks(lm)
    np.testing.assert_allclose(g[1], g[0], atol=1e-6)
    np.testing.assert_allclose(g[2], g[0], atol=1e-6)
    assert not np.allclose(gaze_from_landmarks(lm, hold_closed=False)[1], g[0])


def test_gaze_rejects_wrong_shape():
    with pytest.raises(ValueError):
        gaze_from_landmarks(np.zeros((3, 68, 3)))


# -- iBUG 68 map ----------------------------------------------------------------------------------


def test_ibug_map_is_well_formed():
    assert len(MEDIAPIPE_TO_IBUG68) == 68 and len(set(MEDIAPIPE_TO_IBUG68)) == 68
    assert all(0 <= i < 468 for i in MEDIAPIPE_TO_IBUG68)
    assert sum(len(r) for r in IBUG68_REGIONS.values()) == 68


def test_ibug_map_geometry_on_canonical_mesh():
    """Mirror pairs map to mirror vertices; the midline has x = 0; parts are in iBUG order."""
    v = canonical_vertices()  # x = subject's left, y = up
    p = v[list(MEDIAPIPE_TO_IBUG68)]
    for k, m in enumerate(IBUG68_MIRROR):
        np.testing.assert_allclose(p[m] * [-1, 1, 1], p[k], atol=1e-3, err_msg=f"iBUG {k} vs {m}")
    jaw = p[0:17]
    assert np.all(np.diff(jaw[:, 0]) > 0), "jaw must run from the subject's right ear to the left ear"
    assert np.argmin(jaw[:, 1]) == 8 and jaw[8, 0] == pytest.approx(0, abs=1e-6)
    assert np.all(np.diff(jaw[:9, 1]) < 0) and np.all(np.diff(jaw[8:, 1]) > 0)
    # Brows above eyes above nose base above mouth above chin.
    brows, eyes = p[17:27, 1].min(), p[36:48, 1].max()
    assert brows > eyes > p[31:36, 1].max() > p[48:68, 1].max() > jaw[8, 1]
    assert np.all(np.diff(p[17:22, 0]) > 0) and np.all(np.diff(p[22:27, 0]) > 0)
    assert np.all(np.diff(p[27:31, 1]) < 0), "nose bridge runs down to the tip"
    assert np.all(np.diff(p[31:36, 0]) > 0)
    # Eyes: 36/39 right eye corners (x < 0), 42/45 left eye corners; 36 and 45 the outer ones.
    assert p[36, 0] < p[39, 0] < 0 < p[42, 0] < p[45, 0]
    assert p[37, 1] > p[41, 1] and p[43, 1] > p[47, 1]
    # Mouth corners 48/54 are the widest lip points, 51 top, 57 bottom.
    outer = p[48:60]
    assert np.argmin(outer[:, 0]) == 0 and np.argmax(outer[:, 0]) == 6
    assert np.argmax(outer[:, 1]) in (2, 3, 4) and np.argmin(outer[:, 1]) == 9


def test_to_ibug68_and_facetrack_helpers():
    face = synthetic_face()
    lm = np.stack([face, np.full_like(face, np.nan)])
    track = FaceTrack(landmarks=lm, valid=np.array([True, False]), confidence=np.array([1, 0], np.float32),
                      timestamps=np.array([0.0, 0.04]), fps=25.0, image_size=(640, 480))
    track.validate()
    assert track.num_valid == 1
    ib = track.to_ibug68()
    assert ib.scheme == "ibug68" and ib.landmarks.shape == (2, 68, 3)
    np.testing.assert_array_equal(ib.landmarks[0], face[list(MEDIAPIPE_TO_IBUG68)])
    assert np.isnan(ib.landmarks[1]).all()
    np.testing.assert_array_equal(to_ibug68(face), face[list(MEDIAPIPE_TO_IBUG68)])
    assert track.eye_gaze().shape == (2, 4)
    with pytest.raises(ValueError):
        ib.eye_gaze()
    bad = FaceTrack(landmarks=np.zeros((2, 478, 3), np.float32), valid=np.array([True, False]),
                    confidence=np.zeros(2, np.float32), timestamps=np.array([0.0, 0.04]), fps=25.0,
                    image_size=(640, 480))
    with pytest.raises(ValueError, match="NaN on invalid"):
        bad.validate()


# -- the tracker on synthetic footage (MediaPipe, but no shared data) ------------------------------


def _noise_clip(path, n=12, size=(160, 120)):
    av = pytest.importorskip("av")
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        for _ in range(n):
            img = (rng.random((size[1], size[0], 3)) * 60 + 100).astype(np.uint8)
            for pk in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return str(path)


@pytest.fixture
def tracker():
    pytest.importorskip("mediapipe")
    from backend.tracking import tracker as mod

    return mod


def test_no_face_in_photo_raises(tmp_path, tracker):
    cv2 = pytest.importorskip("cv2")
    p = tmp_path / "wall.png"
    img = np.zeros((240, 320, 3), np.uint8)
    cv2.rectangle(img, (40, 40), (200, 160), (0, 200, 255), -1)
    cv2.imwrite(str(p), img)
    with pytest.raises(FaceKeyError) as e:
        tracker.track_footage(p)
    assert e.value.code == "no_face" and "wall.png" in e.value.message and e.value.hint


def test_no_face_in_video_raises_and_reports_progress(tmp_path, tracker):
    p = _noise_clip(tmp_path / "noise.mp4", n=12)
    events = []
    with pytest.raises(FaceKeyError) as e:
        tracker.track_footage(p, progress=events.append, progress_every=4)
    assert e.value.code == "no_face"
    assert [ev.done for ev in events] == [0, 4, 8, 12]
    assert all(ev.total == 12 for ev in events)


def test_cancel_between_frames(tmp_path, tracker):
    p = _noise_clip(tmp_path / "noise.mp4", n=12)
    stop = threading.Event()
    gen = tracker.track_steps(p, cancel=stop, progress_every=1)
    next(gen)  # start event
    next(gen)  # frame 1 done
    stop.set()
    with pytest.raises(FaceKeyError) as e:
        next(gen)
    assert e.value.code == "cancelled"
    calls = iter([False, False, True])
    with pytest.raises(FaceKeyError) as e:
        tracker.track_footage(p, cancel=lambda: next(calls))
    assert e.value.code == "cancelled"


def test_bad_settings(tmp_path, tracker):
    p = _noise_clip(tmp_path / "noise.mp4", n=2)
    for kw in ({"face_index": -1}, {"max_faces": 0}, {"min_detection_confidence": 2.0}, {"progress_every": 0},
               {"mode": "fast"}, {"hands": "yes"}):
        with pytest.raises(FaceKeyError) as e:
            tracker.track_footage(p, **kw)
        assert e.value.code == "bad_argument"
    with pytest.raises(FaceKeyError) as e:
        tracker.track_footage(tmp_path / "missing.mp4")
    assert e.value.code == "file_missing"


def test_ibug68_vertices_put_the_jaw_on_the_mandible():
    """Fitted-face 68 points: inner points are the mapped vertices, the jaw moves back and down
    from the face oval, symmetrically, the chin straight back."""
    from backend.facemodel import load_face_model
    from backend.tracking.ibug68 import IBUG68_JAW_OFFSET_M, IBUG68_MIRROR, ibug68_vertices

    v = load_face_model().neutral.astype(np.float64)
    pts = ibug68_vertices(v[None])[0]
    plain = v[list(MEDIAPIPE_TO_IBUG68)]
    np.testing.assert_array_equal(pts[17:], plain[17:])
    move = pts[:17] - plain[:17]
    np.testing.assert_allclose(move[:, 1:], np.tile(IBUG68_JAW_OFFSET_M[1:], (17, 1)), atol=1e-12)
    assert move[8, 0] == pytest.approx(0.0, abs=1e-9)                       # chin: no sideways move
    assert (np.sign(move[:8, 0]) == np.sign(plain[:8, 0])).all()            # outward on each side
    mirror = pts[list(IBUG68_MIRROR)[:17]]
    np.testing.assert_allclose(mirror[:, 0], -pts[:17, 0], atol=1e-6)     # still mirror-symmetric
    with pytest.raises(ValueError, match="head-frame vertices"):
        ibug68_vertices(np.zeros((68, 3)))


def _upright_hand():
    """(21, 2) pixels of a flat right hand, fingers up: wrist (100, 200), knuckles near y = 150."""
    pts = [(100, 200), (80, 190), (65, 175), (55, 160), (48, 148)]           # wrist, thumb
    for x, base in ((85, 150), (100, 148), (112, 150), (122, 155)):            # index, middle, ring, little
        pts += [(x, base - k * 18) for k in range(4)]
    return np.array(pts, np.float32)


def test_hand_silhouette_covers_palm_fingers_and_forearm_start_only():
    from backend.tracking.hands import FINGER_HALF_WIDTH, covered, hand_polygons

    hand = _upright_hand()
    polygons, margin = hand_polygons(hand)
    assert len(polygons) == 2 and margin == pytest.approx(FINGER_HALF_WIDTH * 52.0)
    points = np.array([
        (100, 170),    # palm
        (100, 100),    # between the middle finger's joints
        (126, 130),    # 4 px right of the little finger: within half a finger's width
        (100, 235),    # just below the wrist: the forearm
        (145, 130),    # 23 px right of the little finger: free
        (100, 275),    # beyond the forearm strip (one palm length, 52 px)
        (300, 300),    # far away
    ], np.float32)
    assert covered(points, [hand]).tolist() == [True, True, True, True, False, False, False]
    assert not covered(points, []).any()
    with pytest.raises(ValueError):
        hand_polygons(hand[:20])


def test_occlusion_mask_follows_the_track_helpers():
    lm = np.random.default_rng(0).normal(300, 50, (3, 478, 3)).astype(np.float32)
    occ = np.zeros((3, 478), bool)
    occ[1, list(MEDIAPIPE_TO_IBUG68[48:60])] = True         # the outer lips of frame 1
    track = FaceTrack(landmarks=lm, valid=np.ones(3, bool), confidence=np.ones(3, np.float32),
                      timestamps=np.arange(3) / 30.0, fps=30.0, image_size=(640, 480), occluded=occ).validate()
    ibug = track.to_ibug68()
    assert ibug.occluded.shape == (3, 68) and np.flatnonzero(ibug.occluded[1]).tolist() == list(range(48, 60))
    assert not ibug.occluded[[0, 2]].any()
    with pytest.raises(ValueError, match="occluded"):
        FaceTrack(landmarks=lm, valid=np.ones(3, bool), confidence=np.ones(3, np.float32),
                  timestamps=np.arange(3) / 30.0, fps=30.0, image_size=(640, 480), occluded=occ[:, :68]).validate()


@pytest.mark.parametrize("skip", [True, False])
def test_hand_search_skips_frames_only_while_no_hand_is_seen(skip):
    """Video: while no hand is in view the palm detector looks at every other frame; a hand that comes
    in on a skipped frame is still marked there (the skipped frame is looked at once a hand is found),
    and every frame gets its mask, in order, by the end.  With skipping off, every frame is looked at."""
    from backend.tracking.hands import HandOcclusion

    hand_on, n = set(range(4, 10)), 14        # the hand comes in on frame 4 (a skipped one) and leaves at 10
    looked = []

    def find(image):
        looked.append(int(image[0, 0, 0]))
        return [_upright_hand()] if looked[-1] in hand_on else []

    occlusion = HandOcclusion(skip_while_none=skip)
    occlusion.find = find
    face = np.array([(100, 170), (300, 300)], np.float32)        # a point under the hand, one far away
    masks = []
    try:
        for i in range(n):
            masks += occlusion.push(np.full((8, 8, 3), i, np.uint8), None if i == 12 else face)
        masks += occlusion.flush()
    finally:
        occlusion.close()
    assert len(masks) == n and masks[12] is None                  # frame 12 has no face
    assert [i for i, m in enumerate(masks) if m is not None and m[0]] == sorted(hand_on)
    assert not any(m[1] for m in masks if m is not None)
    if skip:
        assert sorted(set(looked)) == [1, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13]   # 0, 2, 11 skipped while no hand
    else:
        assert looked == list(range(n))


@settings(max_examples=60, deadline=None)
@given(hand=st.lists(st.booleans(), min_size=1, max_size=30), face_gone=st.sets(st.integers(0, 29)))
def test_hand_search_marks_every_hand_seen_twice_in_a_row(hand, face_gone):
    """Any sequence of frames with and without a hand (and frames without a face): one mask per frame,
    in order, None exactly where there is no face; nothing is marked without a hand; and a hand there
    on two or more frames in a row is marked on every one of them, as looking at every frame would."""
    from backend.tracking.hands import HandOcclusion

    def find(image):
        return [_upright_hand()] if hand[int(image[0, 0, 0])] else []

    occlusion = HandOcclusion()
    occlusion.find = find
    face = np.array([(100, 170)], np.float32)                 # under the hand when there is one
    masks = []
    try:
        for i in range(len(hand)):
            masks += occlusion.push(np.full((4, 4, 3), i, np.uint8), None if i in face_gone else face)
        masks += occlusion.flush()
    finally:
        occlusion.close()
    assert len(masks) == len(hand)
    assert [m is None for m in masks] == [i in face_gone for i in range(len(hand))]
    marked = [m is not None and bool(m[0]) for m in masks]
    in_run = [hand[i] and ((i > 0 and hand[i - 1]) or (i + 1 < len(hand) and hand[i + 1])) for i in range(len(hand))]
    for i in range(len(hand)):
        assert not marked[i] or hand[i]
        assert marked[i] or not in_run[i] or i in face_gone
