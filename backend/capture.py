"""Capture: footage file -> frames -> face track -> estimator -> Take.

``capture`` returns the Take and writes nothing; callers (CLI, worker) write it
with ``write_take``.  Progress events cover the tracking stage (frames) and the
solving stage; their message names the stage.  ``cancel`` is checked between
frames by the stages and between the stages here.
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Callable, Optional

import numpy as np

from .protocol.errors import FaceKeyError
from .protocol.messages import Progress
from .protocol.take import Take

__all__ = ["CaptureSettings", "capture", "resolve_device", "rest_frame_at"]

ProgressFn = Optional[Callable[[Progress], None]]
DEVICES = ("auto", "cpu", "cuda")
LANDMARK_SOURCES = ("mediapipe", "fan")


@dataclasses.dataclass
class CaptureSettings:
    """What a capture does; saved in the Take header as ``capture_settings``.

    Attributes:
        face_index: which face to follow, numbered as ``track_footage``
            numbers them; None = the largest face.
        max_side: frames are downscaled so their longer side is at most this
            many pixels before tracking (None = full size).
        smoothing: temporal smoothness strength of the solver (0 = off).
        exclusive: forbid contradictory unit pairs (CPEM's exclusive loss).
        sparsity: solver sparsity weight; None = the solver's default.
        device: "auto" (cuda when available), "cpu" or "cuda".
        estimator: estimator name for ``get_estimator`` ("solver" by default).
        landmarks: landmark source, one of :data:`LANDMARK_SOURCES`: "mediapipe"
            (478 points, the default) or "fan" (face-alignment's iBUG-68 FAN on
            MediaPipe's face boxes; needs ``fan_weights``).
        fan_weights: FAN weights file for ``landmarks="fan"`` (None reads
            ``$FACEKEY_FAN_WEIGHTS``).
        rest_frame: footage frame (0-based) where the actor's face is at rest,
            to calibrate the actor's neutral on (the solver's ``rest_frame``);
            None = no calibration.
        rest_time: the same as a time in seconds from the footage's first
            frame (the frame shown nearest it is used), for callers that know
            times, not the footage's frames (the panel: a scene frame at the
            scene's rate); not together with ``rest_frame``.
        actor_take: a Take file of the same actor solved earlier (best with a
            rest frame): its identity and rest face are reused instead of
            solved again (:class:`~backend.estimators.actor.ActorProfile`);
            None = solve the actor from this footage.
        hands: look for hands over the face (MediaPipe Hands): the landmarks
            a hand covers get no weight and the units they carry are held
            (``backend.tracking.hands``, ``backend.estimators.fit.Fitter``);
            about 3x the tracking time, so off by default.
        fps: frame rate of an image sequence (None = 30); refused for a
            video, whose frames carry their own times.
    """

    face_index: Optional[int] = None
    max_side: Optional[int] = 720
    smoothing: float = 1.0
    exclusive: bool = True
    sparsity: Optional[float] = None
    device: str = "auto"
    estimator: str = "solver"
    landmarks: str = "mediapipe"
    fan_weights: Optional[str] = None
    rest_frame: Optional[int] = None
    actor_take: Optional[str] = None
    hands: bool = False
    fps: Optional[float] = None
    rest_time: Optional[float] = None

    def validate(self) -> "CaptureSettings":
        """Raise ``bad_argument`` naming the first invalid field."""
        if self.face_index is not None and (not _is_int(self.face_index) or self.face_index < 0):
            _bad("face_index", self.face_index, "a face number >= 0, or None for the largest face")
        if self.max_side is not None and (not _is_int(self.max_side) or self.max_side < 64):
            _bad("max_side", self.max_side, "a pixel size >= 64, or None for full resolution")
        if not _is_number(self.smoothing) or self.smoothing < 0:
            _bad("smoothing", self.smoothing, "a number >= 0 (0 = no smoothing)")
        for flag in ("exclusive", "hands"):
            if not isinstance(getattr(self, flag), bool):
                _bad(flag, getattr(self, flag), "true or false")
        if self.sparsity is not None and (not _is_number(self.sparsity) or self.sparsity < 0):
            _bad("sparsity", self.sparsity, "a number >= 0, or None for the solver default")
        if self.device not in DEVICES:
            _bad("device", self.device, " / ".join(DEVICES))
        if not isinstance(self.estimator, str) or not self.estimator:
            _bad("estimator", self.estimator, "an estimator name such as 'solver'")
        if self.landmarks not in LANDMARK_SOURCES:
            _bad("landmarks", self.landmarks, " / ".join(LANDMARK_SOURCES))
        if self.fan_weights is not None and not isinstance(self.fan_weights, str):
            _bad("fan_weights", self.fan_weights, "the path of a FAN weights file")
        if self.fan_weights is not None and self.landmarks != "fan":
            _bad("fan_weights", self.fan_weights, "FAN weights only with landmarks 'fan' (--landmarks fan); with "
                 f"landmarks '{self.landmarks}' they would not be used")
        if self.fps is not None and (not _is_number(self.fps) or not 0 < self.fps <= 1000):
            _bad("fps", self.fps, "the frame rate an image sequence was recorded at (e.g. 24), or None for 30")
        if self.rest_frame is not None and (not _is_int(self.rest_frame) or self.rest_frame < 0):
            _bad("rest_frame", self.rest_frame, "a footage frame number >= 0 (0 = the first frame), or None")
        if self.rest_time is not None and (not _is_number(self.rest_time) or self.rest_time < 0):
            _bad("rest_time", self.rest_time, "seconds >= 0 from the footage's first frame, or None")
        if self.rest_time is not None and self.rest_frame is not None:
            _bad("rest_time", self.rest_time, "either rest_frame or rest_time, not both")
        if self.actor_take is not None and (not isinstance(self.actor_take, str) or not self.actor_take):
            _bad("actor_take", self.actor_take, "the path of a take of the same actor, or None")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CaptureSettings":
        """Build from a JSON dict; unknown keys and invalid values raise ``bad_argument``."""
        if not isinstance(d, dict):
            raise FaceKeyError("bad_argument", f"Capture settings must be an object, got {type(d).__name__}.",
                               "Pass settings as a JSON object, e.g. {\"smoothing\": 1.0}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise FaceKeyError("bad_argument", f"Unknown capture setting(s): {', '.join(unknown)}.",
                               f"Known settings: {', '.join(sorted(known))}.")
        return cls(**d).validate()


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _bad(field: str, value, want: str) -> None:
    raise FaceKeyError("bad_argument", f"Capture setting {field}={value!r} is invalid.", f"Use {want}.")


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when torch sees a GPU, else "cpu"; "cuda" without a GPU raises ``bad_argument``."""
    import torch

    has_cuda = torch.cuda.is_available()
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if device == "cuda" and not has_cuda:
        raise FaceKeyError("bad_argument", "device 'cuda' was requested but torch sees no CUDA GPU.",
                           "Use --device cpu (or auto), or install a CUDA build of torch.")
    return device


def rest_frame_at(track, seconds: float) -> int:
    """The footage frame of ``track`` shown at ``seconds`` from its first frame (the nearest frame time);
    ``bad_argument`` past the end of the footage."""
    times = np.asarray(track.timestamps, np.float64)
    frame_s = float(np.median(np.diff(times))) if len(times) > 1 else 1.0 / track.fps
    if seconds > times[-1] + frame_s:
        raise FaceKeyError("bad_argument", f"the rest frame is {seconds:.2f} s into footage that lasts "
                           f"{times[-1] + frame_s:.2f} s", "Pick a frame of the footage where the face is at rest.")
    return int(np.argmin(np.abs(times - seconds)))


def _stage(progress: ProgressFn, stage: str) -> ProgressFn:
    """Wrap ``progress`` so every event's message names ``stage``."""
    if progress is None:
        return None

    def forward(p: Progress) -> None:
        msg = p.message if stage in p.message.lower() else (f"{stage}: {p.message}" if p.message else stage)
        progress(Progress(p.done, p.total, msg))

    return forward


def _check_cancel(cancel) -> None:
    if cancel is not None and cancel.is_set():
        raise FaceKeyError("cancelled", "Capture cancelled.", "Start the capture again when you are ready.")


def capture(footage_path: str | os.PathLike, settings: Optional[CaptureSettings] = None, *,
            progress: ProgressFn = None, cancel=None) -> Take:
    """Capture one clip (video, image sequence or photo) into a Take.

    Returns a Take with ``weights (T, 52)`` in [0, 1], head pose, gaze,
    validity and the header of the estimator plus ``capture_settings``.
    Raises FaceKeyError: file_missing / video_unreadable / video_empty (the
    footage), no_face (no face in any frame), cancelled, bad_argument.
    """
    from .estimators import ActorProfile, get_estimator
    from .estimators.solver import SolverSettings
    from .facemodel import load_face_model
    from .footage import open_footage
    from .tracking import track_footage

    settings = (settings or CaptureSettings()).validate()
    device = resolve_device(settings.device)
    estimator = get_estimator(settings.estimator, device=device)     # every setting checked before tracking
    if settings.landmarks == "fan":          # load (and check) the weights before any frame is tracked
        from .tracking.fan import FanLandmarker, fan_track
        landmarker = FanLandmarker(settings.fan_weights, device=device)
    actor = None if settings.actor_take is None else ActorProfile.read(settings.actor_take, load_face_model())
    fps = 30.0 if settings.fps is None else float(settings.fps)
    footage = open_footage(footage_path, max_side=settings.max_side, fps=fps)
    if settings.fps is not None and footage.info.kind == "video":
        raise FaceKeyError("bad_argument", f"fps={settings.fps} was given, but {os.path.basename(footage.info.path)} "
                           "is a video: its frames carry their own times.",
                           "Leave the frame rate unset for videos (it is for image sequences).")
    _check_cancel(cancel)
    track = track_footage(footage, face_index=settings.face_index, hands=settings.hands,
                          progress=_stage(progress, "tracking"), cancel=cancel)
    _check_cancel(cancel)
    if not track.valid.any():
        raise FaceKeyError("no_face", f"No face was found in any of the {track.num_frames} frame(s) of "
                           f"{os.path.basename(os.fspath(footage_path))}.",
                           "Use footage where the face is visible, lit and at least ~100 pixels tall.")
    if settings.landmarks == "fan":
        track = fan_track(open_footage(footage_path, max_side=settings.max_side, fps=fps), track, landmarker,
                          progress=_stage(progress, "FAN landmarks"), cancel=cancel)
        _check_cancel(cancel)
    solver_kwargs = {"smoothing": float(settings.smoothing), "exclusive": settings.exclusive, "device": device}
    if settings.sparsity is not None:
        solver_kwargs["sparsity"] = float(settings.sparsity)
    if settings.rest_frame is not None:
        solver_kwargs["rest_frame"] = int(settings.rest_frame)
    elif settings.rest_time is not None:
        solver_kwargs["rest_frame"] = rest_frame_at(track, float(settings.rest_time))
    take = estimator.estimate(track, SolverSettings(**solver_kwargs), progress=_stage(progress, "solving"),
                              cancel=cancel, actor=actor)
    _check_cancel(cancel)
    take.header["capture_settings"] = settings.to_dict()
    return take
