"""Labelled expression clips as Takes: Motion3DGAN -> S2D-Dec -> ARKit weights.

For a label, Motion3DGAN (:mod:`backend.generation.motion3dgan`) draws the
motion of the 68 landmarks from the neutral face to the expression's apex;
S2D-Dec (:mod:`backend.generation.s2d`) expands every frame's landmark
displacements to the whole 478-vertex face; the dense displacements are then
read as ARKit weights of the built-in face model (box-constrained least
squares on its unit displacements, :func:`weights_from_dense`), so a clip
animates any character the way a capture does.  The Take keeps the dense
displacements (``dense_offsets``, metres) for data sets (a mesh-level retarget
moves a character by the weights, like any take), and its header names the
label, the seed and the weights used (paths and sha256).

Bundled generators (:data:`BUNDLED_GENERATORS`, float16, 5 MB): a
Motion3DGAN (generator only) and an S2D-Dec trained by ``training/`` on the synthetic
motions of :mod:`training.motion3dgan.data` (base configurations; their
``config.json`` keeps the training configuration and evaluation), used when
no weights are given, so generation works from a fresh install.
"""
from __future__ import annotations

import math

import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from backend.facemodel import load_face_model
from backend.protocol.take import Take

from backend.protocol.labels import LABELS, MIRRORED, label_index

__all__ = ["weights_from_dense", "apex_units", "mirror_clip", "generate_clips", "BUNDLED_GENERATORS"]

#: Folder of the bundled generators: ``motion3dgan/`` and ``s2d/``, each weights + ``config.json``.
BUNDLED_GENERATORS = Path(__file__).resolve().parents[1] / "assets" / "generators"
#: Weight below which a unit counts as off when keeping contradictory pairs apart (:func:`weights_from_dense`).
PAIR_DUST = 1e-3
#: Largest seed (torch's generator takes a signed 64-bit seed).
MAX_SEED = 2 ** 63 - 1


