"""MediaPipe FaceMesh (legacy ``mp.solutions`` API, 0.10.x) behind a small interface.

* :class:`VideoMesh`: FaceMesh in tracking mode (``static_image_mode=False``)
  for consecutive frames.  MediaPipe runs its face detector until it has
  ``max_faces`` faces, then follows them from frame to frame with the
  landmark model alone and re-runs detection by itself when a face is lost.
* :class:`StillFaces` / :func:`photo_faces`: every face in one image.
  FaceMesh in static mode on the whole image, plus MediaPipe's full-range
  face detector (``model_selection=1``, faces up to ~5 m) whose boxes are
  cropped, enlarged and meshed one by one -- the short-range detector inside
  FaceMesh misses small faces in group shots.  ``StillFaces.at`` meshes one
  face in a crop around a given place (used to follow one face of several).
* :func:`count_faces`: number of faces the full-range detector sees.

All landmarks are returned as (478, 3) float32 pixel arrays: ``x * W``,
``y * H``, ``z * W`` of MediaPipe's normalised output (z is relative depth,
same scale as x, smaller = closer to the camera).  The 478 points include
the 10 iris points of ``refine_landmarks=True`` (468-472: centre + 4 of the
subject's right iris, 473-477: the subject's left iris).

MediaPipe is imported lazily: importing this module is cheap.
"""
from __future__ import annotations

import logging
from typing import Optional

import numpy as np

__all__ = ["NUM_LANDMARKS", "VideoMesh", "StillFaces", "photo_faces", "count_faces", "detect_boxes",
           "scale_faces", "mediapipe_version"]

log = logging.getLogger(__name__)

NUM_LANDMARKS = 478


def _mp():
    import mediapipe as mp  # heavy import (TFLite runtime), only when tracking

    return mp


def mediapipe_version() -> str:
    return str(getattr(_mp(), "__version__", "unknown"))


def _to_pixels(face_landmarks, width: int, height: int) -> np.ndarray:
    a = np.array([(p.x, p.y, p.z) for p in face_landmarks.landmark], dtype=np.float32)
    if a.shape != (NUM_LANDMARKS, 3):
        raise RuntimeError(f"FaceMesh returned {a.shape[0]} landmarks, expected {NUM_LANDMARKS} "
                           "(refine_landmarks must be on)")
    a[:, 0] *= width
    a[:, 1] *= height
    a[:, 2] *= width
    return a


class VideoMesh:
    """FaceMesh in tracking mode.  Feed frames in order; close when done.

    Args:
        max_faces: faces MediaPipe tracks at once (more = slower: the
            detector keeps running while fewer are found).
        min_detection_confidence, min_tracking_confidence: MediaPipe's own
            thresholds (face detector score; landmark model face presence).
        static: use static-image mode (detector on every frame) instead.
    """

    def __init__(self, max_faces: int = 1, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, static: bool = False):
        mp = _mp()
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static, max_num_faces=int(max_faces), refine_landmarks=True,
            min_detection_confidence=float(min_detection_confidence),
            min_tracking_confidence=float(min_tracking_confidence))

    def process(self, image: np.ndarray, out_size: Optional[tuple[int, int]] = None) -> list[np.ndarray]:
        """Faces in one (H, W, 3) uint8 RGB frame.

        Args:
            image: the frame (C-contiguous RGB).
            out_size: (width, height) of the pixel grid to express landmarks
                in (default: the image's own size; pass the full-resolution
                size when ``image`` was downscaled).

        Returns:
            list of (478, 3) float32 pixel landmarks, one per face found.
        """
        h, w = image.shape[:2]
        ow, oh = out_size or (w, h)
        res = self._mesh.process(np.ascontiguousarray(image))
        return [_to_pixels(f, ow, oh) for f in (res.multi_face_landmarks or [])]

    def close(self) -> None:
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None

    def __enter__(self) -> "VideoMesh":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def detect_boxes(image: np.ndarray, min_confidence: float = 0.5) -> list[tuple[float, float, float, float, float]]:
    """Full-range face detector boxes ``(x0, y0, x1, y1, score)`` in pixels."""
    with StillFaces(min_detection_confidence=min_confidence) as sf:
        return sf.boxes(image)


def count_faces(image: np.ndarray, min_confidence: float = 0.5) -> int:
    """How many faces the full-range detector finds in one image."""
    return len(detect_boxes(image, min_confidence))


