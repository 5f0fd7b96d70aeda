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

    @property
    def num_frames(self) -> int:
        return int(self.landmarks.shape[0])
