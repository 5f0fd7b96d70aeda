"""The optimisation solver: FaceTrack -> Take with no learned weights.

Per clip it fits ONE actor identity (shared by all frames: CPEM's identity
consistency) and per frame the 52 ARKit weights in [0, 1] and the rigid head pose
by batched Gauss-Newton / projected Newton (``fit.py``), by minimising the robust 2D reprojection error of
the 478 landmarks (x, y; MediaPipe's z only refines the head pose, stage (d)) through a pinhole
camera (``camera.py``), plus an identity prior, L1 sparsity, CPEM's
expression-exclusive loss over ``EXCLUSIVE_PAIRS`` and temporal smoothness
of weights and pose between consecutive valid frames.

Stages: (a) rigid pose on stable landmarks with the neutral face, (b)
identity + pose + expression on up to ``identity_frames`` valid frames spread
over the clip, (b') with ``rest_frame`` set, the rest-face calibration on the
valid frames within :data:`REST_WINDOW` frames of it (the residual shape the
identity components miss, added to the actor's neutral; the Take header keeps
it as ``rest_offset``), (c) expression + pose on every valid frame with the
identity (and rest face) frozen, (d) on a MediaPipe track, the head pose of every
frame refit with the tracker's depth as well, the face of stage (c) held
(:meth:`~backend.estimators.fit.Fitter.fit_head_pose`: the weights and the fit
error are stage (c)'s).  Given an :class:`~backend.estimators.actor.ActorProfile`
(an earlier solve of the same actor) the identity and rest face come from it
and stage (b) is skipped.  Invalid frames are left out of every loss; their output values are
linearly interpolated from the nearest valid frames (held at the ends) for
display, and stay ``valid=False``.

Under a hand (the track's ``occluded``): covered landmarks get no weight, a part the tracker predicts
as one shape counts as covered whole once :data:`PART_SHARE` of one of its groups is
(:data:`WHOLE_PARTS`), and an eye a hand hides takes the seen eye's :data:`EYES_TOGETHER` units.

Confidence per frame: the tracker's (1 where it found the face) x the share
of the face a hand leaves visible x the trust in the fit (:func:`fit_confidence`
of the frame's median landmark fit error: a face the model cannot explain,
such as a profile MediaPipe got wrong or a mistracked frame, is not trusted).
A frame fitted far worse than the rest of its clip leans on the frames around
it: its weights are blended toward the values interpolated in time from the
well-fitted frames (:func:`_lean_on_trusted`, trust relative to the clip's
median fit error).  On synthetic clips with a 10-frame burst of 5 px tracking
noise the weight MAE on the burst falls from 0.09-0.11 to 0.03-0.06; with an
8 px burst in a clip tracked at 2.5 px from 0.15-0.16 to 0.05-0.07; clips
without a burst, noisy or not, and every number of the fidelity bench (real
clips, 1.0-2.4 mm, included) are unchanged.

The header says how the confidence was measured (``confidence``), keeps the
fit error's median / p95 / max (``fit_error_mm``) and the count of frames
below ``protocol.take.LOW_CONFIDENCE`` (``low_confidence_frames``; frames
without a face, confidence 0, count).

Eye gaze is read off the fitted eyeLook* weights (the units turn the iris):
yaw = 30 degrees x (lookOut - lookIn) for the left eye and x (lookIn - lookOut)
for the right (yaw > 0 toward the subject's left), pitch = 25 degrees x
(lookUp - lookDown).
"""
from __future__ import annotations

import dataclasses
import threading
from typing import Any, Callable, Optional

import numpy as np
import torch

from backend.facemodel import load_face_model
from backend.facemodel.canonical import LEFT_EYE, LEFT_IRIS, RIGHT_EYE, RIGHT_IRIS
from backend.facemodel.regions import (LID_LOWER_RING2_LEFT, LID_LOWER_RING2_RIGHT, LID_UPPER_RING2_LEFT,
                                       LID_UPPER_RING2_RIGHT, LIPS)
from backend.facemodel.units import GAZE_PITCH_PER_UNIT, GAZE_YAW_PER_UNIT
from backend.protocol.arkit import INDEX
from backend.protocol.errors import FaceKeyError
from backend.protocol.messages import Progress
from backend.protocol.rotations import matrix_to_quat
from backend.protocol.take import LOW_CONFIDENCE, Take
from backend.tracking.track import FaceTrack

