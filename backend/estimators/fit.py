"""Batched landmark fitting of the face model (torch): pose, identity, expression.

All tensors are float32 on one device.  Shapes: T frames, N = 478 vertices,
K identity components, 52 units.  Residuals are measured in millimetres at
the face (pixel residual x depth / focal), so weights of the loss terms do
not depend on image resolution or face size.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import numpy as np
import torch

from backend.facemodel import FaceModel
from backend.facemodel.canonical import LEFT_EYE, LEFT_IRIS, NUM_MESH, RIGHT_EYE, RIGHT_IRIS
from backend.facemodel.regions import BROW_LEFT, LIPS, STABLE
from backend.protocol.arkit import EXCLUSIVE_PAIRS, INDEX

from .camera import FACE_WIDTH_M

__all__ = ["FitTerms", "landmark_weights", "axis_angle_to_matrix", "Fitter"]

#: Soft-L1 scale of the landmark residual, millimetres.
ROBUST_MM = 2.0


@dataclasses.dataclass
class FitTerms:
    """Strengths of the loss terms (data term is in mm^2 per landmark, ~noise^2)."""

    sparsity: float = 3.0       # L1 on weights, per unit of weight
    exclusive: float = 60.0     # CPEM expression-exclusive loss
    smoothing: float = 10.0     # squared first differences of weights between valid neighbours
    pose_smoothing: float = 1e4  # squared first differences of rotation (rad) and translation (m x 10)
    identity_prior: float = 1.0  # Gaussian prior on identity coefficients (1/2 |a|^2 per unit)
    close_limit: float = 60.0   # mouthClose may not exceed jawOpen


def landmark_weights(model: FaceModel) -> np.ndarray:
    """(N,) float32 per-landmark data weights: eyes, iris, lips and brows count more."""
    w = np.ones(model.num_vertices, np.float32)
    eyes = [e[k] for e in (LEFT_EYE, RIGHT_EYE) for k in ("outer", "inner")]
    eyes += [i for e in (LEFT_EYE, RIGHT_EYE) for k in ("upper", "lower") for i in e[k]]
    w[eyes] = 3.0
    w[list(LEFT_IRIS + RIGHT_IRIS)] = 2.0
    w[list(LIPS)] = 2.0
    brows = list(BROW_LEFT) + [int(model.mirror[i]) for i in BROW_LEFT]
    w[brows] = 1.5
    return w


def axis_angle_to_matrix(r: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle (radians) -> (..., 3, 3) rotation matrices (Rodrigues, safe at 0)."""
    theta2 = (r * r).sum(-1, keepdim=True)
    theta = torch.sqrt(theta2 + 1e-12)
    small = theta2 < 1e-8
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta2.clamp_min(1e-12))
    x, y, z = r.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(r.shape[:-1] + (3, 3))
    eye = torch.eye(3, dtype=r.dtype, device=r.device).expand_as(k)
    return eye + a[..., None] * k + b[..., None] * (k @ k)