def _inside(box, points: np.ndarray) -> bool:
    """Whether the centre of a box lies in the landmark bounding box of a face."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0, y0 = points[:, :2].min(0)
    x1, y1 = points[:, :2].max(0)
    return bool(x0 <= cx <= x1 and y0 <= cy <= y1)


def _box_of(points: np.ndarray) -> tuple[float, float, float, float, float]:
    x0, y0 = points[:, :2].min(0)
    x1, y1 = points[:, :2].max(0)
    return float(x0), float(y0), float(x1), float(y1), 1.0


#: Crop side / face box side, and the size crops are resampled to.
CROP_ENLARGE = 2.2
CROP_PIXELS = 384


class StillFaces:
    """Faces in still images (or frame by frame, without temporal tracking).

    Holds three MediaPipe graphs, built once: FaceMesh in static mode for the
    whole image, the full-range face detector, and FaceMesh in static mode
    for square crops.  Use as a context manager or call :meth:`close`.
    """

    def __init__(self, max_faces: int = 10, min_detection_confidence: float = 0.5):
        self.max_faces = int(max_faces)
        self.conf = float(min_detection_confidence)
        self._full = None
        self._crop = None
        self._det = None

    def _graphs(self):
        if self._full is None:
            mp = _mp()
            self._full = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=self.max_faces, refine_landmarks=True,
                min_detection_confidence=self.conf)
            self._crop = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=3, refine_landmarks=True, min_detection_confidence=self.conf)
            self._det = mp.solutions.face_detection.FaceDetection(model_selection=1,
                                                                  min_detection_confidence=self.conf)
        return self._full, self._crop, self._det

    def boxes(self, image: np.ndarray) -> list[tuple[float, float, float, float, float]]:
        """Full-range detector boxes ``(x0, y0, x1, y1, score)`` in image pixels, best first."""
        _, _, det = self._graphs()
        h, w = image.shape[:2]
        res = det.process(np.ascontiguousarray(image))
        out = []
        for d in res.detections or []:
            b = d.location_data.relative_bounding_box
            out.append((b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h, float(d.score[0])))
        return sorted(out, key=lambda b: -b[4])

    def at(self, image: np.ndarray, centre: tuple[float, float], side: float) -> Optional[np.ndarray]:
        """Mesh the face nearest ``centre`` in a square crop of ``side`` pixels; image pixels or None.

        The crop is padded with black where it leaves the image and resampled
        to ``CROP_PIXELS`` (upsampling small faces, which the mesh's own
        short-range detector would miss).
        """
        import cv2

        _, mesh, _ = self._graphs()
        h, w = image.shape[:2]
        s = max(int(round(side)), 8)
        x0, y0 = int(round(centre[0] - s / 2)), int(round(centre[1] - s / 2))
        pad = max(0, -x0, -y0, x0 + s - w, y0 + s - h)
        src = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0) if pad else image
        crop = src[y0 + pad:y0 + pad + s, x0 + pad:x0 + pad + s]
        k = CROP_PIXELS / s
        crop = cv2.resize(crop, (CROP_PIXELS, CROP_PIXELS), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
        res = mesh.process(np.ascontiguousarray(crop))
        best, best_d = None, np.inf
        for f in res.multi_face_landmarks or []:
            a = _to_pixels(f, CROP_PIXELS, CROP_PIXELS)
            a[:, 0] = a[:, 0] / k + x0
            a[:, 1] = a[:, 1] / k + y0
            a[:, 2] = a[:, 2] / k
            bx = _box_of(a)
            d = np.hypot((bx[0] + bx[2]) / 2 - centre[0], (bx[1] + bx[3]) / 2 - centre[1])
            if d < best_d:
                best, best_d = a, d
        return best

    def find(self, image: np.ndarray) -> list[np.ndarray]:
        """All faces: whole-image mesh, plus meshed crops of detector boxes not already covered."""
        full, _, _ = self._graphs()
        h, w = image.shape[:2]
        res = full.process(np.ascontiguousarray(image))
        faces = [_to_pixels(f, w, h) for f in (res.multi_face_landmarks or [])]
        for box in self.boxes(image):
            if len(faces) >= self.max_faces:
                break
            if any(_inside(box, f) for f in faces):
                continue
            side = max(box[2] - box[0], box[3] - box[1]) * CROP_ENLARGE
            got = self.at(image, ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), side)
            if got is not None and not any(_inside(_box_of(got), f) for f in faces):
                faces.append(got)
        return faces

    def close(self) -> None:
        for g in (self._full, self._crop, self._det):
            if g is not None:
                g.close()
        self._full = self._crop = self._det = None

    def __enter__(self) -> "StillFaces":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def scale_faces(faces: list[np.ndarray], from_size: tuple[int, int], to_size: tuple[int, int]) -> list[np.ndarray]:
    """Rescale pixel landmarks (in place) from one image grid to another (x, z by width, y by height)."""
    (w, h), (ow, oh) = from_size, to_size
    if (ow, oh) != (w, h):
        for f in faces:
            f[:, 0] *= ow / w
            f[:, 1] *= oh / h
            f[:, 2] *= ow / w
    return faces


def photo_faces(image: np.ndarray, max_faces: int = 10, min_detection_confidence: float = 0.5,
                out_size: Optional[tuple[int, int]] = None) -> list[np.ndarray]:
    """All faces in one still image, as (478, 3) float32 pixel landmarks.

    FaceMesh (static mode) on the whole image first; then each full-range
    detector box not already covered by a found face is cropped (square,
    ``CROP_ENLARGE`` x the box), resampled to ``CROP_PIXELS`` and meshed.
    ``out_size`` = (width, height) of the grid to express landmarks in.
    """
    h, w = image.shape[:2]
    with StillFaces(max_faces, min_detection_confidence) as sf:
        faces = sf.find(image)
    return scale_faces(faces, (w, h), out_size or (w, h))
