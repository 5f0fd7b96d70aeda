"""Motion3DGAN (product side): label -> 68-landmark expression motion, generated on the SRVF hypersphere.

Motion3DGAN (Otberdout et al., "Sparse to Dense Dynamic 3D Facial Expression
Generation", CVPR 2022) is a conditional Wasserstein GAN (gradient penalty) on
the hypersphere of unit-norm SRVFs (:mod:`backend.generation.srvf`).  Both
networks work in the tangent space of the sphere at a reference point ``p``,
the training set's Karcher mean SRVF:

* the generator ``G(z, c)`` maps noise ``z`` (``noise_dim``) and a one-hot
  label ``c`` (:data:`backend.protocol.labels.LABELS`) to a tangent vector
  at ``p``; ``exp_p`` puts it on the sphere (a unit SRVF, a motion without
  its size);
* the critic ``D(v, c)`` scores tangent vectors: ``log_p`` of real SRVFs,
  ``log_p(exp_p(G(z, c)))`` of generated ones.

Both are MLPs on the flattened (T-1) x k x 3 tangent vector.  One departure
from the paper: the generator adds a bias-free linear "label skip" from the
one-hot label to its output, started at each label's mean tangent vector, so
the adversarial training learns the variation around that mean (with the
plain MLP, 200 CPU steps reached 0.13-0.24 label accuracy; the base
configuration reaches 0.96).  Inside the
networks it is multiplied by ``sqrt(3 k)``: a tangent vector of L2 norm 1
(the SRVF inner product, a mean over the T-1 rows) has per-element RMS
``1 / sqrt(3 k)``, so the networks see and emit per-element values of order 1.

A unit SRVF has no size; the model keeps per label the mean and standard
deviation of the training SRVFs' norms (``scale_mean``, ``scale_std``) and
:func:`sample_landmark_motions` draws one per sample (truncated to
:data:`SIZE_RANGE_SD`), then integrates the scaled SRVF from the neutral (zero
displacement) to metres.

Trained by ``python -m training.motion3dgan.train`` (weights
``motion3dgan.safetensors`` + ``config.json`` in one folder); the product
loads it with :func:`load_motion3dgan`, which checks every tensor name and shape.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from backend.protocol.labels import LABELS, label_index
from backend.generation.srvf import srvf_to_motion
from backend.protocol.errors import FaceKeyError
from backend.weightsfile import CONFIG_NAME, load_net

__all__ = ["Motion3DGANConfig", "Generator", "Critic", "Motion3DGAN", "l2_inner", "project_tangent", "exp_map",
           "log_map", "sample_landmark_motions", "load_motion3dgan", "WEIGHTS_NAME", "CONFIG_NAME"]

WEIGHTS_NAME = "motion3dgan.safetensors"
#: Range of a sample's SRVF norm, in standard deviations of the label's training norms (:func:`_motion_sizes`).
SIZE_RANGE_SD = (-2.0, 1.0)
_TRAIN_HINT = ("Train it with `python -m training.motion3dgan.train --config base --out DIR` and pass DIR "
               "(or its motion3dgan.safetensors).")
_EPS = 1e-7


@dataclasses.dataclass(frozen=True)
class Motion3DGANConfig:
    """Motion length ``frames`` (T), ``landmarks`` (k), noise size and MLP widths.

    The generator's hidden layers are ``hidden`` in order, the critic's the same reversed.
    """

    frames: int = 30
    landmarks: int = 68
    noise_dim: int = 128
    hidden: tuple[int, ...] = (256, 512)

    @property
    def num_labels(self) -> int:
        """Length of the one-hot label: ``len(LABELS)``."""
        return len(LABELS)

    @property
    def srvf_shape(self) -> tuple[int, int, int]:
        """(T-1, k, 3): shape of one SRVF or tangent vector."""
        return (self.frames - 1, self.landmarks, 3)


def l2_inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SRVF L2 inner product over [0, 1]: (..., T-1, k, 3) x (..., T-1, k, 3) -> (...,)."""
    return (a * b).sum(dim=(-1, -2, -3)) / a.shape[-3]


