"""Synthetic ground truth: random actors performing sparse ARKit sequences.

A clip is the built-in face model with a random identity (standard normal
coefficients), sparse smooth expression events, a smoothly moving head,
projected through a pinhole camera (``backend.estimators.camera``) to 478
MediaPipe-style landmarks with Gaussian pixel noise.

Noise level: MediaPipe FaceMesh jitters by about 1-1.5 px per landmark at
640x480 for a face ~200 px wide (frame-to-frame spread on a still face);
the default ``noise_px = 1.2`` applies i.i.d. Gaussian noise of that standard
deviation to x and y (and z).

Expression events respect ``EXCLUSIVE_PAIRS`` (a unit never overlaps in time
with its exclusive partner), ``mouthClose`` only fires inside a ``jawOpen``
and never exceeds it, about half of the Left/Right events are mirrored
(symmetric expressions) and the rest are one-sided.  ``tongueOut`` is left
out by default: the tongue is invisible to landmarks (see
``backend.facemodel.units``).

A hand over the mouth (``hand_frames``): on those frames the lower face on
the subject's right and centre (below the nose base, x < 12 mm, lips and
chin) is hidden, and the tracker invents it the way MediaPipe does under a
hand: those landmarks are the face's with an invented mouth (a 0.8 pucker,
a 0.5 funnel, the jaw closed) instead of the truth.  ``track.occluded``
marks them, as ``backend.tracking.hands`` would; the truth is unchanged.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from backend.estimators.camera import FACE_WIDTH_M, default_focal, project
from backend.facemodel import load_face_model
from backend.facemodel.identity import is_detail
from backend.protocol.arkit import ARKIT_NAMES, EXCLUSIVE_PAIRS, INDEX, MIRROR
from backend.protocol.rotations import quat_to_matrix, ypr_to_quat
from backend.tracking.track import FaceTrack

__all__ = ["SyntheticConfig", "make_clip", "INVENTED_MOUTH"]


@dataclasses.dataclass
class SyntheticConfig:
    """Parameters of one synthetic clip (angles in degrees, sizes in pixels)."""

    num_frames: int = 90
    fps: float = 30.0
    image_size: tuple[int, int] = (640, 480)
    face_px: float = 200.0
    noise_px: float = 1.2
    max_yaw_deg: float = 30.0
    max_pitch_deg: float = 12.0
    max_roll_deg: float = 8.0
    events_per_second: float = 6.0
    include_tongue: bool = False
    invalid_frames: tuple[int, ...] = ()
    identity_scale: float = 1.0     # std of the actor's anatomical identity components
    detail_scale: float = 0.0       # std of its detail components (shape the solver does not fit)
    seed: int = 0
    units: tuple[str, ...] = ()     # ARKit names the events draw from (empty = every unit)
    rest_frames: int = 0            # the first frames hold the actor's neutral face (every weight 0)
    actor_seed: Optional[int] = None  # seed of the actor's face alone (None = from ``seed``): one actor, many takes
    hand_frames: tuple[int, ...] = ()  # (start, stop): a hand over the mouth on frames start..stop-1


def _events(cfg: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """(T, 52) sparse smooth weights in [0, 1]."""
    t = cfg.num_frames
    w = np.zeros((t, len(ARKIT_NAMES)))
    busy = np.zeros((t, len(ARKIT_NAMES)), bool)
    partners: dict[int, set[int]] = {}
    for a, b in EXCLUSIVE_PAIRS:
        partners.setdefault(a, set()).add(b)
        partners.setdefault(b, set()).add(a)
    units = [i for i, n in enumerate(ARKIT_NAMES) if n != "mouthClose" and (cfg.include_tongue or n != "tongueOut")
             and (not cfg.units or n in cfg.units)]
    n_events = max(1, int(round(cfg.events_per_second * t / cfg.fps)))
    for _ in range(n_events):
        k = int(rng.choice(units))
        dur = int(rng.integers(6, max(7, min(40, t))))
        start = int(rng.integers(-dur // 3, t - dur // 2))
        lo, hi = max(start, 0), min(start + dur, t)
        group = [k]
        if MIRROR[k] != k and rng.random() < 0.5:
            group.append(MIRROR[k])
        if any(busy[lo:hi, p].any() for g in group for p in partners.get(g, ())):
            continue
        phase = (np.arange(lo, hi) - start) / dur
        env = np.sin(np.pi * phase) ** 2
        peak = rng.uniform(0.3, 1.0)
        for g in group:
            w[lo:hi, g] = np.maximum(w[lo:hi, g], peak * env * (1.0 if g == k else rng.uniform(0.7, 1.0)))
            busy[lo:hi, g] |= env > 0.02
        if ARKIT_NAMES[k] == "jawOpen" and rng.random() < 0.5:
            w[lo:hi, INDEX["mouthClose"]] = np.maximum(w[lo:hi, INDEX["mouthClose"]],
                                                      rng.uniform(0.3, 0.8) * w[lo:hi, k])
    return np.clip(w, 0.0, 1.0)


def make_clip(cfg: Optional[SyntheticConfig] = None, **overrides) -> tuple[FaceTrack, dict]:
    """Render one synthetic clip.

    Args:
        cfg: parameters; keyword ``overrides`` replace its fields.

    Returns:
        ``(track, truth)``: ``track`` a :class:`FaceTrack` with (T, 478, 3)
        float32 pixel landmarks (NaN on ``cfg.invalid_frames``); ``truth`` a
        dict with ``weights`` (T, 52) float32 in [0, 1], ``identity`` (K,)
        float32, ``head_rotation`` (T, 4) quaternions (w, x, y, z) head frame,
        ``head_translation`` (T, 3) metres camera space, ``ypr`` (T, 3)
        radians, ``focal_px`` float, ``vertices`` (T, 478, 3) metres camera space.
    """
    cfg = dataclasses.replace(cfg or SyntheticConfig(), **overrides)
    rng = np.random.default_rng(cfg.seed)
    model = load_face_model()
    t = cfg.num_frames
    weights = _events(cfg, rng)
    weights[:cfg.rest_frames] = 0.0
    detail = np.array([is_detail(n) for n in model.identity_names])
    identity = rng.normal(0.0, 1.0, model.num_identity)
    if cfg.actor_seed is not None:
        identity = np.random.default_rng(cfg.actor_seed).normal(0.0, 1.0, model.num_identity)
    identity *= np.where(detail, cfg.detail_scale, cfg.identity_scale)
    frames = np.arange(t) / cfg.fps

    def wave(amp_deg):
        period = rng.uniform(2.0, 5.0)
        return np.deg2rad(amp_deg) * np.sin(2 * np.pi * frames / period + rng.uniform(0, 2 * np.pi))

    ypr = np.stack([wave(cfg.max_yaw_deg), wave(cfg.max_pitch_deg), wave(cfg.max_roll_deg)], 1)
    quats = ypr_to_quat(ypr[:, 0], ypr[:, 1], ypr[:, 2])
    rot = quat_to_matrix(quats)
    w, h = cfg.image_size
    focal = default_focal(w, h)
    depth = focal * FACE_WIDTH_M / cfg.face_px
    trans = np.zeros((t, 3))
    trans[:, 0] = rng.uniform(-0.02, 0.02) + 0.01 * np.sin(2 * np.pi * frames / 3.0)
    trans[:, 1] = rng.uniform(-0.02, 0.02)
    trans[:, 2] = -depth * (1.0 + 0.05 * np.sin(2 * np.pi * frames / 4.0))
    verts = model.vertices(weights, np.broadcast_to(identity, (t, model.num_identity))).astype(np.float64)
    cam = np.einsum("tij,tnj->tni", rot, verts) + trans[:, None, :]
    lm = project(cam, focal, cfg.image_size)
    occluded = None
    if cfg.hand_frames:
        lm, occluded = _hand_over_mouth(model, lm, weights, identity, rot, trans, focal, cfg)
    lm += rng.normal(0.0, cfg.noise_px, lm.shape)
    valid = np.ones(t, bool)
    valid[list(cfg.invalid_frames)] = False
    lm[~valid] = np.nan
    track = FaceTrack(landmarks=lm.astype(np.float32), valid=valid,
                      confidence=np.where(valid, 1.0, 0.0).astype(np.float32),
                      timestamps=frames.astype(np.float64), fps=float(cfg.fps), image_size=(w, h),
                      source=f"synthetic:seed={cfg.seed}", source_sha256="", focal_px=None,
                      info={"synthetic": dataclasses.asdict(cfg)},
                      occluded=None if occluded is None else occluded & valid[:, None])
    truth = {"weights": weights.astype(np.float32), "identity": identity.astype(np.float32),
             "head_rotation": quats.astype(np.float32), "head_translation": trans.astype(np.float32),
             "ypr": ypr, "focal_px": focal, "vertices": cam.astype(np.float32)}
    return track, truth


#: What the tracker invents under a hand over the mouth (unit weights), whatever the mouth really does.
INVENTED_MOUTH = {"mouthPucker": 0.8, "mouthFunnel": 0.5, "jawOpen": 0.0, "mouthClose": 0.0}


def _hand_over_mouth(model, lm, weights, identity, rot, trans, focal, cfg):
    """(landmarks with the covered ones invented, (T, N) bool covered) for ``cfg.hand_frames``."""
    start, stop = cfg.hand_frames
    if not 0 <= start < stop <= cfg.num_frames:
        raise ValueError(f"hand_frames must be (start, stop) within the {cfg.num_frames} frames, got {cfg.hand_frames}")
    v = model.neutral
    region = (v[:, 1] < v[2, 1] + 0.005) & (v[:, 0] < 0.012)
    fake = weights[start:stop].copy()
    for name, value in INVENTED_MOUTH.items():
        fake[:, INDEX[name]] = value
    verts = model.vertices(fake, np.broadcast_to(identity, (stop - start, model.num_identity))).astype(np.float64)
    cam = np.einsum("tij,tnj->tni", rot[start:stop], verts) + trans[start:stop, None, :]
    out = lm.copy()
    out[start:stop, region] = project(cam, focal, cfg.image_size)[:, region]
    occluded = np.zeros(lm.shape[:2], bool)
    occluded[start:stop, region] = True
    return out, occluded
