"""Place the ARKit units on another actor's neutral face (same topology)."""
from __future__ import annotations

import numpy as np

from backend.protocol.errors import FaceKeyError

from .canonical import NUM_MESH
from .model import FaceModel, load_face_model

__all__ = ["transfer_units"]

_RADIUS = 0.015  # neighbourhood for local size, metres


def _neighbourhoods(v: np.ndarray) -> np.ndarray:
    """(N, 468) Gaussian neighbourhood weights (radius ``_RADIUS``) of each vertex, rows sum to 1."""
    d2 = ((v[:, None, :] - v[None, :NUM_MESH, :]) ** 2).sum(-1)
    k = np.exp(-d2 / (2 * _RADIUS ** 2))
    return k / k.sum(1, keepdims=True)


def _local_spread(k: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    """(N, 3) per-axis weighted standard deviation of ``mesh`` (468, 3) under neighbourhoods ``k``."""
    mean = k @ mesh
    return np.sqrt(np.maximum(k @ (mesh ** 2) - mean ** 2, 1e-12))


def transfer_units(neutral_other: np.ndarray, model: FaceModel | None = None) -> np.ndarray:
    """Unit deltas for another actor so each unit means the same motion on that face.

    The canonical deltas are scaled per vertex and per axis by the ratio of
    the other face's local extent to the canonical one (Gaussian
    neighbourhoods of 15 mm taken on the canonical face), so a smaller eye gets a proportionally smaller
    blink and a longer jaw a longer jawOpen.  Both faces must be in the head
    frame with the same vertex order.

    Args:
        neutral_other: (N, 3) metres, the other actor's neutral face (N = 478,
            or 468 without iris points).
        model: the face model (default: the built-in one).

    Returns:
        (52, N, 3) float32 metres.
    """
    m = model or load_face_model()
    other = np.asarray(neutral_other, np.float64)
    n = other.shape[0] if other.ndim == 2 else -1
    if other.ndim != 2 or other.shape[1] != 3 or n not in (NUM_MESH, m.num_vertices):
        raise FaceKeyError("bad_argument", f"neutral_other must have shape ({m.num_vertices}, 3) or ({NUM_MESH}, 3), "
                           f"got {other.shape}", "Pass a neutral face on the MediaPipe 478-landmark topology, in metres.")
    if not np.all(np.isfinite(other)):
        raise FaceKeyError("bad_argument", "neutral_other contains NaN or infinite values",
                           "Pass a complete neutral face (no missing vertices).")
    canon = m.neutral[:n].astype(np.float64)
    k = _neighbourhoods(canon)
    ratio = _local_spread(k, other[:NUM_MESH]) / _local_spread(k, canon[:NUM_MESH])
    return (m.unit_deltas[:, :n] * ratio[None]).astype(np.float32)
