"""S2D-Dec: sparse landmark displacements -> dense mesh displacements (product side).

Sparse2Dense mesh decoder of Otberdout et al. (CVPR 2022, "Sparse to Dense
Dynamic 3D Facial Expression Generation"): the displacements of the 68 iBUG
landmarks from the neutral face (mesh vertices
:data:`backend.tracking.ibug68.MEDIAPIPE_TO_IBUG68`) are expanded to the
displacement of every vertex of the built-in model's 478-vertex topology;
adding it to any neutral of that topology gives the expressive mesh.

The decoder is residual on a fixed baseline: an inverse-distance-weighted
interpolation of the landmark displacements (each vertex blends its
``neighbours`` nearest landmarks on the canonical neutral with weights
``1 / distance ** power``; a landmark vertex takes exactly its landmark's
displacement).  A stack of spiral convolutions (SpiralNet++, as the paper,
reusing :class:`backend.retarget.serep.SpiralConv`) adds a learned
correction; each vertex's input features are its interpolated displacement
and a per-vertex latent, a linear lift of the whole 204-d input.  The last
layer starts at zero, so an untrained decoder is exactly the interpolation.
The correction is taken relative to the correction of a zero input, so a
neutral input decodes to exactly zero displacement.  Inside the network
displacements are centimetres; the API takes and returns metres.

Trained by ``python -m training.s2d.train`` (weights ``s2d.safetensors`` +
``config.json`` in one folder); the product loads it with :func:`load_s2d`,
which checks every tensor name and shape.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from backend.facemodel import load_face_model
from backend.protocol.errors import FaceKeyError
from backend.weightsfile import CONFIG_NAME, load_net
from backend.retarget.serep import CM, SpiralConv, spiral_indices
from backend.tracking.ibug68 import MEDIAPIPE_TO_IBUG68

__all__ = ["S2DConfig", "S2DDecoder", "decode_dense", "interpolation_weights", "vertex_weights", "load_s2d",
           "WEIGHTS_NAME", "CONFIG_NAME"]

WEIGHTS_NAME = "s2d.safetensors"
_TRAIN_HINT = "Train it with python -m training.s2d.train --config base --out DIR and pass DIR (or its s2d.safetensors)."


@dataclasses.dataclass(frozen=True)
class S2DConfig:
    """Network size: ``channels`` per spiral block, spiral length, per-vertex latent size of the input
    lift, and the baseline interpolation (``neighbours`` nearest landmarks, weights 1 / distance ** ``power``)."""

    channels: tuple[int, ...] = (32, 32)
    spiral_length: int = 9
    latent: int = 8
    neighbours: int = 4
    power: float = 2.0


def _landmark_distances() -> np.ndarray:
    """(478, 68) float64 metres: canonical-neutral distance from each vertex to each landmark vertex."""
    v = load_face_model().neutral.astype(np.float64)
    return np.linalg.norm(v[:, None] - v[list(MEDIAPIPE_TO_IBUG68)][None], axis=-1)


def interpolation_weights(neighbours: int = 4, power: float = 2.0) -> np.ndarray:
    """(478, 68) float32 baseline interpolation matrix, rows summing to 1: dense = W @ sparse.

    Row i weights vertex i's ``neighbours`` nearest landmarks (canonical neutral) by
    ``1 / distance ** power``; a landmark vertex's row is one-hot on its landmark.
    """
    d = _landmark_distances()
    idx = np.argsort(d, axis=1, kind="stable")[:, :neighbours]
    near = np.take_along_axis(d, idx, axis=1)
    w = np.zeros_like(d)
    np.put_along_axis(w, idx, 1.0 / np.maximum(near, 1e-9) ** power, axis=1)
    w /= w.sum(1, keepdims=True)
    lm = list(MEDIAPIPE_TO_IBUG68)
    w[lm] = np.eye(len(lm))
    return w.astype(np.float32)


def vertex_weights() -> np.ndarray:
    """(478,) float32 per-vertex weights of the paper's weighted L1 loss, in [0, 1].

    ``w_i = 1 / distance(vertex i, its closest landmark)`` on the canonical neutral, divided by
    the largest such value over the non-landmark vertices; landmark vertices (distance 0) get 1.
    """
    d = _landmark_distances().min(axis=1)
    on = d < 1e-9
    w = np.ones(len(d))
    w[~on] = (1.0 / d[~on]) / (1.0 / d[~on]).max()
    return w.astype(np.float32)


class S2DDecoder(nn.Module):
    """(B, 68, 3) landmark displacements -> (B, 478, 3) vertex displacements, both centimetres.

    ``forward`` = interpolation baseline + learned correction (see the module docstring);
    use :func:`decode_dense` for metres and numpy.
    """

    def __init__(self, cfg: S2DConfig):
        super().__init__()
        model = load_face_model()
        self.cfg = cfg
        self.n = model.num_vertices
        spiral = torch.from_numpy(spiral_indices(model.neutral, model.triangles, cfg.spiral_length))
        self.register_buffer("interp", torch.from_numpy(interpolation_weights(cfg.neighbours, cfg.power)),
                             persistent=False)
        k = len(MEDIAPIPE_TO_IBUG68)
        self.lift = nn.Linear(k * 3, self.n * cfg.latent)
        chans = (3 + cfg.latent,) + tuple(cfg.channels)
        self.blocks = nn.ModuleList(SpiralConv(a, b, spiral) for a, b in zip(chans[:-1], chans[1:]))
        self.out = SpiralConv(chans[-1], 3, spiral)
        nn.init.zeros_(self.out.linear.weight)      # start as the interpolation baseline
        nn.init.zeros_(self.out.linear.bias)

    def baseline(self, sparse: torch.Tensor) -> torch.Tensor:
        """(B, 68, 3) -> (B, 478, 3): the inverse-distance-weighted interpolation (any unit)."""
        return self.interp @ sparse

    def forward(self, sparse: torch.Tensor) -> torch.Tensor:
        base = self.baseline(sparse)
        # one extra all-zero sample: its correction is subtracted so a neutral input gives exactly 0
        x = torch.cat([sparse, sparse.new_zeros((1,) + sparse.shape[1:])])
        b = len(x)
        h = torch.cat([torch.cat([base, base.new_zeros((1,) + base.shape[1:])]),
                       self.lift(x.flatten(1)).reshape(b, self.n, self.cfg.latent)], -1)
        for blk in self.blocks:
            h = nn.functional.elu(blk(h))
        corr = self.out(h)
        return base + corr[:-1] - corr[-1:]


@torch.no_grad()
def decode_dense(net: S2DDecoder, sparse: np.ndarray, batch: int = 512) -> np.ndarray:
    """(..., 68, 3) landmark displacements in metres -> (..., 478, 3) float32 vertex displacements, metres."""
    s = np.asarray(sparse, np.float32)
    k = len(MEDIAPIPE_TO_IBUG68)
    if s.ndim < 2 or s.shape[-2:] != (k, 3):
        raise FaceKeyError("bad_argument", f"landmark displacements must have shape (..., {k}, 3), got {s.shape}",
                           "Pass the 68 iBUG landmarks' displacements from the neutral, in metres.")
    flat = torch.from_numpy(s.reshape(-1, k, 3)) / CM
    device = next(net.parameters()).device
    out = [net(flat[i:i + batch].to(device)).cpu() * CM for i in range(0, len(flat), batch)]
    dense = torch.cat(out).numpy() if out else np.zeros((0, net.n, 3), np.float32)
    return dense.reshape(s.shape[:-2] + (net.n, 3))


def load_s2d(path: str | Path) -> S2DDecoder:
    """Load trained S2D-Dec weights (eval mode, CPU) with a name and shape check.

    Args:
        path: a folder holding ``s2d.safetensors`` + ``config.json``, or the
            ``.safetensors`` file itself (its ``config.json`` beside it).

    Raises:
        FaceKeyError ``weights_missing`` (no file) or ``weights_invalid``
        (unreadable, missing/extra tensors or wrong shapes).
    """
    def build(c: dict) -> S2DDecoder:
        return S2DDecoder(S2DConfig(channels=tuple(int(x) for x in c["channels"]), spiral_length=int(c["spiral_length"]),
                                    latent=int(c["latent"]), neighbours=int(c["neighbours"]), power=float(c["power"])))
    return load_net(path, WEIGHTS_NAME, "S2D-Dec", _TRAIN_HINT, build)
