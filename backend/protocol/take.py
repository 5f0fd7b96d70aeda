"""Take: the one hand-off format between every stage and both processes.

A Take is a ``.npz`` file (no pickles) holding per-frame arrays and a JSON
header.  Written atomically (temp file + ``os.replace``), read with strict
validation: every problem is a :class:`FaceKeyError` naming the field.

Conventions (see DESIGN.md):

* ``T`` frames; ARKit-52 units in :data:`ARKIT_NAMES` order.
* Head frame: right-handed, ``x`` = subject's own left, ``y`` = up,
  ``z`` = out of the face (toward a camera the subject looks into).
  In Blender, for a character facing -Y with Z up: x->+X, y->+Z, z->-Y.
* ``head_rotation`` is the unit quaternion (w, x, y, z) rotating the rest head
  (looking into the camera) to the frame's head, in the head frame.
* ``head_translation`` is the head origin in camera space, metres
  (x right in the image, y up, z toward the viewer; the face is at z < 0).
* ``eye_gaze`` is (left yaw, left pitch, right yaw, right pitch) radians; yaw
  > 0 turns toward the subject's left, pitch > 0 looks up.

numpy + standard library only: copied into the add-on.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

import numpy as np

from .arkit import ARKIT_NAMES, NUM_UNITS
from .errors import FaceKeyError
from .npzfile import atomic_savez, load_npz

__all__ = ["Take", "LOW_CONFIDENCE", "unsure_runs", "format_spans", "SCHEMA", "SCHEMA_VERSION", "write_take", "read_take",
           "check_frame_indices", "select_frames"]

SCHEMA = "facekey.take"
SCHEMA_VERSION = 1


#: Confidence below which a frame of a take counts as unsure (a capture's ``low_confidence_frames``, the
#: add-on's unsure-frame jumps).
LOW_CONFIDENCE = 0.5


def unsure_runs(confidence: np.ndarray) -> list[tuple[int, int]]:
    """Runs of consecutive entries of ``confidence`` (T,) below :data:`LOW_CONFIDENCE`, as
    ``[(first index, last index)]`` in order."""
    edges = np.diff(np.r_[0, (np.asarray(confidence) < LOW_CONFIDENCE).astype(np.int8), 0])
    return [(int(a), int(b) - 1) for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))]


def format_spans(spans, limit: int = 6) -> str:
    """``[(first, last), ...]`` frames -> ``"3-7, 12, 14.2-17.8"`` (a one-frame span as one number, at most
    ``limit`` spans, then ``"and N more"``)."""
    spans = [(float(a), float(b)) for a, b in spans]
    text = ", ".join(f"{a:g}" if a == b else f"{a:g}-{b:g}" for a, b in spans[:limit])
    return text + (f" and {len(spans) - limit} more" if len(spans) > limit else "")


@dataclasses.dataclass
class Take:
    """Per-frame facial performance.

    Attributes:
        weights: (T, 52) float32 in [0, 1], ARKit order.
        head_rotation: (T, 4) float32 unit quaternions (w, x, y, z), head frame.
        head_translation: (T, 3) float32 metres, camera space.
        eye_gaze: (T, 4) float32 radians (L yaw, L pitch, R yaw, R pitch).
        valid: (T,) bool, False where no face was tracked (values there are
            held from neighbours for display only, never invented as data).
        confidence: (T,) float32 in [0, 1]; how the take measured it, when it
            did, is in ``header["confidence"]``; below :data:`LOW_CONFIDENCE`
            a frame counts as unsure.
        timestamps: (T,) float64 seconds from clip start, strictly increasing.
        fps: nominal frames per second of the source (> 0).
        landmarks: optional (T, L, 3) float32 tracked landmarks (x, y in
            pixels, z in pixels at the same scale), L = 478 or 68.
        dense_offsets: optional (T, V, 3) float32 metres per vertex.
        header: JSON-able dict: source, source_sha256, estimator, weights_id,
            settings, image_size, ... (schema fields are added on write).
    """

    weights: np.ndarray
    head_rotation: np.ndarray
    head_translation: np.ndarray
    eye_gaze: np.ndarray
    valid: np.ndarray
    confidence: np.ndarray
    timestamps: np.ndarray
    fps: float
    landmarks: Optional[np.ndarray] = None
    dense_offsets: Optional[np.ndarray] = None
    header: dict = dataclasses.field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.weights.shape[0])

    @classmethod
    def empty(cls, num_frames: int, fps: float, timestamps: Optional[np.ndarray] = None, **header: Any) -> "Take":
        """A Take of ``num_frames`` rest frames (all valid), for builders and tests."""
        t = num_frames
        ts = np.arange(t, dtype=np.float64) / fps if timestamps is None else np.asarray(timestamps, np.float64)
        rot = np.zeros((t, 4), np.float32)
        rot[:, 0] = 1.0
        return cls(
            weights=np.zeros((t, NUM_UNITS), np.float32), head_rotation=rot,
            head_translation=np.zeros((t, 3), np.float32), eye_gaze=np.zeros((t, 4), np.float32),
            valid=np.ones(t, bool), confidence=np.ones(t, np.float32), timestamps=ts,
            fps=float(fps), header=dict(header),
        )

    def validate(self) -> "Take":
        """Check shapes, dtypes, ranges and NaNs; raise ``take_invalid`` naming the field."""
        t = _check_array("weights", self.weights, (None, NUM_UNITS), np.floating)
        _check_array("head_rotation", self.head_rotation, (t, 4), np.floating)
        _check_array("head_translation", self.head_translation, (t, 3), np.floating)
        _check_array("eye_gaze", self.eye_gaze, (t, 4), np.floating)
        _check_array("valid", self.valid, (t,), np.bool_)
        _check_array("confidence", self.confidence, (t,), np.floating)
        _check_array("timestamps", self.timestamps, (t,), np.floating)
        if t == 0:
            _bad("weights", "has zero frames")
        if self.weights.min() < 0.0 or self.weights.max() > 1.0:
            _bad("weights", f"values must lie in [0, 1], found [{self.weights.min():.4g}, {self.weights.max():.4g}]")
        if self.confidence.min() < 0.0 or self.confidence.max() > 1.0:
            _bad("confidence", "values must lie in [0, 1]")
        norms = np.linalg.norm(self.head_rotation, axis=1)
        if np.abs(norms - 1.0).max() > 1e-3:
            _bad("head_rotation", "rows must be unit quaternions (w, x, y, z)")
        if t > 1 and not np.all(np.diff(self.timestamps) > 0):
            _bad("timestamps", "must be strictly increasing")
        if not (np.isfinite(self.fps) and self.fps > 0):
            _bad("fps", f"must be a positive number, got {self.fps!r}")
        if self.landmarks is not None:
            _check_array("landmarks", self.landmarks, (t, None, 3), np.floating, allow_nan=True)
        if self.dense_offsets is not None:
            _check_array("dense_offsets", self.dense_offsets, (t, None, 3), np.floating)
        if not isinstance(self.header, dict):
            _bad("header", "must be a dict")
        return self

    def unit_names(self) -> tuple[str, ...]:
        return ARKIT_NAMES


def check_frame_indices(frames, num_frames: int) -> list[int]:
    """Validate take frame indices (a request's ``frames``): a non-empty list of ints, strictly increasing,
    each in [0, ``num_frames``); return them as a list.

    Raises:
        FaceKeyError: ``bad_argument`` naming the offending value, with the valid range as hint.
    """
    hint = f"Pass take frame indices from 0 to {num_frames - 1}, in increasing order."
    if not isinstance(frames, (list, tuple)) or not frames:
        raise FaceKeyError("bad_argument", f"frames {frames!r} is not a non-empty list of frame indices.", hint)
    for f in frames:
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)):
            raise FaceKeyError("bad_argument", f"Frame {f!r} is not an integer.", hint)
        if not 0 <= f < num_frames:
            raise FaceKeyError("bad_argument", f"Frame {f} is outside the take (frames 0..{num_frames - 1}).", hint)
    out = [int(f) for f in frames]
    if any(b <= a for a, b in zip(out, out[1:])):
        raise FaceKeyError("bad_argument", f"frames {out} are not strictly increasing.", hint)
    return out


def select_frames(take: Take, frames) -> Take:
    """The take restricted to ``frames`` (validated by :func:`check_frame_indices`), e.g. one frame to preview.

    Every per-frame array (weights (F, 52), head pose, gaze, valid, confidence, timestamps (F,) seconds,
    optional landmarks / dense offsets) keeps only those rows; fps and header are kept, and
    ``header["frames"]`` records the original indices.
    """
    rows = check_frame_indices(frames, take.num_frames)
    picked = {k: getattr(take, k)[rows] for k in (*_ARRAYS, *_OPTIONAL) if getattr(take, k) is not None}
    return dataclasses.replace(take, **picked, header={**take.header, "frames": rows})


def _bad(field: str, what: str) -> None:
    raise FaceKeyError("take_invalid", f"Take field '{field}' {what}.",
                       "Re-create the take with `facekey capture` or import it again; do not edit .npz files by hand.")


def _check_array(field, a, shape, kind, allow_nan=False) -> int:
    if not isinstance(a, np.ndarray):
        _bad(field, f"must be a numpy array, got {type(a).__name__}")
    if not np.issubdtype(a.dtype, kind):
        _bad(field, f"has dtype {a.dtype}, expected {np.dtype(kind).name if kind is not np.floating else 'float'}")
    if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
        want = "(" + ", ".join("T" if i == 0 and s is None else ("*" if s is None else str(s)) for i, s in enumerate(shape)) + ")"
        _bad(field, f"has shape {a.shape}, expected {want}")
    if kind is np.floating and not allow_nan and not np.all(np.isfinite(a)):
        _bad(field, "contains NaN or infinite values")
    return a.shape[0]


_ARRAYS = {
    "weights": np.float32, "head_rotation": np.float32, "head_translation": np.float32,
    "eye_gaze": np.float32, "valid": np.bool_, "confidence": np.float32, "timestamps": np.float64,
}
_OPTIONAL = {"landmarks": np.float32, "dense_offsets": np.float32}


def write_take(path: str | os.PathLike, take: Take) -> str:
    """Validate and write ``take`` to ``path`` atomically; return the path as str."""
    take.validate()
    path = os.fspath(path)
    header = dict(take.header)
    header.update(schema=SCHEMA, schema_version=SCHEMA_VERSION, fps=float(take.fps),
                  num_frames=take.num_frames, unit_names=list(ARKIT_NAMES))
    arrays = {k: np.ascontiguousarray(getattr(take, k), dtype=dt) for k, dt in _ARRAYS.items()}
    for k, dt in _OPTIONAL.items():
        if getattr(take, k) is not None:
            arrays[k] = np.ascontiguousarray(getattr(take, k), dtype=dt)
    return atomic_savez(path, arrays, header)


def read_take(path: str | os.PathLike) -> Take:
    """Read and strictly validate a Take file; raise ``FaceKeyError`` on any problem."""
    arrays, header = load_npz(path, "Take", SCHEMA, SCHEMA_VERSION,
                              "re-create the take with `facekey capture VIDEO -o take.npz` or import it again")
    if header.get("unit_names") != list(ARKIT_NAMES):
        _bad("header.unit_names", "does not list the 52 ARKit units in ARKit order")
    for k in _ARRAYS:
        if k not in arrays:
            _bad(k, "is missing")
    fps = header.get("fps")
    if not isinstance(fps, (int, float)):
        _bad("fps", "is missing from the header")
    take = Take(**{k: arrays[k] for k in _ARRAYS}, fps=float(fps),
                landmarks=arrays.get("landmarks"), dense_offsets=arrays.get("dense_offsets"), header=header)
    return take.validate()
