"""Batched Gauss-Newton fitting of the face model to 2D landmarks (torch).

The model is linear in expression weights and identity given the head pose,
``v = neutral + identity @ B_id + weights @ D``, so every stage is a small
least-squares problem per frame, linearised through the pinhole projection
and solved for all frames at once (no Python loop over frames):

* pose: Gauss-Newton on 6 parameters per frame (rotation increment, metres),
* weights: projected Newton on the box [0, 1] per frame, the normal
  equations ``H = J^T W J`` of size (T, 52, 52) with the priors added
  (L1 sparsity is a linear term on the box, CPEM's exclusive loss a diagonal
  penalty on the currently smaller unit of each pair, a quadratic cost on
  each weight above a knee (every unit but the eyes', this stage only) so
  near-tied units share weight rather than one saturating, smoothness a
  Jacobi coupling to the neighbouring frames),
* identity: solved jointly with the weights of a subset of frames through a
  Schur complement over the frames, then frozen;
* rest face (optional): the residual on frames the user marks as "at rest",
  lifted into the head frame and added to the neutral (:meth:`Fitter.fit_rest`);
  or identity and rest face both taken from an earlier solve of the same
  actor (:meth:`Fitter.use_actor`);
* head pose, last: Gauss-Newton on the pose alone with the tracker's depth as
  well as its image positions, the face held (:meth:`Fitter.fit_head_pose`).

Residuals are in millimetres at the face (pixel residual x depth / focal), so
the term strengths do not depend on image resolution or face size; the
landmark loss is soft-L1 (scale ``ROBUST_MM``) by iteratively reweighted
least squares, which down-weights occluded or mistracked landmarks.
Shapes: T frames, L landmarks used, K identity components, 52 units.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import numpy as np
import torch

from backend.facemodel import FaceModel
from backend.facemodel.canonical import LEFT_EYE, LEFT_IRIS, NUM_MESH, RIGHT_EYE, RIGHT_IRIS
from backend.facemodel.identity import is_detail
from backend.facemodel.regions import BROW_LEFT, LIPS, STABLE
from backend.protocol.arkit import ARKIT_NAMES, EXCLUSIVE_PAIRS, INDEX

from .camera import FACE_WIDTH_M

__all__ = ["FitTerms", "landmark_weights", "unit_costs", "solve_landmarks", "axis_angle_to_matrix",
           "matrix_to_axis_angle", "Fitter"]

#: Soft-L1 scale of the landmark residual, millimetres.
ROBUST_MM = 2.0
#: Smallest Geman-McClure scale of the redescending loss, millimetres.
REDESCEND_MM = 3.0
#: Geman-McClure scale = max(REDESCEND_MM, this x the frame's robust residual sigma (1.4826 MAD)).
REDESCEND_SIGMAS = 3.0


@dataclasses.dataclass
class FitTerms:
    """Strengths of the loss terms (data term: soft-L1 of the residual in mm, ~ 1/2 mm^2 per landmark)."""

    sparsity: float = 3.0       # L1 on weights, per unit of weight
    exclusive: float = 500.0    # CPEM exclusive loss: exclusive * min(w_a, w_b)^2 per pair
    smoothing: float = 10.0     # squared first differences of weights between valid neighbours
    pose_smoothing: float = 1e3  # squared first differences of rotation (rad) and translation (m x 10)
    # Gaussian prior on identity coefficients, identity_prior * 1/2 |a|^2, the same for a photo and
    # a long clip (the tracker's errors on one actor repeat from frame to frame).  Neutrals solved on
    # the two halves of 3 real clips differ by 1.25 / 0.94 / 3.44 mm at 30 and 0.97 / 0.86 / 1.66 mm
    # at 90; the synthetic identity error is 1.03 mm at 30, 1.15 mm at 90 (canonical 3.07 mm), the
    # weight MAE 0.026 and 0.027; at 300 the MAE rises to 0.031.
    identity_prior: float = 90.0
    close_limit: float = 500.0  # mouthClose may not exceed jawOpen: close_limit * relu(close - open)^2
    # A weight above ``knee`` costs ``above_knee * (w - knee)^2`` more, in the expression stage and for
    # every unit but the 14 eye units (blink, squint, wide, look: a closed lid is a real stop, blink at 1
    # is common, and the lids' few millimetres of motion would read a full blink as 0.8).  A jaw, mouth,
    # brow, cheek or nose unit pinned at 1 is rarely what a face does (the Live Link Face recording in
    # realdata never reaches 1), and near-tied explanations of one mouth (jawOpen vs mouthLowerDown +
    # mouthUpperUp, mouthFunnel vs mouthPucker) share the weight instead of one unit saturating.  That
    # recording rendered on its ARKit head and captured (default fidelity bench, side by side): frames
    # with a unit at 1 38% -> 0%, weight MAE 0.117 -> 0.104, units followed 18 -> 20 of 35,
    # mouthLowerDown read at 2.01 -> 1.33x the true weight, mouthPucker's correlation 0.52 -> 0.67;
    # synthetic weight MAE 0.0266 -> 0.0275; every real check as before, the extreme clip's brow raise
    # (95th percentile) 1.00 -> 0.87, a photo's smile 0.96 -> 0.78.  (0.5 / 300 compresses more:
    # synthetic MAE 0.0294; 0.7 / 300 leaves more over-read: rendered MAE 0.110 against 0.108.)
    knee: float = 0.6
    above_knee: float = 200.0
    # Stage (d): weight of the tracker's depth against a landmark's image position (see
    # :meth:`Fitter.fit_head_pose`).  Default bench, the rendered recording with the head turn: rotation
    # error median (p90) 3.45 (6.82) -> 3.06 (5.68) deg, pitch read at 0.80 -> 0.95 of the true one;
    # AFLW2000-3D NME 4.72 -> 4.49; synthetic held-pose jitter 0.27 -> 0.12 deg per frame.  On the first
    # 60 turned frames 0.25 / 0.5 / 1 gave a median of 2.66 / 2.80 / 3.22 deg (3.07 without); the real
    # talking clip's frame-to-frame turn, p95, is 0.70 deg without, 0.91 / 1.01 with 0.25 / 0.5 (the
    # tracker's depth is noisier than its x, y),
    # hence stage (d)'s pose smoothing, ``depth_smoothing`` x ``pose_smoothing``: at 1 / 10 / 30 / 100
    # that p95 is 0.91 / 0.85 / 0.72 / 0.56 deg (the talking clip's second difference, median, 0.25 deg
    # without stage (d), 0.27 / 0.23 / 0.18 / 0.12), the turned frames' median error 2.66 / 2.63 / 2.55 /
    # 2.52 deg and pitch read at 0.99 / 0.98 / 0.97 / 0.94 (a sweep sampled at 15 fps: smoothing lags it).
    depth: float = 0.25
    depth_smoothing: float = 30.0


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


#: Extra L1 cost (multiples of the sparsity) of units that are nearly invisible
#: in 2D or easily confused with identity: they fire only on clear evidence.
_UNIT_COST = {"jawForward": 5.0, "tongueOut": 8.0, "mouthRollLower": 2.0, "mouthRollUpper": 2.0,
              "mouthShrugLower": 2.0, "mouthShrugUpper": 2.0, "cheekPuff": 4.0, "mouthPressLeft": 1.5,
              "mouthPressRight": 1.5, "mouthDimpleLeft": 1.5, "mouthDimpleRight": 1.5}


def unit_costs() -> np.ndarray:
    """(52,) float32 per-unit multiplier of the L1 sparsity (1 for most units)."""
    c = np.ones(52, np.float32)
    for name, v in _UNIT_COST.items():
        c[INDEX[name]] = v
    return c


#: A frame whose tracker depths spread less than this (pixels, standard deviation) has none: its depth
#: rows get no weight (a face's depths spread by tens of pixels; a tracker without depth writes zeros).
DEPTH_MIN_SPREAD_PX = 0.5

#: Bisections of the exact line search (:meth:`Fitter._step_length`): the step to 2^-30 of the segment.
STEP_BISECTIONS = 30

#: MediaPipe's face-oval contour (jaw line, cheeks, forehead).
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)


def solve_landmarks(model: FaceModel, extra: int = 40) -> np.ndarray:
    """(L,) int sorted landmark subset used by the fit (about 230 of 478).

    Every lid, iris, lip, brow, stable, face-oval, lid-ring, cheek and
    nose-wing point, both sides, plus ``extra`` points spread over the rest
    of the mesh (farthest-point order from the kept set): the units move
    smooth regions, so the dropped interior points add little but cost time.
    """
    from backend.facemodel.regions import (CHEEK_LEFT, LID_LOWER_RING2_LEFT, LID_UPPER_RING2_LEFT,
                                           NOSE_WING_LEFT)
    left = [e[k] for e in (LEFT_EYE, RIGHT_EYE) for k in ("outer", "inner")]
    left += [i for e in (LEFT_EYE, RIGHT_EYE) for k in ("upper", "lower") for i in e[k]]
    left += list(BROW_LEFT + LID_UPPER_RING2_LEFT + LID_LOWER_RING2_LEFT + CHEEK_LEFT + NOSE_WING_LEFT)
    keep = set(left) | {int(model.mirror[i]) for i in left}
    keep |= set(LIPS) | set(STABLE) | set(FACE_OVAL) | set(LEFT_IRIS) | set(RIGHT_IRIS)
    v = model.neutral[:NUM_MESH].astype(np.float64)
    kept = sorted(i for i in keep if i < NUM_MESH)
    dist = np.linalg.norm(v[:, None] - v[kept][None], axis=-1).min(1)
    for _ in range(extra):
        i = int(dist.argmax())
        keep.add(i)
        dist = np.minimum(dist, np.linalg.norm(v - v[i], axis=1))
    return np.array(sorted(keep), np.int64)


def axis_angle_to_matrix(r: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle (radians) -> (..., 3, 3) rotation matrices (Rodrigues, safe at 0)."""
    theta2 = (r * r).sum(-1, keepdim=True)
    theta = torch.sqrt(theta2 + 1e-12)
    small = theta2 < 1e-8
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta2.clamp_min(1e-12))
    k = _skew(r)
    eye = torch.eye(3, dtype=r.dtype, device=r.device).expand_as(k)
    return eye + a[..., None] * k + b[..., None] * (k @ k)


