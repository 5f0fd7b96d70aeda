"""Face tracking: MediaPipe FaceMesh landmarks (478 points with irises) per frame.

* :func:`track_footage` / :func:`track_steps` (``tracker``): footage in,
  :class:`FaceTrack` out, one face per frame, invalid frames left empty.
* :func:`gaze_from_landmarks` (``gaze``): (T, 4) eye gaze from the irises.
* :data:`MEDIAPIPE_TO_IBUG68` / :func:`to_ibug68` (``ibug68``): the 68-point
  iBUG subset.

MediaPipe is imported only when tracking runs, so the light parts (FaceTrack,
gaze, the iBUG map) import quickly.
"""
from .gaze import gaze_from_landmarks  # noqa: F401
from .ibug68 import MEDIAPIPE_TO_IBUG68, to_ibug68  # noqa: F401
from .track import FaceTrack  # noqa: F401
from .tracker import TrackSettings, track_footage, track_steps  # noqa: F401

__all__ = ["FaceTrack", "TrackSettings", "track_footage", "track_steps", "gaze_from_landmarks",
           "MEDIAPIPE_TO_IBUG68", "to_ibug68"]
