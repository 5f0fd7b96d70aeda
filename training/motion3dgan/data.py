"""Labelled expression motions from the built-in face model: the training data of Motion3DGAN and S2D-Dec.

CoMA's sequences (the papers' data) go from the neutral face to the apex of
one labelled expression.  Ours do the same on synthetic actors: each label
is a recipe of ARKit units at their apex weights (:data:`RECIPES`; none holds
both units of an ``EXCLUSIVE_PAIRS`` pair, which no capture reads); a sample
draws an actor (standard-normal identity from a seeded pool, with its own
deformation-transferred units, :class:`training.serep.expressions.IdentityExpressions`),
scales every unit's apex by U(0.7, 1.15) (clipped to 1) with a left/right
imbalance of up to 15 %, and ramps each unit from 0 to its apex with a smoothstep whose onset
(0-0.3 of the clip) and arrival (0.55-1.0) are drawn per unit.  The one-sided
label ``mouth_side`` always goes to the subject's left: a generator trained
on both sides at random blended them (its clips read as a mix of stretch,
upper-lip raise and a little mouthRight); ``facekey generate --mirror`` gives
the other side.

Arrays (metres, head frame): ``dense`` (N, T, 478, 3) displacements from
the actor's neutral, ``landmarks`` (N, T, 68, 3) the same at the 68 iBUG
vertices (:data:`backend.tracking.ibug68.MEDIAPIPE_TO_IBUG68`),
``neutral`` (N, 478, 3), ``weights`` (N, T, 52) and ``labels`` (N,) int.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from backend.protocol.labels import LABELS
from backend.protocol.arkit import INDEX
from backend.tracking.ibug68 import MEDIAPIPE_TO_IBUG68

__all__ = ["RECIPES", "Motions", "expression_motions", "TRAIN_SEED", "HELDOUT_SEED"]

TRAIN_SEED = 11
HELDOUT_SEED = 12


def _both(name: str, w: float) -> dict[str, float]:
    return {f"{name}Left": w, f"{name}Right": w}


#: Apex ARKit weights of each label (CoMA's sequence names).
RECIPES: dict[str, dict[str, float]] = {
    "bareteeth": {**_both("mouthUpperUp", 0.8), **_both("mouthLowerDown", 0.8), **_both("mouthStretch", 0.5)},
    "cheeks_in": {"mouthPucker": 0.6, "mouthFunnel": 0.3, **_both("mouthPress", 0.3)},
    "eyebrow": {"browInnerUp": 0.9, **_both("browOuterUp", 0.8), **_both("eyeWide", 0.3)},
    "high_smile": {**_both("mouthSmile", 0.9), **_both("cheekSquint", 0.6), **_both("eyeSquint", 0.3),
                   **_both("mouthUpperUp", 0.2)},
    "lips_back": {**_both("mouthStretch", 0.8), **_both("mouthPress", 0.3)},
    "lips_up": {**_both("mouthUpperUp", 0.8), **_both("noseSneer", 0.4), "mouthShrugUpper": 0.3},
    "mouth_down": {**_both("mouthFrown", 0.9), **_both("mouthLowerDown", 0.3), "mouthShrugLower": 0.3},
    "mouth_extreme": {"jawOpen": 1.0, **_both("mouthStretch", 0.5), **_both("mouthLowerDown", 0.5),
                      "browInnerUp": 0.4},
    "mouth_middle": {"mouthPucker": 0.9, "mouthFunnel": 0.2},
    "mouth_open": {"jawOpen": 0.8},
    "mouth_side": {"mouthLeft": 0.8, "jawLeft": 0.3},
    "mouth_up": {"mouthShrugLower": 0.8, "mouthShrugUpper": 0.4, **_both("mouthPress", 0.3)},
}
assert tuple(RECIPES) == LABELS


@dataclasses.dataclass
class Motions:
    """Labelled motions (see the module docstring for shapes and units)."""

    dense: np.ndarray
    landmarks: np.ndarray
    neutral: np.ndarray
    weights: np.ndarray | None      # None for data sets without ARKit ground truth (CoMA)
    labels: np.ndarray


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def apex_weights(rng: np.random.Generator, label: int) -> np.ndarray:
    """(52,) float32 apex weights of one sample of ``label`` (recipe, jittered)."""
    w = np.zeros(52, np.float32)
    for name, value in RECIPES[LABELS[label]].items():
        w[INDEX[name]] = value * rng.uniform(0.7, 1.15)
    side = rng.uniform(-0.15, 0.15)
    for name, k in INDEX.items():
        if name.endswith("Left"):
            w[k] *= 1.0 + side
        elif name.endswith("Right"):
            w[k] *= 1.0 - side
    return np.clip(w, 0.0, 1.0)


def expression_motions(count: int, frames: int = 30, seed: int = TRAIN_SEED, identities: int = 200,
                       labels: np.ndarray | None = None) -> Motions:
    """``count`` labelled neutral-to-apex motions of ``frames`` frames (labels cycle through
    :data:`LABELS` unless given as (count,) ints); actors from a pool of ``identities``."""
    from training.serep.data import identity_pool
    from training.serep.expressions import IdentityExpressions

    rng = np.random.default_rng(seed)
    faces = IdentityExpressions()
    pool = identity_pool(identities, seed)
    labels = np.arange(count) % len(LABELS) if labels is None else np.asarray(labels, np.int64)
    t = np.linspace(0.0, 1.0, frames)
    weights = np.zeros((count, frames, 52), np.float32)
    for i, label in enumerate(labels):
        apex = apex_weights(rng, int(label))
        on = rng.uniform(0.0, 0.3, 52)
        arrive = rng.uniform(0.55, 1.0, 52)
        weights[i] = apex * _smoothstep((t[:, None] - on) / (arrive - on))
    ids = pool[rng.integers(0, identities, count)]
    neutral = faces.vertices(np.zeros((count, 52), np.float32), ids).astype(np.float32)
    meshes = faces.vertices(weights.reshape(-1, 52), np.repeat(ids, frames, axis=0)).reshape(count, frames, -1, 3)
    dense = (meshes - neutral[:, None]).astype(np.float32)
    return Motions(dense=dense, landmarks=dense[:, :, list(MEDIAPIPE_TO_IBUG68)].copy(), neutral=neutral,
                   weights=weights, labels=labels)
