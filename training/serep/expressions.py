"""Identity-dependent expressions for SEREP's training and evaluation meshes (deformation transfer).

The built-in face model is linear and identity-blind: every actor opens the
jaw by the same vertex displacements.  Real faces do not: the same semantic
expression moves a long face, a wide face or a deep-set eye differently,
which is the premise of SEREP's semantic (not displacement-level)
expression code.  So the training and held-out meshes give each actor its
own expression shapes by *deformation transfer* (Sumner & Popovic 2004) of
the canonical units onto the actor's neutral:

* per triangle of the canonical mesh and unit ``k``, the deformation
  gradient ``F_k = V_k V_0^-1`` (3 x 3), with ``V = [v1 - v0, v2 - v0, n]``
  and ``n`` the triangle normal scaled by ``1 / sqrt(|n|)`` (Sumner's fourth
  vertex);
* on the actor, the displacement ``u`` (468, 3) whose triangle edges best
  match ``(F(w) - I) e`` for every edge ``e`` of the actor's neutral
  triangles, with ``F(w) - I = sum_k w_k (F_k - I)`` (least squares over all
  triangle edges; a 1e-3 pull toward the plain displacement fixes the free
  translation);
* the ten iris points keep the canonical displacement of their units.

The result is linear in the weights (a blend of per-unit transfers, as a
rigger would build an actor's blendshapes), equal to the canonical deltas
on the canonical face, and differs from copying displacements wherever the
actor's surface is oriented or sized differently.  Shapes: (B, 52) weights,
(B, K) identities, (B, 478, 3) metres in the head frame.
"""
from __future__ import annotations

import numpy as np

from backend.facemodel import load_face_model
from backend.facemodel.canonical import NUM_MESH

__all__ = ["IdentityExpressions"]

#: Weight of the pull toward the plain displacement (fixes translation; edges weigh 1 each).
_ANCHOR = 1e-3


def _frames(v: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """(..., F, 3, 3) Sumner frames [e1, e2, n / sqrt|n|] as columns of triangles ``tri`` of ``v`` (..., N, 3)."""
    e1 = v[..., tri[:, 1], :] - v[..., tri[:, 0], :]
    e2 = v[..., tri[:, 2], :] - v[..., tri[:, 0], :]
    n = np.cross(e1, e2)
    n = n / np.sqrt(np.linalg.norm(n, axis=-1, keepdims=True))
    return np.stack([e1, e2, n], axis=-1)


class IdentityExpressions:
    """Meshes of actors making expressions, each with its own deformation-transferred units."""

    def __init__(self):
        m = self.model = load_face_model()
        tri = self.tri = np.asarray(m.triangles, np.int64)
        v0 = m.neutral[:NUM_MESH].astype(np.float64)
        deltas = m.unit_deltas[:, :NUM_MESH].astype(np.float64)                  # (52, 468, 3)
        rest = np.linalg.inv(_frames(v0, tri))                                   # (F, 3, 3)
        grads = np.einsum("kfij,fjl->kfil", _frames(v0[None] + deltas, tri), rest)
        self.grad_minus_i = (grads - np.eye(3)).reshape(len(deltas), -1)         # (52, F * 9)
        # edges (i -> j) of every triangle; least squares sum |u_j - u_i - d_e|^2 + anchor |u - u_plain|^2
        self.edges = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])   # (3F, 2)
        n = NUM_MESH
        g = np.zeros((len(self.edges), n))
        g[np.arange(len(self.edges)), self.edges[:, 1]] = 1.0
        g[np.arange(len(self.edges)), self.edges[:, 0]] -= 1.0
        self.g_t = g.T                                                           # (468, 3F)
        self.solve = np.linalg.inv(g.T @ g + _ANCHOR * np.eye(n))                # (468, 468)

    def transfer(self, neutral: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """(B, 478, 3) float32 displacements of faces ``neutral`` (B, 478, 3) metres making ``weights`` (B, 52)."""
        m = self.model
        w = np.asarray(weights, np.float64)
        b, f = len(w), len(self.tri)
        plain = np.tensordot(w, m.unit_deltas.astype(np.float64), axes=([1], [0]))          # (B, 478, 3)
        dgrad = (w @ self.grad_minus_i).reshape(b, f, 3, 3)
        nv = np.asarray(neutral, np.float64)[:, :NUM_MESH]
        edge_vec = nv[:, self.edges[:, 1]] - nv[:, self.edges[:, 0]]                        # (B, 3F, 3)
        want = np.einsum("beij,bej->bei", dgrad[:, np.tile(np.arange(f), 3)], edge_vec)    # (B, 3F, 3)
        rhs = (self.g_t @ want.transpose(1, 0, 2).reshape(len(self.edges), -1)).reshape(NUM_MESH, b, 3)
        rhs = rhs + _ANCHOR * plain[:, :NUM_MESH].transpose(1, 0, 2)
        out = plain.copy()
        out[:, :NUM_MESH] = (self.solve @ rhs.reshape(NUM_MESH, -1)).reshape(NUM_MESH, b, 3).transpose(1, 0, 2)
        return out.astype(np.float32)

    def vertices(self, weights: np.ndarray, identity: np.ndarray) -> np.ndarray:
        """(B, 478, 3) float32 metres: actors ``identity`` (B, K) making ``weights`` (B, 52) with their own units."""
        ident = np.asarray(identity, np.float32)
        neutral = self.model.vertices(np.zeros((len(ident), 52), np.float32), ident)
        return neutral + self.transfer(neutral, weights)
