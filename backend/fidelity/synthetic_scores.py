"""Synthetic ground truth: solve generated clips and score the Takes against the truth.

Clips come from :func:`backend.synthetic.make_clip` (random actor identity,
sparse smooth ARKit events that respect ``EXCLUSIVE_PAIRS``, one-sided and
mirrored Left/Right events, peaks up to 1.0, a moving head, 478 landmarks
with Gaussian pixel noise).  The benchmark varies, per clip:

* head yaw amplitude 15-60 degrees (a sinusoid, so every clip spans
  0..amplitude), pitch up to 12 and roll up to 8 degrees;
* actor identity scale 1.0 or 1.5 standard deviations (varied face shapes);
* image size and face size (640x480 .. 1920x1080, 200-420 px faces), with
  the landmark noise scaled to MediaPipe's level: 1.2 px per 200 px of face;
* lens: "lens" clips are re-shot (:func:`reshoot`) through a 40 or 80 degree
  lens while the solver still assumes its default 60 degrees, as for
  footage without focal-length metadata;
* "held" clips keep the head still (no rotation) and have few events, so
  most frames hold one pose: the jitter score is measured on them;
* diagnostic groups, scored on their own and left out of the overall
  scores: "detail" clips' actors carry shape outside the solver's identity
  components (the solver's weak spot), and start with :data:`REST_FRAMES`
  frames at rest; "detail_rest" solves the same clips calibrated on a rest
  frame (``SolverSettings.rest_frame``), as a user who marks one would;
* photos (:func:`run_photos`): frames of further clips solved one at a time,
  as single photos, alone and with the actor profile of another take of the
  same actor calibrated on a rest frame (``ActorProfile``).

Scores (all on valid frames; ``tongueOut`` is left out of the weight scores
because the generator never moves it: the tongue is invisible to landmarks):

* weight MAE overall and per unit, per-unit Pearson correlation over all
  clips together (NaN where a unit never moves in truth or estimate);
* head-rotation error (angle of R_est^T R_true, degrees): median and 95th
  percentile, per |yaw| bin of 15 degrees, and the median up to 45 degrees;
* identity error: mean distance (mm) between the solved and the true
  neutral geometry (468 mesh vertices, head frame, no alignment), next to
  the error of the plain canonical neutral for scale;
* identity stability: the same clip solved as two halves, mean distance
  (mm) between the two solved neutrals;
* contradictory-pair violations: share of frames where both units of an
  ``EXCLUSIVE_PAIRS`` pair exceed 0.2 (the solver's own acceptance level);
* jitter on held poses: on consecutive frames whose true weights and head
  rotation do not change, mean |delta weight| per unit and frame, and the
  rotation change in degrees per frame.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional

import numpy as np

from backend.estimators import SolverSettings, get_estimator
from backend.estimators.camera import default_focal, project
from backend.facemodel import load_face_model
from backend.facemodel.canonical import NUM_MESH
from backend.protocol.arkit import ARKIT_NAMES, EXCLUSIVE_PAIRS, INDEX
from backend.protocol.rotations import quat_to_matrix
from backend.synthetic import INVENTED_MOUTH, SyntheticConfig, make_clip
from backend.tracking.track import FaceTrack

__all__ = ["SyntheticCase", "synthetic_cases", "reshoot", "run_synthetic", "weight_errors", "unit_correlation",
           "rotation_error_deg", "neutral_distance_mm", "exclusive_violation_rate", "held_jitter",
           "EVAL_UNITS", "YAW_BINS_DEG", "EXCLUSIVE_LEVEL", "DIAGNOSTIC_GROUPS", "REST_FRAMES", "run_photos",
           "PHOTO_STEP"]

#: Unit indices scored for weights (all but tongueOut, which the generator never moves).
EVAL_UNITS: tuple[int, ...] = tuple(i for i, n in enumerate(ARKIT_NAMES) if n != "tongueOut")
#: Edges of the |yaw| bins (degrees) of the rotation-error table.
YAW_BINS_DEG: tuple[float, ...] = (0.0, 15.0, 30.0, 45.0, 60.0)
#: Both units of a contradictory pair above this weight = a violation.
EXCLUSIVE_LEVEL = 0.2
#: MediaPipe-level landmark noise: pixels of standard deviation per 200 px of face width.
NOISE_PX_PER_200 = 1.2
#: A frame counts as "held" when no true weight moves more than this between frames...
HELD_WEIGHT_STEP = 1e-4
#: ...and the true head rotation turns less than this many degrees.
HELD_ROTATION_STEP_DEG = 1e-3

# (width, height, face_px) shots the clips cycle through
_SHOTS = ((640, 480, 200.0), (1280, 720, 320.0), (480, 480, 260.0), (1920, 1080, 420.0))


@dataclasses.dataclass
class SyntheticCase:
    """One synthetic clip of the benchmark.

    Attributes:
        name: short label, e.g. ``pose_yaw45_s1``.
        group: ``"pose"``, ``"lens"``, ``"held"``, or a diagnostic group of
            :data:`DIAGNOSTIC_GROUPS` (reported on its own and left out of the
            overall scores).
        config: generator parameters.
        lens_fov_deg: diagonal field of view the clip is re-shot with
            (None = the generator's lens, the solver's default 60 degrees).
        halves: also solve the two halves separately (identity stability).
        rest_frame: the solver's ``rest_frame`` (None = no rest calibration).
    """

    name: str
    group: str
    config: SyntheticConfig
    lens_fov_deg: Optional[float] = None
    halves: bool = False
    rest_frame: Optional[int] = None


#: Detail-component std of the diagnostic "detail" clips' actors (the solver fits no detail component).
DETAIL_SCALE = 0.3
#: Frames at rest that open each diagnostic "detail" clip; "detail_rest" calibrates on the middle one.
REST_FRAMES = 10
#: Groups scored on their own, left out of the overall scores.
DIAGNOSTIC_GROUPS = ("detail", "detail_rest")


def _shot(i: int, **fields) -> SyntheticConfig:
    w, h, face = _SHOTS[i % len(_SHOTS)]
    return SyntheticConfig(image_size=(w, h), face_px=face, noise_px=NOISE_PX_PER_200 * face / 200.0,
                           identity_scale=1.0 if i % 2 == 0 else 1.5, **fields)


def synthetic_cases(size: str = "default", seed: int = 0) -> list[SyntheticCase]:
    """The clips of one benchmark size (``"quick"`` or ``"default"``), seeds derived from ``seed``."""
    if size not in ("quick", "default"):
        raise ValueError(f"size must be 'quick' or 'default', got {size!r}")
    quick = size == "quick"
    frames = 40 if quick else 120
    yaws = (20.0, 60.0) if quick else (15.0, 30.0, 45.0, 60.0)
    repeats = 1 if quick else 4
    cases: list[SyntheticCase] = []
    i = 0
    for rep in range(repeats):
        for yaw in yaws:
            cfg = _shot(i, num_frames=frames, max_yaw_deg=yaw, seed=seed * 1000 + i)
            cases.append(SyntheticCase(f"pose_yaw{yaw:.0f}_s{rep}", "pose", cfg,
                                       halves=yaw in ((20.0,) if quick else (30.0, 45.0))))
            i += 1
    for fov in ((80.0,) if quick else (40.0, 80.0)):
        cfg = _shot(i, num_frames=frames, max_yaw_deg=30.0, seed=seed * 1000 + i)
        cases.append(SyntheticCase(f"lens_fov{fov:.0f}", "lens", cfg, lens_fov_deg=fov))
        i += 1
    for rep in range(1 if quick else 2):
        cfg = _shot(i, num_frames=frames, max_yaw_deg=0.0, max_pitch_deg=0.0, max_roll_deg=0.0,
                    events_per_second=0.5 if quick else 1.0, seed=seed * 1000 + i)
        cases.append(SyntheticCase(f"held_s{rep}", "held", cfg))
        i += 1
    if not quick:
        for rep in range(2):
            cfg = _shot(i, num_frames=frames, max_yaw_deg=30.0, detail_scale=DETAIL_SCALE, rest_frames=REST_FRAMES,
                        seed=seed * 1000 + i)
            cases.append(SyntheticCase(f"detail_s{rep}", "detail", cfg))
            cases.append(SyntheticCase(f"detail_rest_s{rep}", "detail_rest", cfg, rest_frame=REST_FRAMES // 2))
            i += 1
    return cases


def reshoot(track: FaceTrack, truth: dict, fov_deg: float, noise_px: float, seed: int) -> tuple[FaceTrack, dict]:
    """The same performance filmed through another lens, face kept the same size in the image.

    The head is moved away from (or toward) the camera by the focal-length
    ratio, so only the strength of perspective changes.  The track keeps
    ``focal_px=None`` (the solver assumes its default lens).

    Args:
        track, truth: a clip from :func:`make_clip`.
        fov_deg: diagonal field of view of the new lens, degrees.
        noise_px: Gaussian landmark noise, pixels (standard deviation).
        seed: seed of the noise.

    Returns:
        ``(track, truth)`` with new landmarks (T, 478, 3) pixels,
        ``head_translation`` (T, 3) metres, ``vertices`` and ``focal_px``.
    """
    w, h = track.image_size
    focal = default_focal(w, h, fov_deg)
    scale = focal / float(truth["focal_px"])
    trans = truth["head_translation"].astype(np.float64)
    cam = truth["vertices"].astype(np.float64) + (trans * (scale - 1.0))[:, None, :]
    lm = project(cam, focal, (w, h))
    lm += np.random.default_rng(seed).normal(0.0, noise_px, lm.shape)
    lm[~track.valid] = np.nan
    new_track = dataclasses.replace(track, landmarks=lm.astype(np.float32),
                                    info={**track.info, "lens_fov_deg": fov_deg})
    new_truth = {**truth, "head_translation": (trans * scale).astype(np.float32), "focal_px": focal,
                 "vertices": cam.astype(np.float32)}
    return new_track, new_truth


# ---------------------------------------------------------------- metrics


def weight_errors(est: np.ndarray, true: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean absolute weight error.

    Args:
        est, true: (T, 52) weights in [0, 1] (valid frames only).

    Returns:
        ``(overall, per_unit)``: overall MAE over :data:`EVAL_UNITS` and
        (52,) float64 per-unit MAE.
    """
    err = np.abs(np.asarray(est, np.float64) - np.asarray(true, np.float64))
    per_unit = err.mean(axis=0)
    return float(per_unit[list(EVAL_UNITS)].mean()), per_unit


