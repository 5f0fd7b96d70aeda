"""Eye gaze from MediaPipe's iris landmarks.

MediaPipe 478-point indices used (sides are the *subject's own*; the
subject's left eye appears on the image's right in an unmirrored shot):

=========================  =================  ================
                           subject's right    subject's left
=========================  =================  ================
iris centre (+ 4 rim pts)  468 (469-472)      473 (474-477)
outer / inner eye corner   33 / 133           263 / 362
upper / lower lid          159 / 145          386 / 374
=========================  =================  ================

Model.  For each eye, the eye's horizontal axis ``h`` runs through the two
corners (in 3D pixel units: MediaPipe's z has the scale of x) and points
toward the subject's left; the vertical axis ``v`` is the face's up direction
(chin 152 -> forehead 10) made perpendicular to ``h``.  The offset of the iris
centre from the corner midpoint, divided by the corner-to-corner width ``w``,
gives ``u_h`` and ``u_v``.  An eyeball of radius r turned by angle a moves the
iris centre by r*sin(a); with r ~ 12 mm and an eye (palpebral fissure) width
~ 30 mm:

    yaw   = asin(clip(u_h * 30/12, -1, 1))                  (> 0: toward the subject's left)
    pitch = asin(clip((u_v - REST_OFFSET_V) * 30/12, -1, 1))  (> 0: looking up)

So a normalised offset of 0.1 is ~14 degrees and 0.2 is 30 degrees.  This is
the eye-in-head direction (head rotation is excluded because the axes move
with the face).  At rest the iris centre sits level with the corner midpoint
horizontally but above it vertically (the canthi lie below the iris centre):
over 73 faces of the shared test photos the median of ``u_v`` was +0.05 and
of ``u_h`` (temporal side positive) within +-0.02, so ``REST_OFFSET_V`` =
0.05 is taken off before the angle.  Individual eyes still differ by a few
degrees; estimators may subtract a per-clip neutral.

Closed eyes: when the lid gap is below ``CLOSED_OPENNESS`` of the eye width
the iris landmark is a guess, so that eye keeps its last open value (0 before
the first open frame).  Invalid frames (NaN landmarks) give 0.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["gaze_from_landmarks", "eye_openness", "EYE_WIDTH_MM", "EYEBALL_RADIUS_MM", "CLOSED_OPENNESS",
           "REST_OFFSET_V",
           "RIGHT_EYE", "LEFT_EYE"]

#: Typical palpebral fissure width and eyeball radius (adult, mm).
EYE_WIDTH_MM = 30.0
EYEBALL_RADIUS_MM = 12.0
#: Rest height of the iris centre above the eye-corner midpoint / eye width.
REST_OFFSET_V = 0.05
#: Lid gap / eye width below which an eye counts as closed.
CLOSED_OPENNESS = 0.1

#: (iris centre, outer corner, inner corner, upper lid, lower lid) per eye.
RIGHT_EYE = (468, 33, 133, 159, 145)   # subject's right eye (image left)
LEFT_EYE = (473, 263, 362, 386, 374)   # subject's left eye (image right)
_FOREHEAD, _CHIN = 10, 152


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return v / n


def _check(landmarks: np.ndarray) -> np.ndarray:
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim == 2:
        lm = lm[None]
    if lm.ndim != 3 or lm.shape[1] < 478 or lm.shape[2] < 2:
        raise ValueError(f"landmarks must be (T, 478, 3) MediaPipe points with iris, got {np.shape(landmarks)}")
    if lm.shape[2] == 2:
        lm = np.concatenate([lm, np.zeros(lm.shape[:2] + (1,))], axis=2)
    return lm[:, :, :3]


def eye_openness(landmarks: np.ndarray) -> np.ndarray:
    """(T, 2) lid gap / eye width for (subject's left, subject's right) eye; NaN where invalid."""
    lm = _check(landmarks)
    out = np.empty((lm.shape[0], 2))
    for k, (_, outer, inner, upper, lower) in enumerate((LEFT_EYE, RIGHT_EYE)):
        width = np.linalg.norm(lm[:, outer] - lm[:, inner], axis=-1)
        gap = np.linalg.norm(lm[:, upper] - lm[:, lower], axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, k] = gap / width
    return out


def _eye_angles(lm: np.ndarray, eye: tuple[int, ...], right_eye: bool) -> tuple[np.ndarray, np.ndarray]:
    iris, outer, inner, _, _ = eye
    p_out, p_in = lm[:, outer], lm[:, inner]
    # h points toward the subject's left: outer->inner for the right eye, inner->outer for the left.
    h_vec = (p_in - p_out) if right_eye else (p_out - p_in)
    width = np.linalg.norm(h_vec, axis=-1)
    h = _unit(h_vec)
    up = lm[:, _FOREHEAD] - lm[:, _CHIN]
    v = _unit(up - np.sum(up * h, axis=-1, keepdims=True) * h)
    d = lm[:, iris] - 0.5 * (p_out + p_in)
    with np.errstate(invalid="ignore", divide="ignore"):
        u_h = np.sum(d * h, axis=-1) / width
        u_v = np.sum(d * v, axis=-1) / width
    k = EYE_WIDTH_MM / EYEBALL_RADIUS_MM
    yaw = np.arcsin(np.clip(u_h * k, -1.0, 1.0))
    pitch = np.arcsin(np.clip((u_v - REST_OFFSET_V) * k, -1.0, 1.0))
    return yaw, pitch


def gaze_from_landmarks(landmarks: np.ndarray, valid: Optional[np.ndarray] = None,
                        hold_closed: bool = True) -> np.ndarray:
    """Eye-in-head gaze angles from MediaPipe 478 landmarks.

    Args:
        landmarks: (T, 478, 3) (or (478, 3)) pixel landmarks, x right, y
            down, z in x's scale; NaN rows on invalid frames.
        valid: optional (T,) bool; frames marked False give 0.
        hold_closed: keep an eye's last open value while it is closed.

    Returns:
        (T, 4) float32 radians: (left yaw, left pitch, right yaw, right
        pitch), left/right = subject's own eyes, yaw > 0 toward the
        subject's left, pitch > 0 up (the Take's ``eye_gaze`` convention).
        0 where the landmarks are invalid or not finite.
    """
    lm = _check(landmarks)
    t = lm.shape[0]
    out = np.zeros((t, 4), np.float64)
    ok = np.isfinite(lm[:, list(LEFT_EYE + RIGHT_EYE + (_FOREHEAD, _CHIN))]).all(axis=(1, 2))
    if valid is not None:
        v = np.asarray(valid, bool).reshape(-1)
        if v.shape[0] != t:
            raise ValueError(f"valid has {v.shape[0]} frames, landmarks {t}")
        ok &= v
    openness = eye_openness(lm)
    for col, eye, k in ((0, LEFT_EYE, 0), (2, RIGHT_EYE, 1)):  # k: column in eye_openness
        yaw, pitch = _eye_angles(lm, eye, right_eye=(col == 2))
        good = ok & np.isfinite(yaw) & np.isfinite(pitch)
        out[good, col] = yaw[good]
        out[good, col + 1] = pitch[good]
        if hold_closed:
            closed = good & ~(openness[:, k] >= CLOSED_OPENNESS)
            last = np.zeros(2)
            for i in range(t):
                if not ok[i]:
                    last = np.zeros(2)  # do not carry values across a gap in tracking
                    continue
                if closed[i]:
                    out[i, col:col + 2] = last
                elif good[i]:
                    last = out[i, col:col + 2].copy()
    return out.astype(np.float32)