def matrix_to_axis_angle(m: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle vectors (radians, angles < pi)."""
    cos = ((m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2] - 1.0) / 2.0).clamp(-1.0, 1.0)
    angle = torch.arccos(cos)
    axis = torch.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1)
    s = torch.sin(angle)
    scale = torch.where(s > 1e-6, angle / (2.0 * torch.where(s > 1e-6, s, torch.ones_like(s))), 0.5)
    return axis * scale[..., None]


def _skew(r: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrices ``[r]_x``."""
    x, y, z = r.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(r.shape[:-1] + (3, 3))


def _neighbour_sum(x: torch.Tensor, nb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of each frame's valid neighbours' rows of ``x`` (T, D) and their count (T, 1).

    ``nb`` (P,) indexes frames i whose successor i + 1 is a consecutive valid frame.
    """
    s = torch.zeros_like(x)
    n = torch.zeros(x.shape[0], 1, dtype=x.dtype, device=x.device)
    if len(nb):
        s.index_add_(0, nb, x[nb + 1])
        s.index_add_(0, nb + 1, x[nb])
        one = torch.ones(len(nb), 1, dtype=x.dtype, device=x.device)
        n.index_add_(0, nb, one)
        n.index_add_(0, nb + 1, one)
    return s, n


#: Symmetric 3x3 components (xx, yy, zz, xy, xz, yz).
_SYM_I = [0, 1, 2, 0, 0, 1]
_SYM_J = [0, 1, 2, 1, 2, 2]
#: (3, 3) positions of the symmetric components in a 6-vector.
_SYM_FULL = [[0, 3, 4], [3, 1, 5], [4, 5, 2]]
_PRODUCTS: dict[int, tuple] = {}


def _pair_products(deltas: np.ndarray, tol: float = 1e-12) -> torch.Tensor:
    """Sparse (1378, 6L) float32 COO: unit pairs (k <= k', upper triangle) x (landmark, symmetric component).

    Entry ``[(k, k'), (l, ij)]`` is the coefficient of ``q_l[i, j]`` in
    ``D_{k,l}^T q_l D_{k',l}`` for a symmetric ``q_l``; ``deltas`` (52, L, 3) metres.
    Products below ``tol`` (m^2) are dropped: units are local.
    """
    d = np.asarray(deltas, np.float64)
    ti, tj = np.triu_indices(d.shape[0])
    a, b = d[ti], d[tj]                                                  # (P, L, 3)
    comps = [a[..., i] * b[..., j] + (a[..., j] * b[..., i] if i != j else 0.0) for i, j in zip(_SYM_I, _SYM_J)]
    g = np.stack(comps, -1).reshape(len(ti), -1)                         # (P, 6L)
    g[np.abs(g) < tol] = 0.0
    return torch.as_tensor(g, dtype=torch.float32).to_sparse().coalesce()


def _model_pair_products(model: FaceModel, idx: np.ndarray) -> torch.Tensor:
    """:func:`_pair_products` of ``model`` on landmarks ``idx`` (L,), computed once per model object and subset."""
    key = (id(model), tuple(int(i) for i in idx))
    hit = _PRODUCTS.get(key)
    if hit is None or hit[0] is not model:
        hit = (model, _pair_products(model.unit_deltas[:, idx]))
        _PRODUCTS[key] = hit
    return hit[1]


def _ridge(a: torch.Tensor) -> torch.Tensor:
    """(B, n, n) small Levenberg-Marquardt diagonal for ``a`` (B, n, n): keeps float32 Cholesky positive definite."""
    return torch.diag_embed(a.diagonal(dim1=1, dim2=2) * 1e-4 + 1e-2)


class Fitter:
    """Holds the model tensors and observations of one clip; runs the fitting stages.

    Args:
        model: the face model.
        obs: (T, N, 2) float32 pixel landmarks (x right, y down) indexed by
            model vertex; rows of invalid frames and vertices not in
            ``observed`` are ignored.
        valid: (T,) bool.
        focal: focal length, pixels.
        size: (width, height) pixels.
        terms: loss strengths.
        device: torch device string.
        cancel: callable raising when the user cancelled (checked between iterations).
        observed: (M,) int model vertices the tracker reports (e.g. the 68 of
            ``MEDIAPIPE_TO_IBUG68``), or None for all 478; the fit uses
            :func:`solve_landmarks` for a full track, else exactly ``observed``.
        obs_depth: (T, N) float32 the tracker's relative depth per model vertex, pixels in the image's
            x scale, smaller = closer (MediaPipe's z), or None; used by :meth:`fit_head_pose` only, and
            not where it is not finite or a frame's depths have no spread (a tracker without depth).
        occluded: (T, N) bool per model vertex, True where the landmark is
            hidden (a hand over the face), or None.  Hidden landmarks get no
            weight in any stage, so the shape the tracker invents under a hand
            is not read as expression: the units are told by what is still
            seen, the sparsity and the temporal smoothing.  (Holding units
            whose landmarks are mostly hidden on the value interpolated from
            the frames around was measured and left out: on synthetic clips
            with the lower face hidden for 1.5 s it scored weight MAE 0.035
            on those frames against 0.026 with the mask alone, 0.024 clean.)

    State after fitting (valid frames only, V of them): ``weights`` (V, 52),
    ``rmat`` (V, 3, 3) head-to-camera rotations, ``trans`` (V, 3) metres,
    ``identity`` (K,) over the anatomical components ``id_components`` (K,) of the
    model's identity basis (:meth:`full_identity` gives the model-sized vector).  The
    per-frame unknowns of the weight stages are
    ``x = [weights (52), rotation increment (3, radians), translation increment (3, metres)]``.
    """

    def __init__(self, model: FaceModel, obs: np.ndarray, valid: np.ndarray, focal: float,
                 size: tuple[int, int], terms: FitTerms, device: str, cancel: Callable[[], None],
                 observed: Optional[np.ndarray] = None, occluded: Optional[np.ndarray] = None,
                 obs_depth: Optional[np.ndarray] = None):
        self.dev = torch.device(device)
        f32 = dict(dtype=torch.float32, device=self.dev)
        self.model = model
        idx = solve_landmarks(model) if observed is None else np.unique(np.asarray(observed, np.int64))
        self.idx = torch.as_tensor(idx, device=self.dev)
        stable = [i for i in STABLE if i in set(idx.tolist())]
        self.stable = torch.as_tensor(stable if len(stable) >= 6 else idx, device=self.dev)
        self.neutral = torch.tensor(model.neutral, **f32)
        self.deltas = torch.tensor(model.unit_deltas, **f32)
        # the anatomical identity components only (detail fields stay at 0, see backend.facemodel.identity)
        self.id_components = np.array([k for k, n in enumerate(model.identity_names) if not is_detail(n)])
        self.basis = torch.tensor(model.identity_basis[self.id_components], **f32)
        # (L, 3, C) layouts of the unit and identity fields on the fitted landmarks
        self.basis_l = self.basis[:, self.idx].permute(1, 2, 0).contiguous()
        self.deltas_flat = self.deltas[:, self.idx].permute(1, 2, 0).reshape(-1, 52).contiguous()   # (3L, 52)
        self.pair_products = _model_pair_products(model, idx).to(self.dev)
        self.tri_i, self.tri_j = (torch.as_tensor(t, device=self.dev) for t in np.triu_indices(52))
        self.valid = np.asarray(valid, bool)
        self.vidx = np.flatnonzero(self.valid)
        self.obs = torch.as_tensor(np.nan_to_num(obs[self.vidx]), **f32)
        self.obs_depth = self.depth_seen = None
        if obs_depth is not None:
            z = np.asarray(obs_depth, np.float32)[self.vidx]
            seen = np.isfinite(z)
            spread = np.nanstd(np.where(seen, z, np.nan), axis=1) if seen.any(1).all() else np.zeros(len(z))
            seen &= (np.nan_to_num(spread) > DEPTH_MIN_SPREAD_PX)[:, None]
            self.obs_depth = torch.as_tensor(np.where(seen, z, 0.0), **f32)
            self.depth_seen = torch.as_tensor(seen, **f32)
        self.focal, self.centre = float(focal), torch.tensor([size[0] / 2.0, size[1] / 2.0], **f32)
        self.lw = torch.as_tensor(landmark_weights(model), **f32)
        self.unit_cost = torch.as_tensor(unit_costs(), **f32)
        self.knee_units = torch.as_tensor([not n.startswith("eye") for n in ARKIT_NAMES], **f32)
        self.terms = terms
        self.cancel = cancel
        self.redescend = False      # soft-L1 until fit_expressions switches to Geman-McClure
        # On a sparse scheme (68 points) identity and expression are too entangled
        # for the joint identity phase (it diverges): the identity comes from the neutral phase.
        self.joint_identity = observed is None
        pairs = np.array(EXCLUSIVE_PAIRS)
        self.pair_a = torch.as_tensor(pairs[:, 0], device=self.dev)
        self.pair_b = torch.as_tensor(pairs[:, 1], device=self.dev)
        # consecutive valid frames (in the valid-only indexing)
        self.nb = torch.as_tensor(np.flatnonzero(np.diff(self.vidx) == 1), device=self.dev)
        v = len(self.vidx)
        self.identity = torch.zeros(len(self.id_components), **f32)
        self.rest_offset = None     # (N, 3) metres added to the neutral by use_actor / fit_rest
        self.weights = torch.zeros(v, 52, **f32)
        self.rmat = torch.eye(3, **f32).repeat(v, 1, 1)
        self.trans = torch.zeros(v, 3, **f32)
        self.visible = None         # (V, N) landmark weight multipliers: 0 where occluded
        if occluded is not None and np.asarray(occluded)[self.vidx].any():
            self.visible = torch.as_tensor(~np.asarray(occluded, bool)[self.vidx], **f32)
        self._init_translation()

    def full_identity(self) -> np.ndarray:
        """(model.num_identity,) float32 identity coefficients, the detail components 0."""
        out = np.zeros(self.model.num_identity, np.float32)
        out[self.id_components] = self.identity.cpu().numpy()
        return out

    # -- geometry -----------------------------------------------------------------------------
    def _init_translation(self) -> None:
        o = self.obs
        width = (o[:, 454] - o[:, 234]).norm(dim=-1).clamp_min(1.0)
        depth = self.focal * FACE_WIDTH_M / width
        centre = o[:, self.idx].mean(1)
        x = (centre[:, 0] - self.centre[0]) * depth / self.focal
        y = -(centre[:, 1] - self.centre[1]) * depth / self.focal
        c = self.neutral[self.idx].mean(0)
        self.trans = torch.stack([x - c[0], y - c[1], -depth - c[2]], -1)

    def shape(self, weights: torch.Tensor, identity: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """(B, 52), (K,) -> (B, L, 3) head-frame vertices (metres) of landmarks ``idx`` (L,)."""
        neutral, basis, deltas = self.neutral[idx], self.basis[:, idx], self.deltas[:, idx]
        flat = (neutral.reshape(1, -1) + (identity @ basis.reshape(len(identity), -1))[None]
                + weights @ deltas.reshape(52, -1))
        return flat.reshape(weights.shape[0], len(idx), 3)

    def linearise(self, sel, weights, identity, rmat, trans, idx):
        """Residuals and projection Jacobians at the current state.

        Args:
            sel: frame selector into the valid frames; weights (B, 52);
            identity (K,); rmat (B, 3, 3); trans (B, 3) metres; idx (L,) landmarks.

        Returns:
            ``(rotated (B, L, 3) metres: R v, resid (B, L, 2) mm, proj (B, L, 2, 3) mm per metre
            of camera-space motion, w (B, L) IRLS data weights)``.
        """
        rotated = self.shape(weights, identity, idx) @ rmat.transpose(-1, -2)
        cam = rotated + trans[:, None, :]
        depth = (-cam[..., 2]).clamp_min(1e-3)
        f = self.focal
        u = self.centre[0] + f * cam[..., 0] / depth
        v = self.centre[1] - f * cam[..., 1] / depth
        mm = (-trans[:, 2]).clamp_min(1e-3)[:, None] / f * 1000.0           # (B, 1) mm per pixel
        resid = (torch.stack([u, v], -1) - self.obs[sel][:, idx]) * mm[..., None]
        inv = f / depth * mm
        zero = torch.zeros_like(inv)
        proj = torch.stack([inv, zero, cam[..., 0] / depth * inv,
                            zero, -inv, -cam[..., 1] / depth * inv], -1).reshape(cam.shape[:2] + (2, 3))
        return rotated, resid, proj, self._irls((resid ** 2).sum(-1), sel, idx)

    def _irls(self, r2: torch.Tensor, sel, idx) -> torch.Tensor:
        """(B, L) IRLS data weights of squared residuals ``r2`` (B, L) mm^2 of landmarks ``idx``: the landmark
        weight times the robust loss's (soft-L1, or Geman-McClure once ``redescend``), 0 under a hand."""
        if self.redescend:
            # Geman-McClure: rho = 1/2 r^2 / (1 + r^2/c^2), IRLS weight 1 / (1 + r^2/c^2)^2;
            # c from the frame's median residual, so a landmark far off the frame's fit
            # (occluded by a hand, mistracked) stops pulling at all.
            sigma = 1.4826 * torch.sqrt(r2).median(dim=1, keepdim=True).values
            c2 = torch.clamp(REDESCEND_SIGMAS * sigma, min=REDESCEND_MM) ** 2
            w = self.lw[idx] / (1.0 + r2 / c2) ** 2
        else:
            w = self.lw[idx] / torch.sqrt(1.0 + r2 / ROBUST_MM ** 2)
        if self.visible is not None:
            w = w * self.visible[sel][:, idx]
        return w

    def _depth_rows(self, rotated, trans):
        """The tracker's depth as residuals of every valid frame's pose (the fitted landmarks' shape held).

        Args:
            rotated: (V, L, 3) metres, the fitted landmarks turned by each frame's rotation (R v);
            trans: (V, 3) metres.

        Returns:
            ``(resid (V, L) mm, d resid / d pose increment (V, L, 6), IRLS weights (V, L))``: the model's depth
            in the image's pixel scale (as :func:`~backend.estimators.camera.project` gives it: the same for
            a face twice as large twice as far) against the tracker's, in mm at the face as the image rows;
            the depths' common offset is unknown, so the weighted mean difference is taken out of both the
            residual and its pose Jacobian (a shift of the whole face in depth pulls nowhere).  Weighted
            ``terms.depth`` x the robust weight of the residual about the median offset.
        """
        depth = -(rotated[..., 2] + trans[:, None, 2])                      # (V, L) metres from the camera
        zref = depth.mean(1, keepdim=True)
        mm = (-trans[:, 2]).clamp_min(1e-3)[:, None] / self.focal * 1000.0  # (V, 1) mm per pixel
        diff = (depth * self.focal / zref - self.focal - self.obs_depth[:, self.idx]) * mm
        w = self.terms.depth * self.depth_seen[:, self.idx] * self._irls(
            (diff - diff.median(1, keepdim=True).values) ** 2, slice(None), self.idx)
        wsum = w.sum(1, keepdim=True).clamp_min(1e-12)
        jz = torch.zeros_like(rotated)                                      # d resid / d camera-space point
        jz[..., 2] = -self.focal / zref * mm
        jp = torch.cat([torch.cross(rotated, jz, dim=-1), jz], -1)          # rotation increment: d(R v) = w x R v
        jp[..., 5] = jp[..., 5] + depth * self.focal / zref ** 2 * mm        # farther away, the depths flatten
        jp = jp - (w[..., None] * jp).sum(1, keepdim=True) / wsum[..., None]
        return diff - (w * diff).sum(1, keepdim=True) / wsum, jp, w

    def _frame_system(self, sel, weights, identity, rmat, trans, with_identity: bool = False):
        """Gauss-Newton normal equations of x = [weights, pose increment] for every selected frame.

        The unit Jacobian is never formed: with ``m`` (B, L, 2, 3) the derivative of the
        residual by a head-frame vertex and ``q = m^T W m`` (B, L, 3, 3), the weight block
        is ``sum_l D_l^T q_l D_l``, one sparse product (units are local: ~10 of 52 move
        each landmark) over precomputed products of unit displacements.

        Returns a dict: ``a`` (B, 58, 58), ``b`` (B, 58) (absolute form in the
        weights: minimise 1/2 x^T a x - b^T x, sparsity included), and with
        ``with_identity`` also ``c`` (B, 58, K) coupling to the identity,
        ``haa`` (K, K) and ``ba`` (K,) (absolute form in the identity, prior excluded).
        """
        rotated, resid, proj, w = self.linearise(sel, weights, identity, rmat, trans, self.idx)
        b_, l_ = resid.shape[:2]
        m = proj @ rmat[:, None]                                        # d resid / d head-frame vertex
        jp = torch.cat([-proj @ _skew(rotated), proj], -1)              # (B, L, 2, 6) d resid / d pose
        mw = m * w[..., None, None]
        # tiny per-landmark products written out (batched 3x2 @ 2x3 matmuls are slow)
        q6 = mw[..., 0, _SYM_I] * m[..., 0, _SYM_J] + mw[..., 1, _SYM_I] * m[..., 1, _SYM_J]   # (B, L, 6)
        yp = mw[..., 0, :, None] * jp[..., 0, None, :] + mw[..., 1, :, None] * jp[..., 1, None, :]  # (B, L, 3, 6)
        yr = mw[..., 0, :] * resid[..., :1] + mw[..., 1, :] * resid[..., 1:]   # (B, L, 3)
        upper = torch.sparse.mm(self.pair_products, q6.reshape(b_, -1).T.contiguous()).T   # (B, 1378)
        a = torch.zeros(b_, 58, 58, dtype=m.dtype, device=m.device)
        a[:, self.tri_i, self.tri_j] = upper
        a[:, self.tri_j, self.tri_i] = upper
        hwp = (yp.permute(0, 3, 1, 2).reshape(b_ * 6, -1) @ self.deltas_flat).reshape(b_, 6, 52)
        a[:, 52:, :52] = hwp
        a[:, :52, 52:] = hwp.transpose(1, 2)
        jpf = jp.reshape(b_, 2 * l_, 6)
        w2 = w.repeat_interleave(2, 1)
        a[:, 52:, 52:] = torch.bmm(jpf.transpose(1, 2) * w2[:, None, :], jpf)
        g = torch.cat([yr.reshape(b_, -1) @ self.deltas_flat,
                       torch.bmm(jpf.transpose(1, 2), (w2 * resid.reshape(b_, -1))[..., None])[..., 0]], 1)
        b = torch.bmm(a[:, :, :52], weights[..., None])[..., 0] - g
        b[:, :52] -= self.terms.sparsity * self.unit_cost
        out = {"a": a, "b": b}
        if with_identity:
            k = len(identity)
            q = q6[..., _SYM_FULL]                                      # (B, L, 3, 3)
            qb = q @ self.basis_l[None]                                 # (B, L, 3, K)
            cw = (qb.permute(0, 3, 1, 2).reshape(b_ * k, -1) @ self.deltas_flat).reshape(b_, k, 52)
            cp = torch.einsum("blip,lia->bpa", yp, self.basis_l)
            c = torch.cat([cw.transpose(1, 2), cp], 1)                  # (B, 58, K)
            haa = torch.einsum("lij,lia,ljb->ab", q.sum(0), self.basis_l, self.basis_l)
            ga = torch.einsum("bli,lia->a", yr, self.basis_l)
            out["c"] = c
            out["haa"] = haa
            out["b"] = b + c @ identity
            out["ba"] = haa @ identity + (cw @ weights[..., None])[..., 0].sum(0) - ga
        return out

    # -- pose only ----------------------------------------------------------------------------
    def pose_step(self, sel, weights, identity, rmat, trans, idx):
        """One Gauss-Newton step of the 6 pose parameters of every selected frame; returns (rmat, trans)."""
        rotated, resid, proj, w = self.linearise(sel, weights, identity, rmat, trans, idx)
        jrot = -proj @ _skew(rotated)                                   # d resid / d rotation increment
        j = torch.cat([jrot, proj], -1).reshape(len(rmat), -1, 6)       # (B, 2L, 6)
        w2 = w.repeat_interleave(2, 1)
        h = torch.bmm(j.transpose(1, 2) * w2[:, None, :], j)
        g = torch.bmm(j.transpose(1, 2), (w2 * resid.reshape(len(rmat), -1))[..., None])[..., 0]
        step = -torch.linalg.solve(h + _ridge(h), g)
        return _apply_pose(rmat, trans, step)

    def fit_rigid(self, iters: int = 6) -> None:
        """Stage (a): pose of every valid frame on the observed stable landmarks, neutral face.

        No temporal coupling here: from the rest pose, Jacobi smoothing would
        hold every frame near its equally wrong neighbours.
        """
        for _ in range(iters):
            self.cancel()
            self.rmat, self.trans = self.pose_step(slice(None), self.weights, self.identity, self.rmat,
                                                   self.trans, self.stable)

    # -- priors -------------------------------------------------------------------------------
    def _prior_matrix(self, weights: torch.Tensor) -> torch.Tensor:
        """(B, 58, 58) quadratic part of the weight priors, re-linearised at ``weights`` (B, 52).

        CPEM exclusive loss: ``exclusive * w^2`` on the currently smaller unit of
        each pair; mouthClose <= jawOpen: ``close_limit * (close - open)^2`` where violated.
        """
        t = self.terms
        p = torch.zeros(weights.shape[0], 58, 58, dtype=weights.dtype, device=weights.device)
        diag = torch.zeros(weights.shape[0], 58, dtype=weights.dtype, device=weights.device)
        if t.exclusive > 0:
            wa, wb = weights[:, self.pair_a], weights[:, self.pair_b]
            diag.index_add_(1, self.pair_a, (wa < wb).to(weights.dtype) * 2.0 * t.exclusive)
            diag.index_add_(1, self.pair_b, (wb < wa).to(weights.dtype) * 2.0 * t.exclusive)
        c, o = INDEX["mouthClose"], INDEX["jawOpen"]
        on = (weights[:, c] > weights[:, o]).to(weights.dtype) * 2.0 * t.close_limit
        diag[:, c] += on
        diag[:, o] += on
        p[:, c, o] -= on
        p[:, o, c] -= on
        return p + torch.diag_embed(diag)

    def _knee(self, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The knee prior ``above_knee * relu(w - knee)^2`` on the units it covers, as the quadratic it is on
        the side of the knee each weight of ``weights`` (B, 52) is on: ``(diag (B, 58), rhs (B, 58))`` to add
        to ``a`` and ``b`` of min 1/2 x^T a x - b^T x (0 where a weight is at or below the knee)."""
        t = self.terms
        diag = torch.zeros(weights.shape[0], 58, dtype=weights.dtype, device=weights.device)
        diag[:, :52] = (weights > t.knee).to(weights.dtype) * (2.0 * t.above_knee) * self.knee_units
        return diag, diag * t.knee

    def _step_length(self, x, d, aa, bb) -> torch.Tensor:
        """(B, 1) exact minimiser over ``t`` in [0, 1] of the objective along ``x + t d`` (B, 58): the
        quadratic ``1/2 y^T aa y - bb^T y`` plus the knee prior, which is a different quadratic on each side
        of the knee, so the linearisation at ``x`` does not hold past it.  The objective is convex along the
        segment and its derivative increases: bisection finds where it crosses 0 (``t = 1`` if it never
        does), so the objective never rises."""
        t = self.terms
        slope = (d * (torch.bmm(aa, x[..., None])[..., 0] - bb)).sum(-1)
        curv = (d * torch.bmm(aa, d[..., None])[..., 0]).sum(-1)
        if t.above_knee <= 0:       # a quadratic: its minimiser in closed form
            return torch.where(slope < 0, (-slope / curv.clamp_min(1e-12)).clamp(max=1.0), torch.zeros_like(slope))[:, None]
        lam = (2.0 * t.above_knee) * self.knee_units
        xw, dw = x[:, :52], d[:, :52]

        def derivative(s: torch.Tensor) -> torch.Tensor:
            return slope + s * curv + (lam * torch.relu(xw + s[:, None] * dw - t.knee) * dw).sum(-1)

        lo, hi = torch.zeros_like(slope), torch.ones_like(slope)
        for _ in range(STEP_BISECTIONS):
            mid = 0.5 * (lo + hi)
            rising = derivative(mid) > 0
            hi, lo = torch.where(rising, mid, hi), torch.where(rising, lo, mid)
        step = torch.where(derivative(hi) <= 0, hi, lo)       # hi = 1 when the objective falls all the way
        return torch.where(derivative(torch.zeros_like(slope)) >= 0, torch.zeros_like(step), step)[:, None]

    def _smoothing(self, x, rmat, trans, nb):
        """Jacobi coupling to the neighbours' current values: (diag (B, 58), rhs (B, 58)) to add to a, b.

        Weights: ``smoothing * |w_t - w_nb|^2``; pose: ``pose_smoothing * (|log(R_nb R_t^T)|^2
        + 100 |t_nb - t_t|^2)`` in the increments of frame t.
        """
        t = self.terms
        diag = torch.zeros_like(x)
        rhs = torch.zeros_like(x)
        if nb is None or not len(nb):
            return diag, rhs
        nsum, count = _neighbour_sum(x[:, :52], nb)
        diag[:, :52] = 2.0 * t.smoothing * count
        rhs[:, :52] = 2.0 * t.smoothing * nsum
        if t.pose_smoothing > 0:
            rel = torch.zeros_like(trans)
            rel.index_add_(0, nb, matrix_to_axis_angle(rmat[nb + 1] @ rmat[nb].transpose(-1, -2)))
            rel.index_add_(0, nb + 1, matrix_to_axis_angle(rmat[nb] @ rmat[nb + 1].transpose(-1, -2)))
            tsum, _ = _neighbour_sum(trans, nb)
            s = 2.0 * t.pose_smoothing
            diag[:, 52:55] = s * count
            diag[:, 55:] = 100.0 * s * count
            rhs[:, 52:55] = s * rel
            rhs[:, 55:] = 100.0 * s * (tsum - count * trans)
        return diag, rhs

    # -- weights + pose -----------------------------------------------------------------------
    def _box_newton(self, a, b, x, rmat, trans, nb, iters: int):
        """Projected Newton for min 1/2 x^T A x - b^T x (+ priors, smoothing), weights in [0, 1].

        Each iteration re-linearises the exclusive/close priors and the knee, couples each frame to
        its neighbours' current weights (Jacobi), frees the variables not pinned at a bound by
        their gradient, solves the free block (Cholesky), clamps, and takes the exact
        line-search step on the (feasible) segment toward it (:meth:`_step_length`, the knee
        exact past the point it was linearised at), so the objective never rises.
        """
        ridge = _ridge(a)
        for _ in range(iters):
            aa = a + self._prior_matrix(x[:, :52]) + ridge
            sd, sr = self._smoothing(x, rmat, trans, nb)
            aa = aa + torch.diag_embed(sd)
            bb = b + sr
            kd, kr = self._knee(x[:, :52])
            aa_k, bb_k = aa + torch.diag_embed(kd), bb + kr      # the knee as the quadratic it is at x
            grad = torch.bmm(aa_k, x[..., None])[..., 0] - bb_k
            fixed = ((x <= 0.0) & (grad > 0)) | ((x >= 1.0) & (grad < 0))
            fixed[:, 52:] = False
            free = (~fixed).to(a.dtype)
            xf = x * (1.0 - free)
            rhs = torch.where(fixed, x, bb_k - torch.bmm(aa_k, xf[..., None])[..., 0])
            am = aa_k * free[:, :, None] * free[:, None, :] + torch.diag_embed(1.0 - free)
            cand = torch.cholesky_solve(rhs[..., None], torch.linalg.cholesky(am))[..., 0]
            cand[:, :52] = cand[:, :52].clamp(0.0, 1.0)
            d = cand - x
            x = x + self._step_length(x, d, aa, bb) * d
        return x

    def fit_expressions(self, iters: int = 3, on_iter=None) -> None:
        """Stage (c): weights + pose of every valid frame (one joint system each), identity frozen.

        The first iteration uses the soft-L1 loss (a warm start close to the answer),
        the rest the redescending Geman-McClure loss, which ignores occluded landmarks.
        """
        for it in range(iters):
            self.redescend = it > 0
            self.cancel()
            sys_ = self._frame_system(slice(None), self.weights, self.identity, self.rmat, self.trans)
            x = torch.cat([self.weights, torch.zeros_like(self.trans), torch.zeros_like(self.trans)], 1)
            x = self._box_newton(sys_["a"], sys_["b"], x, self.rmat, self.trans, self.nb, 3)
            self.weights = x[:, :52].clamp(0.0, 1.0)
            self.rmat, self.trans = _apply_pose(self.rmat, self.trans, x[:, 52:])
            if on_iter is not None:
                on_iter(it)

    def fit_head_pose(self, iters: int = 3) -> None:
        """Stage (d): the head pose of every valid frame refit with the tracker's depth, the face held.

        MediaPipe's landmarks carry a depth (its own 3D mesh), and its mesh turns with the head more
        faithfully than the image positions alone tell our model: on the shared Live Link Face recording
        rendered on its ARKit head with a known turn, the image fit reads the turn at 0.94 (yaw) and 0.80
        (pitch) of the true one, MediaPipe's mesh aligned to ours at 1.05 / 1.11.  The depth is only
        trusted for the pose: as a residual of the expression stage it also moved the weights (brows
        with pitch on the frown photo, browDown 0.34 -> 0.20-0.27) and of the identity stage it made the
        actor's neutral unstable (the Pexels clip's halves 1.34 -> 2.9 mm), so the weights, identity and fit
        error come from stages (a)-(c) unchanged and only the pose moves: Gauss-Newton on the image
        rows and :meth:`_depth_rows`, the pose smoothing of stage (c) ``terms.depth_smoothing`` times as strong
        (the tracker's depth is noisier than its image positions).
        """
        if self.obs_depth is None or self.terms.depth <= 0:
            return
        v = len(self.vidx)
        for _ in range(iters):
            self.cancel()
            rotated, resid, proj, w = self.linearise(slice(None), self.weights, self.identity, self.rmat, self.trans,
                                                     self.idx)
            jp = torch.cat([-proj @ _skew(rotated), proj], -1).reshape(v, -1, 6)       # (V, 2L, 6)
            rz, jz, wz = self._depth_rows(rotated, self.trans)
            j = torch.cat([jp, jz], 1)
            wj = torch.cat([w.repeat_interleave(2, 1), wz], 1)
            r = torch.cat([resid.reshape(v, -1), rz], 1)
            h = torch.bmm(j.transpose(1, 2) * wj[:, None, :], j)
            g = torch.bmm(j.transpose(1, 2), (wj * r)[..., None])[..., 0]
            x = torch.cat([self.weights, torch.zeros_like(self.trans), torch.zeros_like(self.trans)], 1)
            sd, sr = self._smoothing(x, self.rmat, self.trans, self.nb)
            k = self.terms.depth_smoothing
            h = h + torch.diag_embed(k * sd[:, 52:])
            step = torch.linalg.solve(h + _ridge(h), k * sr[:, 52:] - g)
            self.rmat, self.trans = _apply_pose(self.rmat, self.trans, step)

    def frame_error_mm(self) -> np.ndarray:
        """(V,) float32: per valid frame, the median distance (mm at the face) between the observed
        landmarks a hand leaves visible and the fitted face's, at the current state."""
        _, resid, _, _ = self.linearise(slice(None), self.weights, self.identity, self.rmat, self.trans, self.idx)
        dist = resid.norm(dim=-1)
        if self.visible is not None:
            dist = torch.where(self.visible[:, self.idx] > 0, dist, torch.nan)
        return torch.nanmedian(dist, dim=1).values.cpu().numpy().astype(np.float32)

    # -- identity -----------------------------------------------------------------------------
    def fit_identity(self, frames: np.ndarray, iters: int = 3) -> None:
        """Stage (b) on a subset of valid frames (indices into the valid frames).

        First identity + pose with the weights held at 0 (most frames of a
        performance are near neutral, and the robust loss discounts the rest),
        so a constant offset is explained by the actor, not by a constant
        expression; then identity + pose + expression jointly (projected
        Newton on the weights, the identity through the Schur complement over frames);
        on a sparse landmark scheme (``joint_identity`` False) the neutral phase only.
        """
        sel = torch.as_tensor(frames, device=self.dev)
        rmat, trans, w = self.rmat[sel], self.trans[sel], self.weights[sel]
        a_id = self.identity
        for phase in ("neutral", "joint") if self.joint_identity else ("neutral",):
            for _ in range(iters):
                self.cancel()
                sys_ = self._frame_system(sel, w, a_id, rmat, trans, with_identity=True)
                x = torch.cat([w, torch.zeros_like(trans), torch.zeros_like(trans)], 1)
                x, a_id = self._joint_newton(sys_, x, a_id, freeze_weights=phase == "neutral")
                w = x[:, :52].clamp(0.0, 1.0)
                rmat, trans = _apply_pose(rmat, trans, x[:, 52:])
        self.identity = a_id
        self.weights[sel], self.rmat[sel], self.trans[sel] = w, rmat, trans

    def use_actor(self, identity: np.ndarray, rest_offset: Optional[np.ndarray]) -> None:
        """Take the actor's face from an earlier solve instead of stage (b): ``identity`` (model.num_identity,)
        (its anatomical components are used, as the solver fits no others) and the rest offset
        (N, 3) metres or None.  Call before :meth:`fit_rigid`, so the pose is fitted on the actor's face."""
        self.identity = torch.as_tensor(np.asarray(identity)[self.id_components], dtype=self.neutral.dtype,
                                        device=self.dev)
        if rest_offset is not None:
            self._add_rest(torch.as_tensor(rest_offset, dtype=self.neutral.dtype, device=self.dev))

    def _add_rest(self, offset: torch.Tensor) -> None:
        self.neutral = self.neutral + offset
        self.rest_offset = offset if self.rest_offset is None else self.rest_offset + offset

    def fit_rest(self, frames: np.ndarray, iters: int = 4) -> None:
        """Stage (b'), optional: calibrate the actor's rest face on frames where the actor is at rest.

        The identity components cannot represent every face (nor how the
        tracker sees it): what they miss would otherwise read as a constant
        expression.  On ``frames`` (indices into the valid frames, a short
        window where the user says the face is at rest) the weights are held
        at 0 and the pose refined; the per-landmark residual that remains,
        lifted from pixels to metres at each vertex's depth in the image
        plane and turned into the head frame, is (median over the frames)
        added to the neutral.  Every vertex is a MediaPipe landmark, so the
        correction is dense.  The expression stage then measures expressions
        from this rest face: the rest frames solve to weights near 0.  The
        offset, (N, 3) metres in the head frame, is added to ``neutral`` and
        to ``rest_offset``.
        """
        sel = torch.as_tensor(frames, device=self.dev)
        zero = torch.zeros(len(sel), 52, dtype=self.neutral.dtype, device=self.dev)
        rmat, trans = self.rmat[sel], self.trans[sel]
        for _ in range(iters):
            self.cancel()
            rmat, trans = self.pose_step(sel, zero, self.identity, rmat, trans, self.idx)
        every = torch.arange(self.neutral.shape[0], device=self.dev)
        rotated, resid, _, _ = self.linearise(sel, zero, self.identity, rmat, trans, every)
        depth = -(rotated[..., 2] + trans[:, None, 2])                            # (B, N) metres
        mm_per_px = (-trans[:, 2]).clamp_min(1e-3)[:, None] / self.focal * 1000.0
        metres = resid / mm_per_px[..., None] * (depth / self.focal)[..., None]   # (B, N, 2) model - observed
        # image x right, y down -> camera x right, y up; no change of depth is observed
        cam = torch.stack([-metres[..., 0], metres[..., 1], torch.zeros_like(metres[..., 0])], -1)
        self._add_rest((cam @ rmat).median(dim=0).values)                           # R^T d per row
        self.weights[sel], self.rmat[sel], self.trans[sel] = zero, rmat, trans

    def _joint_newton(self, sys_, x, ident, freeze_weights: bool, iters: int = 3):
        """Projected Newton on per-frame x (weights in [0, 1]) and one shared identity.

        System ``[A_t C_t; C_t^T H_aa + prior] [x_t; a] = [b_t; b_a]``, solved by the
        Schur complement over the frames for the free variables of each frame.
        ``freeze_weights`` holds every weight at its current value (pose + identity only).
        """
        a, b, c = sys_["a"], sys_["b"], sys_["c"]
        haa = sys_["haa"] + self.terms.identity_prior * torch.eye(len(ident), dtype=a.dtype, device=a.device)
        ba = sys_["ba"]
        ridge = _ridge(a)
        for _ in range(1 if freeze_weights else iters):
            # no knee while the identity is fitted: what a weight may not take would go into the face
            # (the Pexels clip's halves 1.34 -> 2.81 mm apart with it)
            aa = a + self._prior_matrix(x[:, :52]) + ridge
            grad = torch.bmm(aa, x[..., None])[..., 0] + c @ ident - b
            if freeze_weights:
                fixed = torch.zeros_like(x, dtype=torch.bool)
                fixed[:, :52] = True
            else:
                fixed = ((x <= 0.0) & (grad > 0)) | ((x >= 1.0) & (grad < 0))
                fixed[:, 52:] = False
            free = (~fixed).to(a.dtype)
            xf = x * (1.0 - free)
            rhs = torch.where(fixed, x, b - torch.bmm(aa, xf[..., None])[..., 0])
            am = aa * free[:, :, None] * free[:, None, :] + torch.diag_embed(1.0 - free)
            cm = c * free[..., None]
            sol = torch.cholesky_solve(torch.cat([rhs[..., None], cm], -1), torch.linalg.cholesky(am))
            ct = cm.transpose(1, 2)
            schur = haa - torch.bmm(ct, sol[..., 1:]).sum(0)
            rhs_a = ba - (c.transpose(1, 2) @ xf[..., None])[..., 0].sum(0) - torch.bmm(ct, sol[..., :1]).sum(0)[:, 0]
            ident = torch.linalg.solve(schur, rhs_a)
            x = sol[..., 0] - sol[..., 1:] @ ident
            x[:, :52] = x[:, :52].clamp(0.0, 1.0)
        return x, ident


def _apply_pose(rmat: torch.Tensor, trans: torch.Tensor, step: torch.Tensor):
    """Apply (B, 6) increments [rotation (radians, left-multiplied), translation (metres)]."""
    return axis_angle_to_matrix(step[:, :3]) @ rmat, trans + step[:, 3:]
