"""Character solve: a Take's ARKit weights -> values of a character's own shape keys (numpy only).

At the surface points matched to the built-in model
(:mod:`backend.retarget.correspondence`), the captured expression is the
model's motion ``sum_u w_u * unit_deltas[u]`` scaled to the character's face
size; each character key's motion there is measured from its own deltas.
Per frame (all frames in one batch) the key values ``c`` in [0, 1] solve

    min ||sum_k c_k D_k - y_t||^2 + l1 * sum_k c_k + smooth * ||c_t - c_{t-1}||^2

by batched cyclic coordinate descent with box clipping.  ``l1`` and ``smooth`` are
relative to each key's own squared motion, so they depend neither on the
character's size nor on how large a key's motion is.  Motion the keys cannot reproduce is reported per
ARKit unit ("unmapped motion").
"""
from __future__ import annotations

import dataclasses
import fnmatch

import numpy as np

from ..protocol.arkit import ARKIT_NAMES
from ..protocol.errors import FaceKeyError
from ..protocol.keytake import CharacterKeys, KeyTake
from ..protocol.take import Take
from .correspondence import SurfacePoints, find_correspondence

__all__ = ["SolveSettings", "CharacterRig", "build_rig", "solve_values", "unit_residuals", "retarget_take"]

#: A key whose largest motion at the face points is below this (metres) cannot be driven.
MIN_KEY_MOTION = 2e-4


@dataclasses.dataclass
class SolveSettings:
    """Settings of the character solve.

    Attributes:
        keys: glob patterns of key names to solve for (e.g. ``["Fcl_*"]``); empty = all keys.
        exclude: glob patterns of key names never driven.
        l1: sparsity weight, relative to each key's squared motion.
        smooth: temporal smoothness weight, relative likewise.
        iterations: coordinate-descent sweeps over all keys.
        unmapped_threshold: a unit whose residual fraction exceeds this is reported unmapped.
    """

    keys: list = dataclasses.field(default_factory=list)
    exclude: list = dataclasses.field(default_factory=list)
    l1: float = 0.01
    smooth: float = 0.05
    iterations: int = 200
    unmapped_threshold: float = 0.5


@dataclasses.dataclass(frozen=True)
class CharacterRig:
    """A character's keys as motion at the matched face points.

    Attributes:
        key_names: (K,) driven keys.
        motion: (K, P, 3) float64 metres, head frame.
        points: the matched surface points (P of them).
        unit_motion: (52, P, 3) float64: the model's units at the points, scaled to the character.
        skipped: key name -> why it is not driven.
    """

    key_names: tuple
    motion: np.ndarray
    points: SurfacePoints
    unit_motion: np.ndarray
    skipped: dict


def _selected(name: str, s: SolveSettings) -> bool:
    inc = not s.keys or any(fnmatch.fnmatchcase(name, p) for p in s.keys)
    return inc and not any(fnmatch.fnmatchcase(name, p) for p in s.exclude)


def build_rig(ck: CharacterKeys, model, settings: SolveSettings | None = None) -> CharacterRig:
    """Measure ``ck``'s keys at the points matched to ``model`` (a ``FaceModel``).

    Raises:
        FaceKeyError: ``no_shape_keys`` when no selected key moves the face points.
    """
    s = settings or SolveSettings()
    pts = find_correspondence(ck, model.neutral.astype(np.float64), model.unit_deltas.astype(np.float64),
                              model.unit_names, candidates=np.unique(model.triangles))
    at = pts.interpolate(ck.deltas.astype(np.float64), ck.triangles)  # (K, P, 3)
    peak = np.linalg.norm(at, axis=2).max(axis=1) if at.size else np.zeros(0)
    keep, skipped = [], {}
    for k, name in enumerate(ck.key_names):
        if not _selected(name, s):
            skipped[name] = "not selected"
        elif peak[k] < MIN_KEY_MOTION:
            skipped[name] = "does not move the face surface"
        else:
            keep.append(k)
    if not keep:
        raise FaceKeyError("no_shape_keys", f"No selected shape key of '{ck.object_name}' moves its face surface.",
                           "Check the key filter (e.g. 'Fcl_*'), and that the measured mesh is the one with the face.")
    unit_motion = model.unit_deltas.astype(np.float64)[:, pts.model_index] * pts.scale
    return CharacterRig(tuple(ck.key_names[k] for k in keep), at[keep], pts, unit_motion, skipped)