from .actor import ActorProfile
from .camera import DEFAULT_FOV_DEG, default_focal
from .fit import Fitter, FitTerms, axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["SolverSettings", "SolverEstimator", "gaze_from_weights", "REST_WINDOW", "PHOTO_SPARSITY", "rest_frames",
           "fit_confidence", "FIT_TRUSTED_MM", "FIT_FAILED_MM"]

#: Frames on each side of ``rest_frame`` that also calibrate the rest face (the median over them).
REST_WINDOW = 2
#: Multiplier of the L1 sparsity when the track has one valid frame (a photo).  With one frame the
#: actor's identity and the expression are fitted to the same landmarks, and misfit the identity
#: cannot take leaks into many units at once.  Measured on the fidelity bench's single synthetic
#: photos (20 photos of 4 actors, two seeds): weight MAE alone 0.095 / 0.096 at 1x, 0.072 / 0.073
#: at 3x; with the actor's profile 0.031 -> 0.028.  On the real photos the weight summed over the
#: 52 units drops by 10-20 % (e.g. 11.6 -> 9.6 on the open smile); no real check changes.  5x
#: scores 0.068 on the synthetic photos but drops the pouting TV still's mouthPucker 0.40 -> 0.04.
PHOTO_SPARSITY = 3.0

#: A frame's fit error (median landmark distance, mm at the face) up to which its fit is trusted whole,
#: and the error at which it is not trusted at all (confidence falls linearly in between).  Measured:
#: real clips 1.0-2.4 mm on every frame (95th percentile 1.5-2.0, the extreme-expressions clip
#: included), real photos 1.2-2.0 mm (2.35 and 2.53 on a small and a back-lit face); the two
#: AFLW2000-3D profiles the fit gets wrong (NME 6.5 and 10.2 %, 10 and 30 degrees off the pose)
#: 3.0 and 3.4 mm; synthetic clips at MediaPipe's noise level about 1 mm.
FIT_TRUSTED_MM = 2.0
FIT_FAILED_MM = 4.0
#: When frames lean on their neighbours (:func:`_lean_on_trusted`), frames up to this many times the
#: clip's median fit error count as well fitted, where that is above :data:`FIT_TRUSTED_MM` (a clip
#: whose median is above 1.6 mm).  Synthetic clips tracked at 2.5 px (fit error ~2.2 mm on every frame):
#: with 1.0, 14 % of the weight values moved (up to 0.04; MAE unchanged), with 1.25 none by 0.002; an
#: 8 px burst in them: weight MAE on the burst 0.15-0.16 -> 0.05-0.07 with either.
LEAN_MEDIAN_FACTOR = 1.25


