"""SEREP losses on (B, N, 3) centimetre-offset meshes (see ``backend.retarget.serep``).

* reconstruction: L1 between a decoded mesh and its ground truth;
* delta: the retargeted displacement (decoded target minus target neutral)
  equals the source displacement (source minus source neutral), squared;
* edge: squared difference of edge lengths between a decoded mesh and its
  ground truth (SEREP regularises edges to avoid jagged surfaces; with the
  synthetic pairs the true target is known, so it is the reference);
* cycle: the expression code of the retargeted mesh equals the source code.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["reconstruction_loss", "delta_loss", "edge_loss", "cycle_loss", "mesh_edges"]


def mesh_edges(triangles) -> torch.Tensor:
    """(E, 2) int64 unique undirected edges of (F, 3) triangles."""
    t = torch.tensor(np.asarray(triangles), dtype=torch.int64)
    e = torch.cat([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]])
    return torch.unique(torch.sort(e, 1).values, dim=0)


def reconstruction_loss(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean absolute vertex coordinate error."""
    return (pred - true).abs().mean()


def delta_loss(pred_tgt, neutral_tgt, src, neutral_src) -> torch.Tensor:
    """Mean squared difference of the target and source displacements."""
    return ((pred_tgt - neutral_tgt) - (src - neutral_src)).pow(2).mean()


def edge_loss(pred: torch.Tensor, true: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Mean squared edge-length difference (edges (E, 2))."""
    def lengths(x):
        return (x[:, edges[:, 0]] - x[:, edges[:, 1]]).norm(dim=-1)
    return (lengths(pred) - lengths(true)).pow(2).mean()


def cycle_loss(z_exp: torch.Tensor, z_exp_cycle: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of expression codes (B, D)."""
    return (z_exp - z_exp_cycle).pow(2).mean()
