"""MultiREX-style region-wise expression error on the built-in 478-vertex topology.

SEREP's MultiREX protocol splits the face into forehead, cheek, mouth and
nose regions (disjoint), rigidly aligns the prediction to the ground truth
per region (cheek and mouth together, as in the paper's supplement) and
reports the mean vertex distance per region.  Our regions are defined on the
canonical neutral (head frame, metres), by geometry:

* forehead: above the brows (y > highest brow vertex of 66/105/296/334);
* nose: within 20 mm of the nose ridge line (vertex 168 -> tip 4), |x| < 20 mm,
  from 2 mm below the nose base (vertex 2) up to 10 mm above the lower lids,
  not in the mouth;
* mouth: within 28 mm of the lip centroid and below the nose base;
* cheek: the remaining vertices below the eyes' lower lids and above the
  chin, |x| > 20 mm (eyes, lids and irises are in no region).
"""
from __future__ import annotations

import numpy as np

from backend.facemodel import load_face_model
from backend.facemodel.canonical import NUM_MESH
from backend.facemodel.regions import LIPS

__all__ = ["regions", "kabsch_align", "region_errors", "REGION_NAMES"]

REGION_NAMES = ("forehead", "cheek", "mouth", "nose")


def regions() -> dict[str, np.ndarray]:
    """Disjoint vertex index sets (int arrays) of the four regions on the 478-vertex model."""
    v = load_face_model().neutral.astype(np.float64)[:NUM_MESH]
    x, y, z = v.T
    brow_y = v[[105, 334, 66, 296]][:, 1].max()
    lower_lid_y = v[[145, 374]][:, 1].mean()
    nose_base = v[2]
    lip_c = v[list(LIPS)].mean(0)
    ridge_a, ridge_b = v[168], v[4]
    d = ridge_b - ridge_a
    s = np.clip((v - ridge_a) @ d / (d @ d), 0, 1)
    to_ridge = np.linalg.norm(v - (ridge_a + s[:, None] * d), axis=1)
    mouth = (np.linalg.norm(v - lip_c, axis=1) < 0.028) & (y < nose_base[1])
    nose = (to_ridge < 0.02) & (y >= nose_base[1] - 0.002) & (y < lower_lid_y + 0.01) & ~mouth & (np.abs(x) < 0.02)
    forehead = y > brow_y
    cheek = (y < lower_lid_y - 0.006) & (y > v[152, 1] + 0.015) & (np.abs(x) > 0.02) & ~mouth & ~nose
    return {k: np.flatnonzero(m) for k, m in zip(REGION_NAMES, (forehead, cheek, mouth, nose))}


def kabsch_align(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(P, 3) ``src`` moved by the rotation + translation that best fits it to ``dst`` (least squares)."""
    cs, cd = src.mean(0), dst.mean(0)
    u, _, vt = np.linalg.svd((src - cs).T @ (dst - cd))
    dfix = np.diag([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T))])
    r = vt.T @ dfix @ u.T
    return (src - cs) @ r.T + cd


def region_errors(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Mean per-vertex distance per region, millimetres, averaged over frames.

    Args:
        pred, true: (T, 478, 3) metres.

    Returns:
        {region: mm} for the four regions plus ``"mean"`` (their average).
    """
    reg = regions()
    cm_idx = np.concatenate([reg["cheek"], reg["mouth"]])
    out = {k: 0.0 for k in REGION_NAMES}
    p, t = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    for f in range(len(p)):
        for name in REGION_NAMES:
            idx = cm_idx if name in ("cheek", "mouth") else reg[name]
            aligned = kabsch_align(p[f, idx], t[f, idx])
            dist = np.linalg.norm(aligned - t[f, idx], axis=1)
            sel = np.isin(idx, reg[name])
            out[name] += dist[sel].mean() * 1000.0 / len(p)
    out["mean"] = float(np.mean([out[k] for k in REGION_NAMES]))
    return out
