"""FaceTrack: what the tracker hands to every estimator."""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

__all__ = ["FaceTrack"]


@dataclasses.dataclass
class FaceTrack:
    """Landmarks of one face over a clip.

    Attributes:
        landmarks: (T, L, 3) float32 image landmarks, L = 478 (MediaPipe) or
            68 (iBUG).  x right and y down in pixels of the displayed (rotation
            applied) image; z is MediaPipe's relative depth in the same pixel
            scale (smaller = closer to the camera).  NaN on invalid frames.
        valid: (T,) bool, True where a face was tracked.  Invalid frames are
            never filled in with invented landmarks.
        confidence: (T,) float32 in [0, 1] (0 on invalid frames).
        timestamps: (T,) float64 seconds from clip start (presentation times).
        fps: nominal frame rate of the source (frames / second).
        image_size: (width, height) in pixels of the displayed image.
        scheme: "mediapipe478" or "ibug68".
        source: path of the footage.
        source_sha256: hex digest of the footage file(s).
        focal_px: focal length in pixels if known, else None (estimators
            assume a default field of view).
        info: JSON-able extras (decoder, rotation, face selection rule, ...).
        occluded: (T, L) bool, True where a landmark is hidden (a hand over
            the face, ``backend.tracking.hands``), or None when occlusion was
            not looked for.  False on invalid frames.
    """

    landmarks: np.ndarray
    valid: np.ndarray
    confidence: np.ndarray
    timestamps: np.ndarray
    fps: float
    image_size: tuple[int, int]
    scheme: str = "mediapipe478"
    source: str = ""
    source_sha256: str = ""
    focal_px: Optional[float] = None
    info: dict = dataclasses.field(default_factory=dict)
    occluded: Optional[np.ndarray] = None

    @property
    def num_frames(self) -> int:
        return int(self.landmarks.shape[0])

    @property
    def num_valid(self) -> int:
        """Number of frames with a tracked face."""
        return int(np.count_nonzero(self.valid))

    def validate(self) -> "FaceTrack":
        """Check shapes, dtypes and the NaN/valid rule; raise ValueError naming the field."""
        lm = np.asarray(self.landmarks)
        if lm.ndim != 3 or lm.shape[2] != 3 or lm.shape[1] not in (478, 468, 68):
            raise ValueError(f"FaceTrack.landmarks must be (T, 478|68, 3), got {lm.shape}")
        t = lm.shape[0]
        for name, arr in (("valid", self.valid), ("confidence", self.confidence), ("timestamps", self.timestamps)):
            if np.shape(arr) != (t,):
                raise ValueError(f"FaceTrack.{name} must have shape ({t},), got {np.shape(arr)}")
        valid = np.asarray(self.valid, bool)
        if not np.isfinite(lm[valid]).all():
            raise ValueError("FaceTrack.landmarks has non-finite values on valid frames")
        if not np.isnan(lm[~valid]).all():
            raise ValueError("FaceTrack.landmarks must be NaN on invalid frames")
        if self.occluded is not None and np.shape(self.occluded) != lm.shape[:2]:
            raise ValueError(f"FaceTrack.occluded must have shape {lm.shape[:2]}, got {np.shape(self.occluded)}")
        if t > 1 and not np.all(np.diff(np.asarray(self.timestamps, np.float64)) > 0):
            raise ValueError("FaceTrack.timestamps must be strictly increasing")
        return self

    def frames(self, rows) -> "FaceTrack":
        """The track on some of its frames: ``rows`` a slice or an index array of frames in order."""
        return dataclasses.replace(self, landmarks=self.landmarks[rows], valid=self.valid[rows],
                                   confidence=self.confidence[rows], timestamps=self.timestamps[rows],
                                   occluded=None if self.occluded is None else self.occluded[rows])

    def to_ibug68(self) -> "FaceTrack":
        """The same track with the 68 iBUG points (see ``backend.tracking.ibug68``)."""
        if self.scheme == "ibug68":
            return self
        from .ibug68 import MEDIAPIPE_TO_IBUG68, to_ibug68

        occluded = None if self.occluded is None else np.asarray(self.occluded)[:, list(MEDIAPIPE_TO_IBUG68)]
        return dataclasses.replace(self, landmarks=to_ibug68(self.landmarks), scheme="ibug68", occluded=occluded,
                                   info={**self.info, "converted_from": self.scheme})

    def eye_gaze(self) -> np.ndarray:
        """(T, 4) float32 eye gaze radians from the irises (see ``backend.tracking.gaze``)."""
        if self.scheme != "mediapipe478":
            raise ValueError("eye gaze needs the 478 MediaPipe landmarks (irises)")
        from .gaze import gaze_from_landmarks

        return gaze_from_landmarks(self.landmarks, self.valid)