class Fitter:
    """Holds the model tensors and observations of one clip; runs the fitting stages.

    Args:
        model: the face model.
        obs: (T, N, 2) float32 pixel landmarks (x right, y down); rows of
            invalid frames are ignored.
        valid: (T,) bool.
        focal: focal length, pixels.
        size: (width, height) pixels.
        terms: loss strengths.
        device: torch device string.
        cancel: callable raising when the user cancelled (checked between iterations).
    """

    def __init__(self, model: FaceModel, obs: np.ndarray, valid: np.ndarray, focal: float,
                 size: tuple[int, int], terms: FitTerms, device: str, cancel: Callable[[], None]):
        self.dev = torch.device(device)
        f32 = dict(dtype=torch.float32, device=self.dev)
        self.model = model
        self.neutral = torch.tensor(model.neutral, **f32)
        self.deltas = torch.tensor(model.unit_deltas, **f32)
        self.basis = torch.tensor(model.identity_basis, **f32)
        self.valid = np.asarray(valid, bool)
        self.vidx = np.flatnonzero(self.valid)
        self.obs = torch.as_tensor(np.nan_to_num(obs[self.vidx]), **f32)
        self.focal, self.size = float(focal), size
        self.lw = torch.as_tensor(landmark_weights(model), **f32)
        self.terms = terms
        self.cancel = cancel
        pairs = np.array(EXCLUSIVE_PAIRS)
        self.pair_a = torch.as_tensor(pairs[:, 0], device=self.dev)
        self.pair_b = torch.as_tensor(pairs[:, 1], device=self.dev)
        # consecutive valid frames (in the valid-only indexing)
        self.nb = torch.as_tensor(np.flatnonzero(np.diff(self.vidx) == 1), device=self.dev)
        self.identity = torch.zeros(model.num_identity, **f32)
        self.weights = torch.zeros(len(self.vidx), 52, **f32)
        self.rot = torch.zeros(len(self.vidx), 3, **f32)
        self.trans = torch.zeros(len(self.vidx), 3, **f32)
        self.mm_per_px = torch.ones(len(self.vidx), **f32)
        self._init_translation()

    # -- geometry -----------------------------------------------------------------------------
    def project(self, verts: torch.Tensor, rot: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) head-frame vertices -> (B, N, 2) pixels for poses (B, 3), (B, 3)."""
        cam = verts @ axis_angle_to_matrix(rot).transpose(-1, -2) + trans[:, None, :]
        depth = (-cam[..., 2]).clamp_min(1e-3)
        u = self.size[0] / 2.0 + self.focal * cam[..., 0] / depth
        v = self.size[1] / 2.0 - self.focal * cam[..., 1] / depth
        return torch.stack([u, v], -1)

    def shape(self, weights: torch.Tensor, identity: torch.Tensor, idx: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, 52), (K,) -> (B, n, 3) head-frame vertices in metres (n = len(idx), or N)."""
        neutral, basis, deltas = self.neutral, self.basis, self.deltas
        if idx is not None:
            neutral, basis, deltas = neutral[idx], basis[:, idx], deltas[:, idx]
        n = neutral.shape[0]
        flat = neutral.reshape(1, -1) + (identity @ basis.reshape(len(identity), -1))[None] \
            + weights @ deltas.reshape(52, -1)
        return flat.reshape(weights.shape[0], n, 3)

    def _init_translation(self) -> None:
        o = self.obs
        width = (o[:, 454] - o[:, 234]).norm(dim=-1).clamp_min(1.0)
        depth = self.focal * FACE_WIDTH_M / width
        centre = o[:, :NUM_MESH].mean(1)
        x = (centre[:, 0] - self.size[0] / 2.0) * depth / self.focal
        y = -(centre[:, 1] - self.size[1] / 2.0) * depth / self.focal
        c = self.neutral[:NUM_MESH].mean(0)
        self.trans = torch.stack([x - c[0], y - c[1], -depth - c[2]], -1)
        self.mm_per_px = depth / self.focal * 1000.0

    # -- losses -------------------------------------------------------------------------------
    def data_loss(self, sel, weights, identity, rot, trans, landmarks=None) -> torch.Tensor:
        """Sum over frames of the weighted soft-L1 landmark residual (mm^2 scale)."""
        pred = self.project(self.shape(weights, identity, landmarks), rot, trans)
        obs = self.obs[sel]
        lw = self.lw
        if landmarks is not None:
            obs, lw = obs[:, landmarks], lw[landmarks]
        r2 = ((pred - obs) ** 2).sum(-1) * (self.mm_per_px[sel] ** 2)[:, None]
        rho = ROBUST_MM ** 2 * (torch.sqrt(1.0 + r2 / ROBUST_MM ** 2) - 1.0)
        return (rho * lw).sum()

    def prior_loss(self, weights: torch.Tensor, nb: Optional[torch.Tensor]) -> torch.Tensor:
        t = self.terms
        loss = t.sparsity * weights.sum()
        if t.exclusive > 0:
            wa, wb = weights[:, self.pair_a], weights[:, self.pair_b]
            loss = loss + t.exclusive * (torch.minimum(wa, wb) ** 2).sum()
        excess = torch.relu(weights[:, INDEX["mouthClose"]] - weights[:, INDEX["jawOpen"]])
        loss = loss + t.close_limit * (excess ** 2).sum()
        if nb is not None and len(nb) and t.smoothing > 0:
            loss = loss + t.smoothing * ((weights[nb + 1] - weights[nb]) ** 2).sum()
        return loss

    def pose_smooth_loss(self, rot, trans, nb) -> torch.Tensor:
        if nb is None or not len(nb) or self.terms.pose_smoothing <= 0:
            return rot.sum() * 0.0
        d = ((rot[nb + 1] - rot[nb]) ** 2).sum() + 100.0 * ((trans[nb + 1] - trans[nb]) ** 2).sum()
        return self.terms.pose_smoothing * d

    # -- stages -------------------------------------------------------------------------------
    def _run(self, params: list[dict], closure, iters: int, on_iter=None) -> None:
        """Adam with a cosine learning-rate decay from each group's ``lr`` to 5% of it."""
        opt = torch.optim.Adam(params)
        base = [g["lr"] for g in opt.param_groups]
        for it in range(iters):
            self.cancel()
            frac = it / max(iters - 1, 1)
            for g, lr in zip(opt.param_groups, base):
                g["lr"] = lr * (0.05 + 0.95 * 0.5 * (1.0 + np.cos(np.pi * frac)))
            opt.zero_grad(set_to_none=True)
            loss = closure()
            loss.backward()
            opt.step()
            if on_iter is not None:
                on_iter(it)

    def fit_rigid(self, iters: int = 100) -> None:
        """Stage (a): pose of every valid frame on stable landmarks, neutral face."""
        rot = self.rot.clone().requires_grad_(True)
        trans = self.trans.clone().requires_grad_(True)
        w0 = torch.zeros(len(self.vidx), 52, device=self.dev)
        stable = torch.as_tensor(list(STABLE), device=self.dev)
        sel = slice(None)

        def closure():
            return self.data_loss(sel, w0, self.identity, rot, trans, stable) + self.pose_smooth_loss(rot, trans, self.nb)

        self._run([{"params": [rot], "lr": 0.03}, {"params": [trans], "lr": 0.003}], closure, iters)
        self.rot, self.trans = rot.detach(), trans.detach()
        self.mm_per_px = (-self.trans[:, 2]) / self.focal * 1000.0

    def fit_identity(self, frames: np.ndarray, iters: int = 500) -> None:
        """Stage (b) on a subset of valid frames (indices into the valid frames).

        First half: identity + pose with the weights held at 0 (most frames of a
        performance are near neutral, and the robust loss discounts the rest),
        so a constant offset is explained by the actor, not by a constant
        expression.  Second half: identity + pose + expression jointly.
        """
        sel = torch.as_tensor(frames, device=self.dev)
        ident = self.identity.clone().requires_grad_(True)
        w = self.weights[sel].clone().requires_grad_(True)
        rot = self.rot[sel].clone().requires_grad_(True)
        trans = self.trans[sel].clone().requires_grad_(True)
        t = self.terms
        zeros = torch.zeros_like(w)

        def neutral_closure():
            return self.data_loss(sel, zeros, ident, rot, trans) + 0.5 * t.identity_prior * (ident ** 2).sum()

        def joint_closure():
            return (self.data_loss(sel, w, ident, rot, trans) + self.prior_loss(w, None)
                    + 0.5 * t.identity_prior * (ident ** 2).sum())

        def project_weights(_):
            with torch.no_grad():
                w.clamp_(0.0, 1.0)

        pose = [{"params": [rot], "lr": 0.005}, {"params": [trans], "lr": 0.0005}]
        self._run([{"params": [ident], "lr": 0.05}] + pose, neutral_closure, iters // 2)
        self._run([{"params": [ident], "lr": 0.02}, {"params": [w], "lr": 0.03}] + pose, joint_closure,
                  iters - iters // 2, project_weights)
        self.identity = ident.detach()

    def fit_expressions(self, iters: int = 250, on_iter=None) -> None:
        """Stage (c): weights + pose of every valid frame, identity frozen, temporal smoothness."""
        w = self.weights.clone().requires_grad_(True)
        rot = self.rot.clone().requires_grad_(True)
        trans = self.trans.clone().requires_grad_(True)
        sel = slice(None)

        def closure():
            return (self.data_loss(sel, w, self.identity, rot, trans) + self.prior_loss(w, self.nb)
                    + self.pose_smooth_loss(rot, trans, self.nb))

        def step(it):
            with torch.no_grad():
                w.clamp_(0.0, 1.0)
            if on_iter is not None:
                on_iter(it)

        self._run([{"params": [w], "lr": 0.03}, {"params": [rot], "lr": 0.005},
                   {"params": [trans], "lr": 0.0005}], closure, iters, step)
        self.weights, self.rot, self.trans = w.detach(), rot.detach(), trans.detach()
