"""Mesh-level retarget output as per-take corrective shape keys (the alternative to a Mesh Cache).

The per-frame displacements of a point cache, (T, N, 3) in the object's local
units, are compressed by an SVD around the REST shape (not the mean, so a
neutral frame has all-zero coefficients and no extra "mean" key is needed):
K keys, the fewest whose singular values reach ``variance`` of the total
energy, at most ``max_keys``.  Each key is scaled so its coefficients over the
valid frames fill [-1, 1] (largest |coefficient| = 1); the keys get
``slider_min = -1``.  The keys are new blocks ``FK_<take>_c00``..; a Basis is
added when the mesh has no shape keys; existing keys and the mesh's own
vertices are never written.
"""
from __future__ import annotations

import numpy as np

from ..protocol.errors import FaceKeyError

__all__ = ["compress_displacements", "Compression", "add_corrective_keys"]

class Compression:
    """K corrective keys for a take.

    Attributes:
        keys: (K, N, 3) float64 key offsets from the rest shape (object-local units).
        coefficients: (T, K) float64 per-frame key values, in [-1, 1] on the valid frames.
        variance: fraction of the displacement energy the K keys reproduce, in [0, 1].
        max_error_mm, rms_error_mm: vertex reconstruction error over the valid frames, millimetres
            (local units taken as metres).
    """

    def __init__(self, keys, coefficients, variance, max_error_mm, rms_error_mm):
        self.keys, self.coefficients, self.variance = keys, coefficients, variance
        self.max_error_mm, self.rms_error_mm = max_error_mm, rms_error_mm

    def report(self) -> dict:
        return {"keys": int(len(self.keys)), "variance": float(self.variance),
                "max_error_mm": float(self.max_error_mm), "rms_error_mm": float(self.rms_error_mm)}


def compress_displacements(displacements: np.ndarray, valid: np.ndarray, variance: float = 0.995,
                           max_keys: int = 16) -> Compression:
    """Compress (T, N, 3) displacements from the rest shape into K <= ``max_keys`` keys (see module doc).

    Args:
        displacements: (T, N, 3) per-frame vertex offsets from rest, object-local units (metres).
        valid: (T,) bool, frames used for the fit and the error (others get coefficients too).
        variance: energy fraction to reach, in (0, 1].
        max_keys: upper bound on K.
    """
    d = np.asarray(displacements, np.float64)
    t, n, _ = d.shape
    flat = d.reshape(t, n * 3)
    fit = flat[np.asarray(valid, bool)]
    if not len(fit):
        raise FaceKeyError("no_face", "The take has no valid (tracked) frame to bake.",
                           "Use footage where the face is visible, or check the face index.")
    _, sing, vt = np.linalg.svd(fit, full_matrices=False)
    energy = sing ** 2
    if energy.sum() <= 0.0:
        raise FaceKeyError("bad_argument", "The take moves no vertex of this mesh.",
                           "Check that the mesh is a face in metres, Z up, facing -Y, and that the take has motion.")
    frac = np.cumsum(energy) / energy.sum()
    k = int(min(max_keys, np.searchsorted(frac, variance - 1e-12) + 1))
    basis = vt[:k]                                                   # (K, 3N) orthonormal
    coeff = flat @ basis.T                                           # (T, K)
    scale = np.abs(coeff[np.asarray(valid, bool)]).max(0)
    scale = np.where(scale > 0, scale, 1.0)
    recon = (fit @ basis.T) @ basis
    err = np.linalg.norm((recon - fit).reshape(len(fit), n, 3), axis=-1) * 1000.0
    return Compression(keys=(basis * scale[:, None]).reshape(k, n, 3), coefficients=coeff / scale,
                       variance=float(frac[k - 1]), max_error_mm=float(err.max()),
                       rms_error_mm=float(np.sqrt((err ** 2).mean())))


def add_corrective_keys(obj, prefix: str, keys: np.ndarray) -> list[str]:
    """Add ``keys`` (K, N, 3) as new shape keys ``<prefix>_c00``.. on mesh ``obj``; return their names.

    Each key's positions are the reference key's plus its offset; ``slider_min`` = -1, value 0.
    A Basis is created from the mesh when the object has no shape keys; nothing else is written.
    """
    if obj.type != "MESH":
        raise FaceKeyError("bad_argument", f"Object '{obj.name}' is a {obj.type}, not a mesh.",
                           "Pick the character's head mesh object.")
    if keys.shape[1] != len(obj.data.vertices):
        raise FaceKeyError("bad_argument", f"{keys.shape[1]} key points but '{obj.name}' has "
                           f"{len(obj.data.vertices)} vertices.", "Retarget onto this object's own mesh again.")
    if obj.data.shape_keys is None:
        obj.shape_key_add(name="Basis", from_mix=False)
    ref = obj.data.shape_keys.reference_key
    rest = np.empty(len(ref.data) * 3, np.float32)
    ref.data.foreach_get("co", rest)
    names = []
    for i, offset in enumerate(keys):
        kb = obj.shape_key_add(name=f"{prefix}_c{i:02d}", from_mix=False)
        kb.data.foreach_set("co", (rest + offset.reshape(-1)).astype(np.float32))
        kb.slider_min, kb.value = -1.0, 0.0
        names.append(kb.name)
    obj.data.update()
    return names