def weights_from_dense(dense: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ARKit weights of dense displacements on the built-in face.

    Args:
        dense: (F, 478, 3) metres, displacements from the neutral face.

    Returns:
        ``(weights (F, 52) float32 in [0, 1], residual (F,) float32)``: the weights whose unit
        displacements best match each frame (least squares over every vertex, each weight
        boxed to [0, 1]), and the RMS per-vertex distance left unexplained, metres.  Like a
        capture, a frame never drives both units of an ``EXCLUSIVE_PAIRS`` pair (above
        :data:`PAIR_DUST`): the weaker one is dropped and the frame fitted again.  ``tongueOut``
        is never used: no motion here shows a tongue, and its lip push would stand in for the
        rest of the motion a fit cannot explain.
    """
    from scipy.optimize import lsq_linear

    from backend.protocol.arkit import EXCLUSIVE_PAIRS, INDEX

    model = load_face_model()
    d = np.asarray(dense, np.float64)
    if d.ndim != 3 or d.shape[1:] != model.neutral.shape:
        raise ValueError(f"expected dense displacements (F, {model.neutral.shape[0]}, 3), got {d.shape}")
    basis = model.unit_deltas.reshape(len(model.unit_names), -1).T.astype(np.float64)   # (3N, 52)
    weights = np.zeros((len(d), basis.shape[1]), np.float32)
    residual = np.zeros(len(d), np.float32)
    for f, frame in enumerate(d.reshape(len(d), -1)):
        free = np.ones(basis.shape[1], bool)
        free[INDEX["tongueOut"]] = False
        while True:
            x = np.zeros(basis.shape[1])
            x[free] = np.clip(lsq_linear(basis[:, free], frame, bounds=(0.0, 1.0), method="bvls").x, 0.0, 1.0)
            both = [(a, b) for a, b in EXCLUSIVE_PAIRS if min(x[a], x[b]) > PAIR_DUST]
            if not both:
                break
            for a, b in both:
                free[a if x[a] < x[b] else b] = False
        weights[f] = x
        residual[f] = np.sqrt(np.mean(((basis @ x - frame).reshape(-1, 3) ** 2).sum(-1)))
    return weights, residual


def apex_units(weights: np.ndarray, shown_above: float = 0.05) -> dict[str, float]:
    """{unit: weight rounded to 2 decimals, as the panel and the CLI show it} of one frame's (52,) weights,
    strongest first, for the units shown above ``shown_above`` (0.054 shows as 0.05: not above it)."""
    from backend.protocol.arkit import ARKIT_NAMES
    rounded = {name: round(float(w), 2) for name, w in zip(ARKIT_NAMES, weights)}
    return dict(sorted(((n, w) for n, w in rounded.items() if w > shown_above), key=lambda nw: -nw[1]))


def mirror_clip(weights: np.ndarray, dense: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same motion on the other side of the face: weights (T, 52) with Left/Right units swapped,
    dense (T, 478, 3) metres taken from each vertex's mirror partner with x negated."""
    from backend.protocol.arkit import MIRROR
    mirror = load_face_model().mirror
    return weights[:, list(MIRROR)], dense[:, mirror] * np.array([-1.0, 1.0, 1.0], dense.dtype)


def generate_clips(label: str, count: int, gan_path: str | os.PathLike | None = None,
                   s2d_path: str | os.PathLike | None = None, *,
                   seed: int = 0, fps: float = 30.0, mirror: bool = False,
                   progress: Optional[Callable[[int, int], None]] = None) -> list[Take]:
    """``count`` clips of ``label`` (one of :data:`~backend.protocol.labels.LABELS`), neutral to apex.

    Args:
        gan_path, s2d_path: trained Motion3DGAN and S2D-Dec weights (folder or .safetensors);
            None = the bundled one (:data:`BUNDLED_GENERATORS`).
        seed: sample ``k`` uses the generator noise of seed ``seed + k`` (reproducible).
        fps: frame rate written into the Takes (the generator's clips have a fixed frame count).
        mirror: swap the face's sides (:func:`mirror_clip`), e.g. ``mouth_side`` to the subject's right.
        progress: called with (clips done, count) before each clip.

    Returns:
        Takes with ``weights`` (T, 52), all frames valid, the head still, ``dense_offsets``
        (T, 478, 3) metres, header ``source`` ``generated_<label>_<seed>[_mirrored]``, ``label``,
        ``seed``, ``mirrored``, ``estimator`` ("motion3dgan+s2d"), ``generator`` (weights paths),
        ``weights_id`` (sha256 of each weights file), ``settings`` and ``weights_residual_mm`` (mean RMS
        distance the ARKit weights leave of the dense motion).

    Raises:
        FaceKeyError: ``bad_argument`` (label, count, seed, fps), ``weights_missing`` / ``weights_invalid``.
    """
    from backend.footage.hashing import sha256_file
    from backend.weightsfile import weights_path
    from backend.protocol.errors import FaceKeyError

    from .motion3dgan import WEIGHTS_NAME as GAN_WEIGHTS, load_motion3dgan, sample_landmark_motions
    from .s2d import WEIGHTS_NAME as S2D_WEIGHTS, decode_dense, load_s2d

    index = label_index(label)
    if count < 1:
        raise FaceKeyError("bad_argument", f"count {count} is below 1.", "Ask for at least one clip.")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0 or seed + count - 1 > MAX_SEED:
        raise FaceKeyError("bad_argument", f"seed {seed!r} is not a whole number from 0 to {MAX_SEED - count + 1}.",
                           "Give a seed of 0 or more, e.g. --seed 0.")
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and 0 < fps <= 1000):
        raise FaceKeyError("bad_argument", f"fps {fps} is not a frame rate.", "Give frames per second, e.g. 30.")
    gan_path = BUNDLED_GENERATORS / "motion3dgan" if gan_path is None else gan_path
    s2d_path = BUNDLED_GENERATORS / "s2d" if s2d_path is None else s2d_path
    gan, s2d = load_motion3dgan(gan_path), load_s2d(s2d_path)
    files = {"motion3dgan": weights_path(gan_path, GAN_WEIGHTS), "s2d": weights_path(s2d_path, S2D_WEIGHTS)}
    weights_id = {name: sha256_file(path) for name, path in files.items()}
    takes = []
    for k in range(count):
        if progress:
            progress(k, count)
        sample_seed = seed + k
        landmarks = sample_landmark_motions(gan, index, 1, seed=sample_seed)[0]         # (T, 68, 3)
        dense = decode_dense(s2d, landmarks).astype(np.float32)                        # (T, 478, 3)
        weights, residual = weights_from_dense(dense)
        if mirror:
            weights, dense = mirror_clip(weights, dense)
        take = Take.empty(len(dense), fps, source=f"generated_{LABELS[index]}_{sample_seed}" + MIRRORED * mirror,
                          label=LABELS[index], seed=sample_seed, mirrored=mirror, estimator="motion3dgan+s2d",
                          generator={"motion3dgan": os.path.abspath(gan_path), "s2d": os.path.abspath(s2d_path)},
                          weights_id=weights_id,
                          settings={"label": LABELS[index], "seed": sample_seed, "mirror": mirror, "fps": fps},
                          weights_residual_mm=round(float(residual.mean()) * 1000.0, 4))
        take.weights = weights
        take.dense_offsets = dense
        takes.append(take.validate())
    return takes