def unit_correlation(est: np.ndarray, true: np.ndarray) -> np.ndarray:
    """(52,) Pearson correlation of each unit's estimate with its truth over (T, 52) frames; NaN if either is constant."""
    e = np.asarray(est, np.float64) - np.mean(est, axis=0)
    t = np.asarray(true, np.float64) - np.mean(true, axis=0)
    den = np.sqrt((e * e).sum(0) * (t * t).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-12, (e * t).sum(0) / np.where(den > 1e-12, den, 1.0), np.nan)


def rotation_error_deg(q_est: np.ndarray, q_true: np.ndarray) -> np.ndarray:
    """(T,) angle in degrees between (T, 4) quaternion (w, x, y, z) head rotations."""
    r = np.einsum("tji,tjk->tik", quat_to_matrix(q_est), quat_to_matrix(q_true))
    return np.degrees(np.arccos(np.clip((np.trace(r, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)))


def neutral_distance_mm(identity_a: np.ndarray, identity_b: Optional[np.ndarray]) -> float:
    """Mean distance (mm) over the 468 mesh vertices between two actors' neutral faces.

    Args:
        identity_a: (K,) identity coefficients.
        identity_b: (K,) identity coefficients, or None for the canonical neutral.
    """
    m = load_face_model()
    zero = np.zeros(len(ARKIT_NAMES), np.float32)
    a = m.vertices(zero, np.asarray(identity_a, np.float32))[:NUM_MESH]
    b = m.vertices(zero, None if identity_b is None else np.asarray(identity_b, np.float32))[:NUM_MESH]
    return float(np.linalg.norm(a - b, axis=1).mean() * 1000.0)


def exclusive_violation_rate(weights: np.ndarray, level: float = EXCLUSIVE_LEVEL) -> float:
    """Share of frames of (T, 52) weights where both units of any contradictory pair exceed ``level``."""
    w = np.asarray(weights)
    bad = np.zeros(len(w), bool)
    for a, b in EXCLUSIVE_PAIRS:
        bad |= (w[:, a] > level) & (w[:, b] > level)
    return float(bad.mean()) if len(w) else 0.0


def held_jitter(est_w: np.ndarray, true_w: np.ndarray, est_q: np.ndarray, true_q: np.ndarray,
                valid: np.ndarray) -> tuple[float, float, int]:
    """Frame-to-frame change of the estimate where the truth holds still.

    Args:
        est_w, true_w: (T, 52) weights.
        est_q, true_q: (T, 4) head rotations (w, x, y, z).
        valid: (T,) bool.

    Returns:
        ``(weights_per_frame, degrees_per_frame, pairs)``: mean |delta w|
        over :data:`EVAL_UNITS`, mean rotation change in degrees, and the
        number of held consecutive frame pairs (both valid); NaNs when 0.
    """
    tw = np.asarray(true_w, np.float64)
    ok = valid[1:] & valid[:-1]
    ok &= np.abs(np.diff(tw, axis=0)).max(axis=1) < HELD_WEIGHT_STEP
    ok &= rotation_error_deg(true_q[1:], true_q[:-1]) < HELD_ROTATION_STEP_DEG
    n = int(ok.sum())
    if n == 0:
        return float("nan"), float("nan"), 0
    dw = np.abs(np.diff(np.asarray(est_w, np.float64), axis=0))[ok][:, list(EVAL_UNITS)].mean()
    dr = rotation_error_deg(est_q[1:][ok], est_q[:-1][ok]).mean()
    return float(dw), float(dr), n


# ---------------------------------------------------------------- running


def _solve(track: FaceTrack, rest_frame: Optional[int] = None):
    return get_estimator("solver").estimate(track, SolverSettings(rest_frame=rest_frame))


#: Frame step between the single-frame "photos" taken from each photo clip.
PHOTO_STEP = 8


def run_photos(size: str = "default", seed: int = 0, progress: Optional[Callable[[str], None]] = None) -> dict:
    """Single photos of known actors, solved alone and with the actor's profile from another take.

    Per actor (1 for ``"quick"``, 4 for ``"default"``): a calibration take
    (:data:`REST_FRAMES` frames at rest, solved with ``rest_frame``) gives an
    :class:`~backend.estimators.actor.ActorProfile`; every :data:`PHOTO_STEP`-th
    frame of a second take of that actor is solved as a one-frame track.

    Returns:
        ``{"photos", "weight_mae_alone", "weight_mae_with_actor",
        "identity_error_alone_mm", "identity_error_with_actor_mm"}``.
    """
    from backend.estimators import ActorProfile

    model = load_face_model()
    err: dict[str, list] = {"alone": [], "actor": [], "id_alone": [], "id_actor": []}
    actors = 1 if size == "quick" else 4
    for k in range(actors):
        if progress:
            progress(f"synthetic photos: actor {k + 1}/{actors}")
        actor_seed = seed * 1000 + 500 + k
        calib, _ = make_clip(_shot(k, num_frames=40, max_yaw_deg=15.0, rest_frames=REST_FRAMES, seed=actor_seed + 50,
                                   actor_seed=actor_seed))
        actor = ActorProfile.from_take(get_estimator("solver").estimate(calib, SolverSettings(rest_frame=REST_FRAMES // 2)),
                                       model, f"synthetic calibration take {k}")
        track, truth = make_clip(_shot(k, num_frames=40, max_yaw_deg=30.0, seed=actor_seed + 70, actor_seed=actor_seed))
        for f in range(2, track.num_frames, PHOTO_STEP):
            photo = track.frames(slice(f, f + 1))
            for key, kwargs in (("alone", {}), ("actor", {"actor": actor})):
                take = get_estimator("solver").estimate(photo, SolverSettings(), **kwargs)
                err[key].append(weight_errors(take.weights, truth["weights"][f:f + 1])[0])
                err["id_" + key].append(neutral_distance_mm(np.asarray(take.header["identity"]), truth["identity"]))
    return {"photos": len(err["alone"]), "weight_mae_alone": float(np.mean(err["alone"])),
            "weight_mae_with_actor": float(np.mean(err["actor"])),
            "identity_error_alone_mm": float(np.mean(err["id_alone"])),
            "identity_error_with_actor_mm": float(np.mean(err["id_actor"]))}


def run_hands(size: str = "default", seed: int = 0, progress: Optional[Callable[[str], None]] = None) -> dict:
    """A hand over the mouth for the middle 3/8 of a clip (``SyntheticConfig.hand_frames``: the tracker
    invents a pucker there), solved with the hand mask and without it, side by side.

    Clips: 1 of 64 frames for ``"quick"``, 4 of 120 for ``"default"`` (1.5 s of hand at 30 fps).

    Returns:
        ``{"clips", "covered_frames", "weight_mae_covered", "weight_mae_elsewhere",
        "invented_units_mae_covered"}``, the last three each a ``{"masked", "blind"}`` pair of
        weight MAEs; the last is over the units the tracker invents (``INVENTED_MOUTH``) on the
        covered frames.
    """
    frames, clips = (64, 1) if size == "quick" else (120, 4)
    start, stop = frames * 5 // 16, frames * 11 // 16
    invented = [INDEX[n] for n in INVENTED_MOUTH]
    err: dict[str, dict[str, list]] = {k: {"masked": [], "blind": []} for k in ("covered", "elsewhere", "invented")}
    for k in range(clips):
        if progress:
            progress(f"synthetic hand over the mouth: clip {k + 1}/{clips}")
        track, truth = make_clip(_shot(k, num_frames=frames, max_yaw_deg=30.0, hand_frames=(start, stop),
                                       seed=seed * 1000 + 800 + k))
        true = truth["weights"]
        elsewhere = np.r_[0:start, stop:frames]
        for key, t in (("masked", track), ("blind", dataclasses.replace(track, occluded=None))):
            w = _solve(t).weights
            err["covered"][key].append(np.abs(w[start:stop] - true[start:stop]).mean())
            err["elsewhere"][key].append(np.abs(w[elsewhere] - true[elsewhere]).mean())
            err["invented"][key].append(np.abs(w[start:stop, invented] - true[start:stop, invented]).mean())
    mean = {k: {key: float(np.mean(v)) for key, v in d.items()} for k, d in err.items()}
    return {"clips": clips, "covered_frames": stop - start, "weight_mae_covered": mean["covered"],
            "weight_mae_elsewhere": mean["elsewhere"], "invented_units_mae_covered": mean["invented"]}


def run_synthetic(cases: list[SyntheticCase], progress: Optional[Callable[[str], None]] = None) -> dict:
    """Solve every case with the default solver settings and score it.

    Returns a JSON-able dict: ``overall`` (weight MAE, worst unit, rotation
    error stats, identity, violations, jitter), ``per_unit`` (name -> MAE,
    correlation), ``rotation_by_yaw`` (bin -> median, p95, frames),
    ``groups`` (group -> weight MAE, rotation median) and ``clips`` (one
    entry per case, with seconds spent solving).
    """
    est_all, true_all, rot_err, yaw_abs, clips = [], [], [], [], []
    id_err, id_base, halves_mm, jitter = [], [], [], []
    viol_frames = 0
    groups: dict[str, dict[str, list]] = {}
    for k, case in enumerate(cases):
        if progress:
            progress(f"synthetic {k + 1}/{len(cases)}: {case.name}")
        track, truth = make_clip(case.config)
        if case.lens_fov_deg is not None:
            track, truth = reshoot(track, truth, case.lens_fov_deg, case.config.noise_px, case.config.seed + 7)
        t0 = time.perf_counter()
        take = _solve(track, case.rest_frame)
        seconds = time.perf_counter() - t0
        v = take.valid
        ew, tw = take.weights[v], truth["weights"][v]
        err = rotation_error_deg(take.head_rotation[v], truth["head_rotation"][v])
        identity = np.asarray(take.header["identity"], np.float32)
        identity_mm = neutral_distance_mm(identity, truth["identity"])
        if case.group not in DIAGNOSTIC_GROUPS:
            est_all.append(ew)
            true_all.append(tw)
            rot_err.append(err)
            yaw_abs.append(np.degrees(np.abs(truth["ypr"][v, 0])))
            id_err.append(identity_mm)
            id_base.append(neutral_distance_mm(truth["identity"], None))
            viol_frames += int(round(exclusive_violation_rate(ew) * len(ew)))
        mae, _ = weight_errors(ew, tw)
        g = groups.setdefault(case.group, {"mae": [], "rot": []})
        g["mae"].append(mae)
        g["rot"].append(err)
        entry = {"name": case.name, "group": case.group, "frames": int(len(v)), "weight_mae": mae,
                 "rotation_median_deg": float(np.median(err)), "identity_error_mm": identity_mm,
                 "max_yaw_deg": case.config.max_yaw_deg, "identity_scale": case.config.identity_scale,
                 "detail_scale": case.config.detail_scale,
                 "image_size": list(case.config.image_size), "face_px": case.config.face_px,
                 "noise_px": case.config.noise_px, "lens_fov_deg": case.lens_fov_deg, "seed": case.config.seed,
                 "rest_frame": case.rest_frame,
                 "solve_seconds": seconds}
        if case.group == "held":
            jw, jr, n = held_jitter(take.weights, truth["weights"], take.head_rotation, truth["head_rotation"], v)
            jitter.append((jw, jr, n))
            entry.update(jitter_weight_per_frame=jw if n else None, jitter_rotation_deg_per_frame=jr if n else None,
                         held_pairs=n)
        if case.halves:
            mid = track.num_frames // 2
            ids = [np.asarray(_solve(track.frames(sl)).header["identity"], np.float32)
                   for sl in (slice(0, mid), slice(mid, None))]
            halves_mm.append(neutral_distance_mm(ids[0], ids[1]))
            entry["identity_halves_mm"] = halves_mm[-1]
        clips.append(entry)
    est, true = np.concatenate(est_all), np.concatenate(true_all)
    rot, yaw = np.concatenate(rot_err), np.concatenate(yaw_abs)
    overall_mae, per_unit_mae = weight_errors(est, true)
    corr = unit_correlation(est, true)
    worst = max(EVAL_UNITS, key=lambda i: per_unit_mae[i])
    by_yaw = {}
    for lo, hi in zip(YAW_BINS_DEG[:-1], YAW_BINS_DEG[1:]):
        sel = (yaw >= lo) & ((yaw < hi) if hi < YAW_BINS_DEG[-1] else (yaw <= hi + 1e-6))
        by_yaw[f"{lo:.0f}-{hi:.0f}"] = {
            "frames": int(sel.sum()),
            "median_deg": float(np.median(rot[sel])) if sel.any() else None,
            "p95_deg": float(np.percentile(rot[sel], 95)) if sel.any() else None}
    upto45 = rot[yaw <= 45.0]
    jw = [j[0] for j in jitter if j[2]]
    jr = [j[1] for j in jitter if j[2]]
    overall = {
        "frames": int(len(est)), "clips": len(est_all),
        "weight_mae": overall_mae,
        "worst_unit": ARKIT_NAMES[worst], "worst_unit_mae": float(per_unit_mae[worst]),
        "mean_unit_correlation": float(np.nanmean(corr[list(EVAL_UNITS)])),
        "rotation_median_deg": float(np.median(rot)), "rotation_p95_deg": float(np.percentile(rot, 95)),
        "rotation_median_upto45_deg": float(np.median(upto45)) if len(upto45) else None,
        "identity_error_mm": float(np.mean(id_err)), "identity_canonical_baseline_mm": float(np.mean(id_base)),
        "identity_halves_mm": float(np.max(halves_mm)) if halves_mm else None,
        "exclusive_violation_rate": viol_frames / len(est),
        "jitter_weight_per_frame": float(np.mean(jw)) if jw else None,
        "jitter_rotation_deg_per_frame": float(np.mean(jr)) if jr else None,
        "held_pairs": int(sum(j[2] for j in jitter)),
        "solve_seconds": float(sum(c["solve_seconds"] for c in clips)),
    }
    per_unit = {ARKIT_NAMES[i]: {"mae": float(per_unit_mae[i]),
                                 "correlation": None if np.isnan(corr[i]) else float(corr[i]),
                                 "true_mean": float(true[:, i].mean()), "scored": i in EVAL_UNITS}
                for i in range(len(ARKIT_NAMES))}
    group_out = {name: {"weight_mae": float(np.mean(g["mae"])),
                        "rotation_median_deg": float(np.median(np.concatenate(g["rot"])))}
                 for name, g in groups.items()}
    return {"overall": overall, "per_unit": per_unit, "rotation_by_yaw": by_yaw, "groups": group_out,
            "clips": clips}
