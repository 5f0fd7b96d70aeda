"""Face tracking: footage in, :class:`FaceTrack` (478 MediaPipe landmarks per frame) out.

Two ways to call it:

* ``track = yield from track_steps(source, ...)`` inside a generator: yields
  :class:`~backend.protocol.messages.Progress` events (done, total, message)
  and returns the FaceTrack -- the form the worker and the CLI compose.
* ``track_footage(source, progress=callback, cancel=event)``: runs the same
  steps and returns the FaceTrack.

Rules (see also ``select.py``):

* Videos and image sequences run in one of two modes, chosen on the first
  frame (``mode="auto"``):

  - ``"track"`` when MediaPipe's full-range detector sees at most one face
    there and ``face_index`` is None or 0: FaceMesh in tracking mode on
    whole frames (the fast path; MediaPipe follows the face itself).
  - ``"select"`` when several faces are visible (or ``face_index`` >= 1):
    FaceMesh's own detector misses small faces in group shots, so faces are
    found with the full-range detector, meshed in enlarged crops, one is
    chosen by the rule below, and on later frames it is meshed again in a
    crop around where it was (static FaceMesh, ~2x the cost of tracking
    mode).  When it is not found there, all faces are searched again.

  Photos use the still-image path (whole-image mesh plus detector crops).
* One face is kept per frame: the largest one, or the ``face_index``-th from
  the left, then followed from frame to frame (nearest centre).
* Frames without the face have ``valid=False``, NaN landmarks and confidence
  0: nothing is interpolated or invented.  MediaPipe re-runs its detector by
  itself after a loss, so the face is picked up again when it returns.
* Confidence: MediaPipe's legacy FaceMesh gives no per-face score.  A face it
  returns has passed its face-presence check (``min_tracking_confidence``),
  so confidence is 1.0 on tracked frames and 0.0 elsewhere; later stages
  (solvers) may lower it from their own fit residuals.
* No face on any frame raises ``FaceKeyError("no_face")``.
* Memory: frames are decoded one at a time; only landmarks are kept,
  (T, 478, 3) float32 (about 5.7 kB per frame).
* Landmarks are in pixels of the displayed (rotated) image at the source's
  full resolution, even when ``max_side`` downscales frames for speed.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any, Callable, Generator, Optional, Union

import numpy as np

from backend.footage import Footage, open_footage
from backend.protocol.errors import FaceKeyError
from backend.protocol.messages import Progress

from .mediapipe_mesh import CROP_ENLARGE, NUM_LANDMARKS, StillFaces, VideoMesh, mediapipe_version, scale_faces
from .select import FaceSelector
from .track import FaceTrack

__all__ = ["TrackSettings", "track_steps", "track_footage", "MODES", "MAX_FACES"]

log = logging.getLogger(__name__)

#: Tracking modes for videos and image sequences.
MODES = ("auto", "track", "select")
#: Most faces searched per image in ``"select"`` mode and in photos (unless ``max_faces`` says).
MAX_FACES = 10

_NO_FACE_HINT = ("Make sure a face is visible, lit from the front, not too small (at least ~80 pixels "
                 "across) and not turned away more than ~60 degrees; try brighter or closer footage.")


@dataclasses.dataclass
class TrackSettings:
    """Tracking options (saved into ``FaceTrack.info['settings']``).

    Attributes:
        face_index: None = the largest face; k = the k-th face from the left
            of the image (0-based) when several are visible.
        mode: ``"auto"``, ``"track"`` or ``"select"`` for videos and image
            sequences (see the module docstring).
        max_faces: in ``"track"`` mode, faces MediaPipe tracks at once (None
            = 1, or ``face_index + 1``); in ``"select"`` mode and for
            photos, the most faces searched per image (None = ``MAX_FACES``).
        max_side: downscale frames so the longer side is at most this many
            pixels before tracking (faster on large footage); landmarks are
            still given at full resolution.
        fps: frame rate of image sequences.
        min_detection_confidence: MediaPipe face detector threshold.
        min_tracking_confidence: MediaPipe face-presence threshold in
            tracking mode (below it the detector runs again).
        progress_every: emit a progress event every this many frames.
        hands: also find hands (MediaPipe Hands) and mark the face
            landmarks a hand covers (``FaceTrack.occluded``); about 3x the
            tracking time (see ``backend.tracking.hands``).
    """

    face_index: Optional[int] = None
    mode: str = "auto"
    max_faces: Optional[int] = None
    max_side: Optional[int] = None
    fps: float = 30.0
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    progress_every: int = 5
    hands: bool = False

    def check(self) -> "TrackSettings":
        def bad(msg: str, hint: str) -> None:
            raise FaceKeyError("bad_argument", msg, hint)

        if self.face_index is not None and (not isinstance(self.face_index, int) or self.face_index < 0):
            bad(f"face_index must be an integer >= 0 or None, got {self.face_index!r}",
                "Faces are counted from the left of the image starting at 0; leave it unset for the largest.")
        if self.mode not in MODES:
            bad(f"mode must be one of {MODES}, got {self.mode!r}", "Leave it at 'auto'.")
        if self.max_faces is not None and (not isinstance(self.max_faces, int) or self.max_faces < 1):
            bad(f"max_faces must be an integer >= 1 or None, got {self.max_faces!r}", "Leave it unset.")
        for name in ("min_detection_confidence", "min_tracking_confidence"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 <= float(v) <= 1.0):
                bad(f"{name} must lie in [0, 1], got {v!r}", "Use a value such as 0.5.")
        if not isinstance(self.progress_every, int) or self.progress_every < 1:
            bad(f"progress_every must be an integer >= 1, got {self.progress_every!r}", "Use e.g. 5.")
        if not isinstance(self.hands, bool):
            bad(f"hands must be true or false, got {self.hands!r}", "Turn it on for footage with hands over the face.")
        return self


CancelLike = Union[Callable[[], bool], Any, None]


def _is_cancelled(cancel: CancelLike) -> bool:
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


class _Buffer:
    """Growable per-frame arrays (amortised doubling; no list of arrays)."""

    def __init__(self, capacity: int):
        cap = max(int(capacity), 16)
        self.n = 0
        self.decided = 0        # frames whose occlusion mask is known
        self.landmarks = np.full((cap, NUM_LANDMARKS, 3), np.nan, np.float32)
        self.valid = np.zeros(cap, bool)
        self.times = np.zeros(cap, np.float64)
        self.occluded = np.zeros((cap, NUM_LANDMARKS), bool)

    def append(self, time_s: float, points: Optional[np.ndarray]) -> None:
        if self.n == self.valid.shape[0]:
            cap = self.n * 2
            lm = np.full((cap, NUM_LANDMARKS, 3), np.nan, np.float32)
            lm[:self.n] = self.landmarks[:self.n]
            self.landmarks = lm
            self.valid = np.concatenate([self.valid, np.zeros(cap - self.n, bool)])
            self.times = np.concatenate([self.times, np.zeros(cap - self.n)])
            self.occluded = np.concatenate([self.occluded, np.zeros((cap - self.n, NUM_LANDMARKS), bool)])
        self.times[self.n] = time_s
        if points is not None:
            self.landmarks[self.n] = points
            self.valid[self.n] = True
        self.n += 1

    def set_occluded(self, masks: list[Optional[np.ndarray]]) -> None:
        """Occlusion masks ((L,) bool, or None on a frame without a face) of the next frames that have
        none yet, in order (they may come a frame after the frame itself, see ``HandOcclusion.push``)."""
        for mask in masks:
            if mask is not None:
                self.occluded[self.decided] = mask
            self.decided += 1

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n = self.n
        lm = self.landmarks[:n] if n == self.landmarks.shape[0] else self.landmarks[:n].copy()
        return lm, self.valid[:n].copy(), self.times[:n].copy(), self.occluded[:n].copy()


def track_steps(source: Union[str, os.PathLike, Footage], settings: Optional[TrackSettings] = None, *,
                cancel: CancelLike = None, **overrides: Any) -> Generator[Progress, None, FaceTrack]:
    """Track one face through footage, yielding progress; returns the FaceTrack.

    Args:
        source: a path (video, image-sequence folder, photo) or an opened
            :class:`~backend.footage.Footage`.
        settings: :class:`TrackSettings`; keyword ``overrides`` replace fields.
        cancel: a callable returning True, or an object with ``is_set()``
            (``threading.Event``), checked between frames.

    Yields:
        Progress(done, total, message) every ``progress_every`` frames and at
        the end (``total`` is the container's estimate until the end, where
        done == total == frames decoded).

    Returns:
        FaceTrack with (T, 478, 3) float32 landmarks (NaN where invalid).

    Raises:
        FaceKeyError: ``no_face``, ``cancelled``, ``bad_argument`` and the
            footage errors (``file_missing``, ``video_unreadable``,
            ``video_empty``).
    """
    settings = dataclasses.replace(settings or TrackSettings(), **overrides).check()
    footage = source if isinstance(source, Footage) else open_footage(
        source, max_side=settings.max_side, fps=settings.fps)
    info = footage.info
    full_size = (info.full_width, info.full_height)
    is_photo = info.kind == "image"
    total = max(int(info.num_frames), 0)
    selector = FaceSelector(settings.face_index)
    buf = _Buffer(total + 8 if total else 256)
    fi = settings.face_index or 0
    search_faces = settings.max_faces or max(MAX_FACES, fi + 1)
    mode = "photo" if is_photo else settings.mode
    mesh: Optional[VideoMesh] = None
    still = StillFaces(search_faces, settings.min_detection_confidence)
    hands = None
    if settings.hands:
        from .hands import HandOcclusion
        hands = HandOcclusion(static=is_photo)
    t0 = time.perf_counter()
    name = os.path.basename(info.path.rstrip("/\\")) or info.path
    yield Progress(0, total, f"Tracking faces in {name}")
    try:
        for frame in footage.frames():
            if _is_cancelled(cancel):
                raise FaceKeyError("cancelled", f"Tracking of {info.path} cancelled at frame {frame.index}.", "")
            img = frame.image
            size = (img.shape[1], img.shape[0])
            if mode == "auto":
                seen = len(still.boxes(img))
                mode = "track" if seen <= 1 and fi == 0 else "select"
                log.info("%s: %d face(s) on the first frame -> %s mode", info.path, seen, mode)
            if mode == "photo":
                cands = scale_faces(still.find(img), size, full_size)
                pick = selector.pick_by_rule(cands)
                selector.max_seen = len(cands)
                points = cands[pick] if pick is not None else None
            elif mode == "track":
                if mesh is None:
                    mesh = VideoMesh(settings.max_faces or fi + 1, settings.min_detection_confidence,
                                     settings.min_tracking_confidence)
                cands = mesh.process(img, out_size=full_size)
                pick = selector.choose(cands)
                points = cands[pick] if pick is not None else None
            else:  # select: follow the chosen face in a crop, search everything when it is not there
                points = None
                followed = selector.followed
                if followed is not None:
                    sx, sy = size[0] / full_size[0], size[1] / full_size[1]
                    centre = (followed[0][0] * sx, followed[0][1] * sy)
                    got = still.at(img, centre, followed[1] * sx / np.sqrt(2) * CROP_ENLARGE)
                    if got is not None:
                        got = scale_faces([got], size, full_size)[0]
                        if selector.accepts(got):
                            selector.take(got)
                            points = got
                if points is None:
                    cands = scale_faces(still.find(img), size, full_size)
                    pick = selector.choose(cands)
                    points = cands[pick] if pick is not None else None
            buf.append(frame.time, points)
            if hands is not None:
                scale = np.array([size[0] / full_size[0], size[1] / full_size[1]], np.float32)
                buf.set_occluded(hands.push(img, None if points is None else points[:, :2] * scale))
            done = buf.n
            if done % settings.progress_every == 0:
                yield Progress(done, max(total, done), f"Tracking faces in {name}: frame {done}")
        if hands is not None:
            buf.set_occluded(hands.flush())
    finally:
        if mesh is not None:
            mesh.close()
        still.close()
        if hands is not None:
            hands.close()
    landmarks, valid, times, occluded = buf.arrays()
    elapsed = time.perf_counter() - t0
    n_valid = int(valid.sum())
    if n_valid == 0:
        if selector.max_seen > 0 and settings.face_index is not None:
            raise FaceKeyError(
                "bad_argument",
                f"face_index={settings.face_index} but at most {selector.max_seen} face(s) are visible "
                f"at once in {info.path}.",
                f"Faces are counted from the left starting at 0: use 0..{selector.max_seen - 1}, "
                "or leave face_index unset to take the largest face.")
        what = "the photo" if is_photo else f"any of the {buf.n} frames"
        raise FaceKeyError("no_face", f"No face was found in {what} of {info.path}.", _NO_FACE_HINT)
    yield Progress(buf.n, buf.n, f"Tracked {n_valid} of {buf.n} frames in {name}")
    log.info("tracked %s: %d/%d frames with a face, %.1f fps", info.path, n_valid, buf.n, buf.n / max(elapsed, 1e-9))
    track = FaceTrack(
        landmarks=landmarks, valid=valid,
        confidence=valid.astype(np.float32),
        timestamps=times, fps=float(info.fps), image_size=(int(info.full_width), int(info.full_height)),
        scheme="mediapipe478", source=os.path.abspath(info.path), source_sha256=footage.sha256(),
        focal_px=None, occluded=occluded if settings.hands else None,
        info={
            "tracker": "mediapipe.solutions.face_mesh", "mediapipe_version": mediapipe_version(),
            "refine_landmarks": True, "mode": "static_image" if is_photo else "video",
            "tracking_mode": mode, "max_faces": settings.max_faces,
            "face_selection": "largest" if settings.face_index is None else f"index_from_left:{settings.face_index}",
            "face_acquisitions": selector.acquisitions, "max_faces_seen": selector.max_seen,
            "confidence": "1.0 where MediaPipe returned the face (passed its presence check), else 0.0",
            "frames": buf.n, "frames_valid": n_valid, "seconds": round(elapsed, 3),
            "footage": info.to_dict(), "footage_warnings": list(footage.warnings),
            "footage_truncated": bool(footage.truncated),
            **({"hands": "mediapipe.solutions.hands", "frames_with_face_covered": int(occluded.any(1).sum())}
               if settings.hands else {}),
            "settings": dataclasses.asdict(settings),
        })
    return track


def track_footage(source: Union[str, os.PathLike, Footage], settings: Optional[TrackSettings] = None, *,
                  progress: Optional[Callable[[Progress], None]] = None, cancel: CancelLike = None,
                  **overrides: Any) -> FaceTrack:
    """Run :func:`track_steps` to the end, passing each event to ``progress``."""
    gen = track_steps(source, settings, cancel=cancel, **overrides)
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(event)