@dataclasses.dataclass
class SolverSettings:
    """User-facing solver settings (saved in every Take header).

    Attributes:
        smoothing: temporal smoothness strength of weights and pose, 0 = off
            (1 = default; 2 = twice as strong).
        exclusive: apply CPEM's expression-exclusive loss (contradictory
            pairs such as blink/wide may not both fire).
        sparsity: strength of the L1 sparsity on weights (1 = default; a one-frame track, a
            photo, gets :data:`PHOTO_SPARSITY` times this).
        device: "cpu" or "cuda" (or "cuda:N").
        identity_prior: strength of the actor-identity prior, a multiplier of
            ``FitTerms.identity_prior`` (1 = default).  It does not weaken as
            the clip gets longer: the tracker's errors on one actor repeat
            from frame to frame, so more frames are not more independent
            evidence about the face.
        fov_deg: diagonal field of view assumed when the track has no focal length.
        iterations: outer Gauss-Newton iterations (pose step + weight solve)
            of the per-frame stage (c) and of each half of stage (b).
        identity_frames: frames used to fit the identity in stage (b).
        rest_frame: a footage frame (0-based) where the actor's face is at
            rest (neutral, eyes open, looking ahead), or None.  The frames
            within ``REST_WINDOW`` of it calibrate the actor's rest face
            (stage b'), so expressions are measured from the actor's own
            neutral; it must be a frame with a tracked face, on a 478-point
            track.  Like a neutral calibration pose on a capture app: a wrong
            choice (a smiling frame) removes that expression from every frame,
            and the gaze on the rest frame becomes "looking ahead".
    """

    smoothing: float = 1.0
    exclusive: bool = True
    sparsity: float = 1.0
    device: str = "cpu"
    identity_prior: float = 1.0
    fov_deg: float = DEFAULT_FOV_DEG
    iterations: int = 3
    identity_frames: int = 120
    rest_frame: Optional[int] = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "SolverSettings":
        """Build from a dict; unknown keys or bad values raise ``bad_argument``."""
        d = dict(d or {})
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise FaceKeyError("bad_argument", f"unknown solver setting(s): {', '.join(unknown)}",
                               f"Valid settings: {', '.join(names)}.")
        s = cls(**d)
        s.validate()
        return s

    def validate(self) -> "SolverSettings":
        def bad(field, why):
            raise FaceKeyError("bad_argument", f"solver setting {field}={getattr(self, field)!r} {why}",
                               "Fix the value in the capture settings.")

        for field in ("smoothing", "sparsity", "identity_prior"):
            v = getattr(self, field)
            if not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                bad(field, "must be a number >= 0")
        if not isinstance(self.exclusive, bool):
            bad("exclusive", "must be true or false")
        if not isinstance(self.fov_deg, (int, float)) or not 5.0 <= self.fov_deg <= 170.0:
            bad("fov_deg", "must lie in [5, 170] degrees")
        for field in ("iterations", "identity_frames"):
            v = getattr(self, field)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                bad(field, "must be a positive integer")
        if not isinstance(self.device, str) or not (self.device == "cpu" or self.device.startswith("cuda")):
            bad("device", "must be 'cpu' or 'cuda'")
        if self.rest_frame is not None and (not isinstance(self.rest_frame, int) or isinstance(self.rest_frame, bool)
                                            or self.rest_frame < 0):
            bad("rest_frame", "must be a frame number >= 0, or None")
        return self


def gaze_from_weights(weights: np.ndarray) -> np.ndarray:
    """(T, 52) weights -> (T, 4) float32 radians (L yaw, L pitch, R yaw, R pitch), Take conventions."""
    w = weights

    def u(n):
        return w[:, INDEX[n]]

    return np.stack([
        GAZE_YAW_PER_UNIT * (u("eyeLookOutLeft") - u("eyeLookInLeft")),
        GAZE_PITCH_PER_UNIT * (u("eyeLookUpLeft") - u("eyeLookDownLeft")),
        GAZE_YAW_PER_UNIT * (u("eyeLookInRight") - u("eyeLookOutRight")),
        GAZE_PITCH_PER_UNIT * (u("eyeLookUpRight") - u("eyeLookDownRight")),
    ], 1).astype(np.float32)