def solve_values(motion: np.ndarray, targets: np.ndarray, *, l1: float = 0.01, smooth: float = 0.0,
                 iterations: int = 200, linked: np.ndarray | None = None) -> np.ndarray:
    """Box-constrained sparse, smooth least squares, batched over frames.

    Cyclic coordinate descent over keys (each key's exact box-clipped
    minimiser, all frames at once; neighbours in time enter with their
    current values), which is insensitive to keys of very different sizes.

    Args:
        motion: (K, P, 3) key motions.
        targets: (T, P, 3) motions to reproduce (frames in time order).
        l1, smooth: weights relative to each key's own squared motion ``diag(D^T D)``
            (so small keys, e.g. eyelids, are not penalised more than large ones).
        iterations: sweeps over all keys.
        linked: (T-1,) bool, False where frames t and t+1 are not neighbours in time (untracked frames
            between them): the smoothing does not pull across that gap.  None: all neighbours.

    Returns:
        (T, K) float64 values in [0, 1].
    """
    k = motion.shape[0]
    a = motion.reshape(k, -1)
    g = a @ a.T  # (K, K)
    b = targets.reshape(len(targets), -1) @ a.T  # (T, K)
    size = np.maximum(np.diag(g), 1e-30)  # each key's own squared motion
    t = len(b)
    link = np.ones(max(t - 1, 0)) if linked is None else np.asarray(linked, np.float64)
    neighbours = np.zeros(t)
    neighbours[:-1] += link
    neighbours[1:] += link
    c = np.zeros_like(b)
    cg = np.zeros_like(b)  # c @ g, kept up to date
    for _ in range(iterations):
        for j in range(k):
            num = b[:, j] - cg[:, j] + g[j, j] * c[:, j] - l1 * size[j]
            den = g[j, j]
            if smooth > 0 and t > 1:
                lam2 = smooth * size[j]
                col = c[:, j]
                nb = np.zeros(t)
                nb[1:] += col[:-1] * link
                nb[:-1] += col[1:] * link
                num = num + 2.0 * lam2 * nb
                den = den + 2.0 * lam2 * neighbours
            new = np.clip(num / den, 0.0, 1.0)
            step = new - c[:, j]
            if np.any(step):
                cg += np.outer(step, g[j])
                c[:, j] = new
    return c


def unit_residuals(rig: CharacterRig, settings: SolveSettings) -> dict[str, float]:
    """Per ARKit unit (at weight 1), the fraction of its motion the keys cannot reproduce, in [0, 1].

    Units that do not move the matched points are left out.
    """
    norms = np.linalg.norm(rig.unit_motion.reshape(52, -1), axis=1)
    moving = np.flatnonzero(norms > MIN_KEY_MOTION)
    c = solve_values(rig.motion, rig.unit_motion[moving], l1=settings.l1, iterations=settings.iterations)
    recon = np.einsum("tk,kpd->tpd", c, rig.motion)
    res = np.linalg.norm((recon - rig.unit_motion[moving]).reshape(len(moving), -1), axis=1) / norms[moving]
    return {ARKIT_NAMES[u]: float(min(r, 1.0)) for u, r in zip(moving, res)}


def retarget_take(take: Take, ck: CharacterKeys, model, settings: SolveSettings | None = None,
                  rig: CharacterRig | None = None) -> tuple[KeyTake, dict]:
    """Solve the character's key values for every valid frame of ``take``.

    ``rig``: ``build_rig(ck, model, settings)`` when already built (a batch of takes on one character).

    Returns:
        (KeyTake with the driven keys' values (T, K) in [0, 1] (invalid frames
        hold the nearest valid frame's values and stay invalid), report dict:
        ``keys`` {name: {peak, mean}}, ``skipped_keys`` {name: reason},
        ``unit_residual`` {unit: fraction}, ``unmapped_units`` [units over the
        threshold that the take uses], ``take_residual`` (fraction of the
        take's motion left over), ``points`` (matched point count),
        ``anchors`` ("keys" | "user")).

    Raises:
        FaceKeyError: ``no_face`` when the take has no valid frame.
    """
    s = settings or SolveSettings()
    if not take.valid.any():
        raise FaceKeyError("no_face", "The take has no valid (tracked) frame to retarget.",
                           "Use footage where the face is visible, or check the face index.")
    rig = rig or build_rig(ck, model, s)
    rows = np.flatnonzero(take.valid)
    w = take.weights[rows].astype(np.float64)
    targets = np.einsum("tu,upd->tpd", w, rig.unit_motion)
    c = solve_values(rig.motion, targets, l1=s.l1, smooth=s.smooth, iterations=s.iterations,
                     linked=np.diff(rows) == 1)
    values = np.zeros((take.num_frames, len(rig.key_names)), np.float32)
    values[rows] = c
    frames = np.arange(take.num_frames)
    after = np.clip(np.searchsorted(rows, frames), 0, len(rows) - 1)
    before = np.clip(after - 1, 0, len(rows) - 1)
    nearest = np.where(np.abs(rows[before] - frames) <= np.abs(rows[after] - frames), rows[before], rows[after])
    values[~take.valid] = values[nearest[~take.valid]]
    recon = np.einsum("tk,kpd->tpd", c, rig.motion)
    total = float(np.linalg.norm(targets))
    residual = {u: r for u, r in unit_residuals(rig, s).items()}
    used = {ARKIT_NAMES[u] for u in np.flatnonzero(w.max(axis=0) > 0.1)}
    report = {
        "keys": {n: {"peak": float(c[:, i].max()), "mean": float(c[:, i].mean())} for i, n in enumerate(rig.key_names)},
        "skipped_keys": rig.skipped,
        "unit_residual": residual,
        "unmapped_units": sorted(u for u, r in residual.items() if r > s.unmapped_threshold and u in used),
        "take_residual": float(np.linalg.norm(recon - targets) / total) if total > 0 else 0.0,
        "points": int(len(rig.points.model_index)),
        "anchors": rig.points.anchor_source,
    }
    header = {"source_take": take.header.get("source", ""), "object": ck.object_name,
              "settings": dataclasses.asdict(s), "report": report}
    return KeyTake(rig.key_names, np.clip(values, 0.0, 1.0), take.timestamps.astype(np.float64), take.valid.copy(),
                   float(take.fps), header).validate(), report