def project_tangent(p: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``v - <v, p> p``: (..., T-1, k, 3) vectors onto the tangent space at the unit point ``p`` (T-1, k, 3)."""
    return v - l2_inner(v, p)[..., None, None, None] * p


def exp_map(p: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Sphere exponential map at ``p`` (T-1, k, 3) of tangent vectors (..., T-1, k, 3) -> unit points (same shape)."""
    n = torch.sqrt(l2_inner(v, v).clamp_min(_EPS ** 2))[..., None, None, None]
    return torch.cos(n) * p + torch.sin(n) / n * v


def log_map(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Sphere logarithm map at ``p`` (T-1, k, 3) of unit points (..., T-1, k, 3) -> tangent vectors (same shape).

    The angle is clamped away from 0 and pi (by ~5e-4 rad), where ``theta / sin(theta)`` is
    ill-conditioned; its gradient is finite everywhere.
    """
    cos = l2_inner(p, q).clamp(-1.0 + _EPS, 1.0 - _EPS)[..., None, None, None]
    theta = torch.acos(cos)
    return theta / torch.sin(theta) * (q - cos * p)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


class Generator(nn.Module):
    """(noise (B, noise_dim), one-hot labels (B, 12), reference p (T-1, k, 3)) -> tangent vectors at p (B, T-1, k, 3).

    An MLP of [noise, label] plus a label skip ``label_out`` (one output vector per label, which
    training starts at the label's mean tangent vector): the MLP models the variation around it.
    """

    def __init__(self, cfg: Motion3DGANConfig):
        super().__init__()
        self.cfg = cfg
        size = int(np.prod(cfg.srvf_shape))
        self.mlp = _mlp([cfg.noise_dim + cfg.num_labels, *cfg.hidden, size])
        self.label_out = nn.Linear(cfg.num_labels, size, bias=False)
        self.unit = float(np.sqrt(3 * cfg.landmarks))

    def forward(self, noise: torch.Tensor, onehot: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        v = self.mlp(torch.cat([noise, onehot], 1)) + self.label_out(onehot)
        v = v.reshape((-1,) + self.cfg.srvf_shape) / self.unit
        return project_tangent(p, v)


class Critic(nn.Module):
    """(tangent vectors (B, T-1, k, 3), one-hot labels (B, 12)) -> (B,) Wasserstein critic scores."""

    def __init__(self, cfg: Motion3DGANConfig):
        super().__init__()
        self.mlp = _mlp([int(np.prod(cfg.srvf_shape)) + cfg.num_labels, *reversed(cfg.hidden), 1])
        self.unit = float(np.sqrt(3 * cfg.landmarks))

    def forward(self, v: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([v.flatten(1) * self.unit, onehot], 1))[:, 0]


class Motion3DGAN(nn.Module):
    """Generator + critic and the statistics they work with.

    Buffers: ``reference`` (T-1, k, 3) the unit mean SRVF p (tangent space point);
    ``scale_mean``, ``scale_std`` (12,) per label the mean and standard deviation
    of the training SRVF norms (unit sqrt(metres); a motion's size grows with the
    square of its SRVF norm).  An untrained model has p = a constant unit SRVF
    and scales 0; training sets them.
    """

    def __init__(self, cfg: Motion3DGANConfig):
        super().__init__()
        self.cfg = cfg
        self.generator = Generator(cfg)
        self.critic = Critic(cfg)
        self.register_buffer("reference", torch.ones(cfg.srvf_shape) / np.sqrt(3 * cfg.landmarks))
        self.register_buffer("scale_mean", torch.zeros(cfg.num_labels))
        self.register_buffer("scale_std", torch.zeros(cfg.num_labels))

    def onehot(self, labels: torch.Tensor) -> torch.Tensor:
        """(B,) int label indices -> (B, 12) float one-hot vectors on the model's device."""
        return nn.functional.one_hot(labels.long(), self.cfg.num_labels).to(self.reference)

    def tangent(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """G: noise (B, noise_dim), labels (B,) ints -> tangent vectors at ``reference`` (B, T-1, k, 3)."""
        return self.generator(noise, self.onehot(labels), self.reference)

    def generate(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``exp_p(G(noise, labels))``: unit-norm SRVFs (B, T-1, k, 3)."""
        return exp_map(self.reference, self.tangent(noise, labels))

    def score(self, v: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Critic scores (B,) of tangent vectors at ``reference`` (B, T-1, k, 3) with labels (B,) ints."""
        return self.critic(v, self.onehot(labels))


@torch.no_grad()
def sample_landmark_motions(net: Motion3DGAN, label: int | str, count: int, seed: int = 0) -> np.ndarray:
    """``count`` generated neutral-to-apex motions of one expression label.

    Noise from ``seed`` -> generator -> ``exp_p`` -> unit SRVF; each sample's
    SRVF norm is drawn from N(scale_mean[label], scale_std[label]) truncated
    to :data:`SIZE_RANGE_SD` (:func:`_motion_sizes`) and the SRVF integrated
    from a zero start.  Deterministic for a seed.

    Args:
        net: a trained :class:`Motion3DGAN` (see :func:`load_motion3dgan`).
        label: a name in :data:`LABELS` or its index.
        count: number of motions (>= 0).
        seed: noise and scale seed.

    Returns:
        (count, T, k, 3) float32 landmark displacements from the neutral in metres; frame 0 is exactly 0.

    Raises:
        FaceKeyError ``bad_argument``: unknown label or negative count.
    """
    n_labels = net.cfg.num_labels
    if isinstance(label, str):
        index = label_index(label)
    elif isinstance(label, (int, np.integer)) and not isinstance(label, bool) and 0 <= int(label) < n_labels:
        index = int(label)
    else:
        raise FaceKeyError("bad_argument", f"Unknown expression label {label!r}.",
                           f"Use an index 0-{n_labels - 1} or one of: {', '.join(LABELS)}.")
    if count < 0:
        raise FaceKeyError("bad_argument", f"count must be >= 0, got {count}", "Ask for a non-negative count.")
    if count == 0:
        return np.zeros((0, net.cfg.frames, net.cfg.landmarks, 3), np.float32)
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(count, net.cfg.noise_dim, generator=gen).to(net.reference)
    labels = torch.full((count,), index, dtype=torch.long, device=net.reference.device)
    q = net.generate(noise, labels).double().cpu().numpy()
    mean, std = float(net.scale_mean[index]), float(net.scale_std[index])
    scale = _motion_sizes(mean, std, count, seed)
    start = np.zeros((count, net.cfg.landmarks, 3))
    return srvf_to_motion(q, start, scale).astype(np.float32)


def _motion_sizes(mean: float, std: float, count: int, seed: int) -> np.ndarray:
    """(count,) SRVF norms from N(mean, std) truncated to :data:`SIZE_RANGE_SD` standard deviations and to
    at least a quarter of the mean.  The training motions' largest already drive their units to 1: a
    larger draw is motion the 52 units cannot hold (the fit saturates three or more units and leaves up
    to 0.7 mm unexplained), so the draw stops one deviation above the mean."""
    from scipy.stats import truncnorm

    lo, hi = SIZE_RANGE_SD
    if std <= 0.0:
        return np.full(count, mean)
    a = max(lo, (0.25 * mean - mean) / std)
    return truncnorm.rvs(a, hi, loc=mean, scale=std, size=count, random_state=np.random.default_rng(seed))


def load_motion3dgan(path: str | Path) -> Motion3DGAN:
    """Load trained Motion3DGAN weights (eval mode, CPU) with a name and shape check.

    Args:
        path: a folder holding ``motion3dgan.safetensors`` + ``config.json``, or the
            ``.safetensors`` file itself (its ``config.json`` beside it).

    The critic may be left out of the file (inference never runs it: the bundled generators,
    ``training.motion3dgan.export``).

    Raises:
        FaceKeyError ``weights_missing`` (no file) or ``weights_invalid``
        (unreadable, missing/extra tensors or wrong shapes).
    """
    def build(c: dict) -> Motion3DGAN:
        return Motion3DGAN(Motion3DGANConfig(frames=int(c["frames"]), landmarks=int(c["landmarks"]),
                                             noise_dim=int(c["noise_dim"]), hidden=tuple(int(h) for h in c["hidden"])))
    return load_net(path, WEIGHTS_NAME, "Motion3DGAN", _TRAIN_HINT, build, may_lack=("critic.",))