def _model_observations(lm: np.ndarray, scheme: str, num_vertices: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Track landmarks -> (obs (T, N, 2) float32 pixels per model vertex, observed vertex ids or None = all).

    A 478-point MediaPipe track is the model's own topology; a 68-point iBUG
    track fills the vertices of ``MEDIAPIPE_TO_IBUG68`` (NaN elsewhere, unused).
    """
    from backend.tracking.ibug68 import MEDIAPIPE_TO_IBUG68

    if lm.ndim == 3 and lm.shape[2] >= 2 and scheme == "ibug68" and lm.shape[1] == len(MEDIAPIPE_TO_IBUG68):
        ids = np.asarray(MEDIAPIPE_TO_IBUG68, np.int64)
        obs = np.full((lm.shape[0], num_vertices, 2), np.nan, np.float32)
        obs[:, ids] = lm[..., :2]
        return obs, ids
    if lm.ndim == 3 and lm.shape[2] >= 2 and lm.shape[1] == num_vertices and scheme != "ibug68":
        return lm[..., :2], None
    raise FaceKeyError("bad_argument", f"the solver needs (T, {num_vertices}, 3) MediaPipe landmarks or (T, 68, 3) "
                       f"iBUG landmarks (scheme 'ibug68'), got {lm.shape} ({scheme})",
                       "Track the footage with the MediaPipe tracker (refine_landmarks, 478 points) "
                       "or a 68-point iBUG tracker.")


def rest_frames(rest_frame: int, valid: np.ndarray, scheme: str) -> np.ndarray:
    """Indices into the valid frames of ``valid`` (T,) bool that calibrate the rest face: the valid
    frames within :data:`REST_WINDOW` of footage frame ``rest_frame``, which must itself be valid.

    Raises:
        FaceKeyError: ``bad_argument`` when the frame is outside the clip, has no tracked face,
            or the track is not the dense 478-point scheme (the rest face is a per-vertex correction).
    """
    t = len(valid)
    if scheme == "ibug68":
        raise FaceKeyError("bad_argument", "rest_frame needs the 478 MediaPipe landmarks; this track has iBUG 68",
                           "Capture with the MediaPipe landmarks, or leave the rest frame unset.")
    if not 0 <= rest_frame < t:
        raise FaceKeyError("bad_argument", f"rest_frame {rest_frame} is outside the clip (frames 0..{t - 1})",
                           "Pick a frame of the footage where the face is at rest.")
    if not valid[rest_frame]:
        raise FaceKeyError("bad_argument", f"rest_frame {rest_frame} has no tracked face",
                           "Pick a frame where the face is visible and at rest.")
    lo, hi = max(0, rest_frame - REST_WINDOW), min(t, rest_frame + REST_WINDOW + 1)
    window = np.zeros(t, bool)
    window[lo:hi] = True
    return np.flatnonzero(window[valid])


def fit_confidence(error_mm: np.ndarray) -> np.ndarray:
    """(T,) fit errors (mm, :meth:`Fitter.frame_error_mm`; NaN where nothing was visible) -> (T,) float32
    trust in [0, 1]: 1 up to :data:`FIT_TRUSTED_MM`, 0 from :data:`FIT_FAILED_MM`, linear between; 1 for NaN
    (no landmark to judge by: the visible share already says so)."""
    e = np.nan_to_num(np.asarray(error_mm, np.float64), nan=0.0)
    return np.clip((FIT_FAILED_MM - e) / (FIT_FAILED_MM - FIT_TRUSTED_MM), 0.0, 1.0).astype(np.float32)


def _interpolate_rows(values: np.ndarray, known: np.ndarray, at: np.ndarray) -> np.ndarray:
    """(T, D) ``values`` -> (T, D): every row linearly interpolated over ``at`` (T,) (frame index or
    seconds, increasing) from the rows where ``known`` (T,) bool, held at the ends."""
    ki = np.flatnonzero(known)
    return np.stack([np.interp(at, at[ki], values[ki, d]) for d in range(values.shape[1])], 1)


def _fill_invalid(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(T, D) with rows defined on ``valid`` -> linear interpolation over frame index, held at the ends."""
    return _interpolate_rows(values, valid, np.arange(len(valid)))


def _lean_on_trusted(weights: np.ndarray, error_mm: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(V, 52) weights of the valid frames, each blended by ``1 - trust`` toward the values interpolated
    over ``times`` (V,) seconds from the frames whose fit is trusted whole (trust 1); unchanged when
    no frame is.

    The trust here is relative to the clip: :func:`fit_confidence` of the fit errors ``error_mm`` (V,)
    scaled so that :data:`LEAN_MEDIAN_FACTOR` x the clip's median error counts as
    :data:`FIT_TRUSTED_MM` when that is larger (a uniformly noisy clip, a small face: its ordinary
    frames are its anchors, and only frames far worse than the rest lean on them).
    """
    err = np.asarray(error_mm, np.float64)
    reference = FIT_TRUSTED_MM
    if np.isfinite(err).any():
        reference = max(reference, LEAN_MEDIAN_FACTOR * float(np.nanmedian(err)))
    trust = fit_confidence(err * (FIT_TRUSTED_MM / reference))
    trusted = (trust >= 1.0) & np.isfinite(err)     # a frame with nothing visible is no anchor
    if trusted.all() or not trusted.any():
        return weights
    return trust[:, None] * weights + (1.0 - trust[:, None]) * _interpolate_rows(weights, trusted, times)


#: Face parts the tracker predicts as one shape, each a tuple of point groups: the lips; each eye, its lids
#: and iris, and the rings of skin just above and below its lids.  With a hand over part of one, the rest
#: is pulled toward the invented part (on a real clip with fingers over half the mouth, the visible half
#: alone read mouthFunnel 0.94), so the part counts as covered whole once :data:`PART_SHARE` of any one
#: group is.  The rings belong to the eye because eyeWide and eyeSquint move them: with only the lids
#: hidden, the rings alone read a wide-open eye (the Pexels clip, a hand over a squeezed-shut right eye
#: for 45 frames: eyeWideRight 1.0 there).  Groups, so that the lids alone still count as they did.
WHOLE_PARTS = (
    (LIPS,),
    (tuple(LEFT_EYE["upper"]) + tuple(LEFT_EYE["lower"]) + (LEFT_EYE["outer"], LEFT_EYE["inner"]) + LEFT_IRIS,
     LID_UPPER_RING2_LEFT + LID_LOWER_RING2_LEFT),
    (tuple(RIGHT_EYE["upper"]) + tuple(RIGHT_EYE["lower"]) + (RIGHT_EYE["outer"], RIGHT_EYE["inner"]) + RIGHT_IRIS,
     LID_UPPER_RING2_RIGHT + LID_LOWER_RING2_RIGHT),
)
#: Share of a part's group of points a hand must cover for the whole part to count as covered.
PART_SHARE = 0.2

#: Units a hidden eye takes from the eye that is seen, as (seen eye's unit stem, hidden eye's unit stem):
#: the eyes blink, squint, widen and look up or down together (on the Live Link Face recording in
#: realdata, blink, squint and look-down differ between the eyes by 0.000-0.002 on average, where leaving
#: the hidden eye at rest would be off by 0.13-0.18; it never widens or looks up), and turn sideways
#: together, so one eye's lookIn is the other's lookOut (an eye at rest beside one looking aside would
#: look cross-eyed on a character; the recording cannot tell, its lookOutRight never fires).
EYES_TOGETHER = (("eyeBlink", "eyeBlink"), ("eyeSquint", "eyeSquint"), ("eyeWide", "eyeWide"),
                 ("eyeLookUp", "eyeLookUp"), ("eyeLookDown", "eyeLookDown"), ("eyeLookIn", "eyeLookOut"),
                 ("eyeLookOut", "eyeLookIn"))


def _part_ids(part: tuple, seen: np.ndarray) -> list[list[int]]:
    """The groups of a :data:`WHOLE_PARTS` part restricted to the vertices ``seen`` (1, N) marks, empty ones dropped."""
    groups = [[i for i in group if i < seen.shape[1] and seen[0, i]] for group in part]
    return [g for g in groups if g]


def _eye_from_the_other(weights: np.ndarray, occluded: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """``weights`` (V, 52) with each eye a hand hides (every seen point of its :data:`WHOLE_PARTS` part
    covered in ``occluded`` (V, N) bool) given the other eye's :data:`EYES_TOGETHER` units on the frames
    where that one is not hidden; a copy.  An eye the track does not report is never hidden."""
    out = np.array(weights, copy=True)
    hidden = []
    for part in WHOLE_PARTS[1:]:
        ids = [i for g in _part_ids(part, seen) for i in g]
        hidden.append(occluded[:, ids].all(1) if ids else np.zeros(len(occluded), bool))
    left, right = hidden
    for seen_stem, hidden_stem in EYES_TOGETHER:
        out[right & ~left, INDEX[hidden_stem + "Right"]] = weights[right & ~left, INDEX[seen_stem + "Left"]]
        out[left & ~right, INDEX[hidden_stem + "Left"]] = weights[left & ~right, INDEX[seen_stem + "Right"]]
    return out


def _model_occlusion(track: FaceTrack, observed: Optional[np.ndarray], seen: np.ndarray) -> Optional[np.ndarray]:
    """The track's occlusion mask per model vertex, (T, N) bool (``observed`` columns filled; ``seen`` is
    :func:`_observed_mask`), or None; a part (:data:`WHOLE_PARTS`) with at least :data:`PART_SHARE` of
    the observed points of any one of its groups covered counts as covered whole."""
    if track.occluded is None:
        return None
    occ = np.array(track.occluded, bool)
    num_vertices = seen.shape[1]
    if observed is not None:
        out = np.zeros((occ.shape[0], num_vertices), bool)
        out[:, observed] = occ
        occ = out
    for part in WHOLE_PARTS:
        groups = _part_ids(part, seen)
        if groups:
            covered = np.any([occ[:, g].mean(1) >= PART_SHARE for g in groups], axis=0)
            occ[np.ix_(covered, [i for g in groups for i in g])] = True
    return occ


def _observed_mask(observed: Optional[np.ndarray], num_vertices: int) -> np.ndarray:
    """(1, N) bool: the model vertices the track observes."""
    mask = np.zeros((1, num_vertices), bool)
    mask[0, slice(None) if observed is None else observed] = True
    return mask


def _spread(n_valid: int, k: int) -> np.ndarray:
    """Up to ``k`` indices evenly spread over range(n_valid)."""
    if n_valid <= k:
        return np.arange(n_valid)
    return np.unique(np.linspace(0, n_valid - 1, k).round().astype(int))


class SolverEstimator:
    """Estimator "solver": landmark fitting of the built-in face model (no weights files)."""

    name = "solver"
    needs = ["landmarks"]
    weights: list[str] = []

    def __init__(self, device: str = "cpu"):
        self.device = device

    def estimate(self, track: FaceTrack, settings: SolverSettings | None = None,
                 progress: Optional[Callable[[Progress], Any]] = None,
                 cancel: Optional[threading.Event] = None, actor: Optional[ActorProfile] = None) -> Take:
        """Fit ``track`` and return a Take (see module docstring); with ``actor`` (an earlier solve of the
        same actor) its identity and rest face replace stage (b), and the header names it as ``actor_source``."""
        s = (settings or SolverSettings(device=self.device)).validate()
        model = load_face_model()
        lm = np.asarray(track.landmarks, np.float32)
        obs, observed = _model_observations(lm, track.scheme, model.num_vertices)
        seen = _observed_mask(observed, model.num_vertices)
        occluded = _model_occlusion(track, observed, seen)
        valid = np.asarray(track.valid, bool) & np.all(np.isfinite(lm[..., :2]), axis=(1, 2))
        if not valid.any():
            raise FaceKeyError("no_face", f"no valid face in any of the {len(valid)} frames of {track.source or 'the track'}",
                               "Check that the face is visible and well lit, or pick another face index.")
        device = s.device
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise FaceKeyError("bad_argument", "device 'cuda' was requested but no CUDA GPU is available",
                               "Set the solver device to 'cpu'.")
        w_img, h_img = track.image_size
        focal = float(track.focal_px) if track.focal_px else default_focal(w_img, h_img, s.fov_deg)
        n_valid = int(valid.sum())
        rest = None if s.rest_frame is None else rest_frames(s.rest_frame, valid, track.scheme)

        def check_cancel():
            if cancel is not None and cancel.is_set():
                raise FaceKeyError("cancelled", "the solve was cancelled", "Start the capture again to redo it.")

        def report(done, total, msg):
            if progress is not None:
                progress(Progress(done, total, msg))

        terms = FitTerms()
        terms.sparsity *= s.sparsity * (PHOTO_SPARSITY if n_valid == 1 else 1.0)
        terms.smoothing *= s.smoothing
        terms.pose_smoothing *= s.smoothing
        terms.exclusive = terms.exclusive if s.exclusive else 0.0
        terms.identity_prior *= s.identity_prior
        total = 2 + s.iterations
        # The fit is many small batched ops: on CPU, intra-op threads cost more in
        # synchronisation than they gain (4x slower with 2 threads on 2 busy cores).
        threads = torch.get_num_threads()
        if device == "cpu":
            torch.set_num_threads(1)
        try:
            depth = lm[..., 2] if observed is None and lm.shape[2] >= 3 else None    # MediaPipe's own depth
            weights, rotvec, trans, identity, rest_offset, error_mm = self._fit(
                model, obs, observed, occluded, valid, focal, (w_img, h_img), terms, device, check_cancel, report,
                s, n_valid, total, rest, actor, depth)
        finally:
            torch.set_num_threads(threads)
        trust = fit_confidence(error_mm)
        weights = _lean_on_trusted(weights, error_mm, np.asarray(track.timestamps, np.float64)[valid])
        if occluded is not None:
            weights = _eye_from_the_other(weights, occluded[valid], seen)
        t = len(valid)
        full_w = np.zeros((t, 52))
        full_w[valid] = weights
        full_r = np.zeros((t, 3))
        full_r[valid] = rotvec
        full_t = np.zeros((t, 3))
        full_t[valid] = trans
        if not valid.all():
            full_w, full_r, full_t = (_fill_invalid(a, valid) for a in (full_w, full_r, full_t))
        quats = matrix_to_quat(axis_angle_to_matrix(torch.as_tensor(full_r)).numpy())
        weights_out = np.clip(full_w, 0.0, 1.0).astype(np.float32)
        report(total, total, "done")
        conf = np.where(valid, np.clip(np.asarray(track.confidence, np.float32), 0, 1), 0).astype(np.float32)
        if occluded is not None:     # the share of the face a hand leaves visible
            conf *= 1.0 - occluded.mean(1, where=seen).astype(np.float32)
        conf[valid] *= trust
        header = {"estimator": self.name, "settings": s.to_dict(), "source": track.source,
                  "source_sha256": track.source_sha256, "image_size": [int(w_img), int(h_img)],
                  "focal_px": focal, "identity": [float(a) for a in identity],
                  "landmark_scheme": track.scheme,
                  "confidence": "face found x share of the face not under a hand x trust in the landmark fit"}
        seen_err = error_mm[np.isfinite(error_mm)]
        header["fit_error_mm"] = {k: round(float(np.percentile(seen_err, q)), 3) if len(seen_err) else None
                                  for k, q in (("median", 50), ("p95", 95), ("max", 100))}
        header["low_confidence_frames"] = int((conf < LOW_CONFIDENCE).sum())   # frames without a face count
        if rest_offset is not None:
            header["rest_offset"] = np.round(rest_offset, 6).tolist()
        if actor is not None:
            header["actor_source"] = actor.source
        if occluded is not None:
            header["occlusion"] = {"source": track.info.get("hands", "track"),
                                   "frames_with_face_covered": int(occluded[valid].any(1).sum())}
        take = Take(weights=weights_out, head_rotation=quats.astype(np.float32),
                    head_translation=full_t.astype(np.float32), eye_gaze=gaze_from_weights(weights_out),
                    valid=valid, confidence=conf, timestamps=np.asarray(track.timestamps, np.float64),
                    fps=float(track.fps), landmarks=lm.astype(np.float32), header=header)
        return take.validate()

    @staticmethod
    def _fit(model, obs, observed, occluded, valid, focal, size, terms, device, check_cancel, report, s, n_valid,
             total, rest, actor, depth):
        """Run the fit stages on ``obs`` (T, N, 2) pixels at model vertices ``observed`` (None = all), hidden
        where ``occluded`` (T, N) bool says (None = nothing hidden): the identity from ``actor`` or stage (b),
        then the rest-face stage on ``rest`` (indices into the valid frames) unless None, the expressions,
        and the head pose refit with the tracker's ``depth`` (T, N) pixels when given (None: a sparse
        scheme); return (weights (V, 52), rotvec (V, 3), trans (V, 3), identity (K,), rest offset (N, 3)
        metres or None, fit error (V,) mm of stage (c), :meth:`Fitter.frame_error_mm`) as numpy."""
        with torch.no_grad():
            fitter = Fitter(model, obs, valid, focal, size, terms, device, check_cancel, observed=observed,
                            occluded=occluded, obs_depth=depth)
            if actor is not None:
                fitter.use_actor(actor.identity, actor.rest_offset)
            report(0, total, "rigid head pose")
            fitter.fit_rigid()
            if actor is None:
                report(1, total, "actor identity")
                fitter.fit_identity(_spread(n_valid, s.identity_frames), s.iterations)
            if rest is not None:
                fitter.fit_rest(rest)
            rest_offset = None if fitter.rest_offset is None else fitter.rest_offset.cpu().numpy().astype(np.float64)
            report(2, total, "expressions")
            fitter.fit_expressions(s.iterations, on_iter=lambda it: report(3 + it, total, "expressions"))
            weights = fitter.weights.cpu().numpy().astype(np.float64)
            identity = fitter.full_identity()
            error_mm = fitter.frame_error_mm()
            fitter.fit_head_pose()
            rotvec = matrix_to_axis_angle(fitter.rmat).cpu().numpy().astype(np.float64)
            trans = fitter.trans.cpu().numpy().astype(np.float64)
        return weights, rotvec, trans, identity, rest_offset, error_mm
