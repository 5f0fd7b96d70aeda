"""SEREP mesh-level expression model (product side): network, weights check, encode/decode.

The network follows SEREP (Josi et al., "Semantic Expression Representation"):
an identity encoder ``E_id`` (neutral mesh -> ``z_id``), an expression encoder
``E_exp`` (expressive mesh -> ``z_exp``) and one decoder
``D(z_id, z_exp) -> mesh``, all built from spiral convolutions (SpiralNet++:
each vertex gathers a fixed-length ordered walk over its rings, then one
linear layer).  The identity encoder's per-vertex features feed the decoder
through skip connections.

The decoder is residual on SEREP's delta prior: the decoded mesh is the
target neutral plus the source motion (source mesh - source neutral; in the
product always the canonical face's) plus a learned correction.  The motion
also enters every decoder block as three more per-vertex channels, next to
the identity skip features, and the last layer gives per vertex a 3 x 3 map
``A`` and an offset ``c``: correction = ``A @ motion + c``.  How an
expression moves a differently shaped face is a local linear map of the
motion (deformation transfer works per triangle), so this form learns in a
few hundred steps where a free correction did not (its L1 gradient at zero
has no consistent sign).  The last layer starts at zero: an untrained network
is exactly the plain copy.  All meshes are on the built-in model's 478-vertex
MediaPipe topology in the head frame (metres); inside the network vertices
are offsets from the canonical neutral in centimetres.

The network is trained by ``python -m training.serep.train`` (weights
``serep.safetensors`` + ``config.json`` in one folder); the product loads it
with :func:`load_serep`, which checks every tensor name and shape.
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

__all__ = ["SerepConfig", "SerepNet", "spiral_indices", "load_serep", "SerepRetarget", "WEIGHTS_NAME",
           "CONFIG_NAME", "CM"]

WEIGHTS_NAME = "serep.safetensors"
#: Network units: vertex offsets in centimetres.
CM = 0.01
_TRAIN_HINT = "Train it with `python -m training.serep.train --config base --out DIR` and pass DIR (or its serep.safetensors)."


@dataclasses.dataclass(frozen=True)
class SerepConfig:
    """Network size: ``channels`` per spiral block, spiral length, code sizes."""

    channels: tuple[int, ...] = (16, 32, 32)
    spiral_length: int = 9
    id_dim: int = 32
    exp_dim: int = 32


def _ring_order(center: int, ring: list[int], v: np.ndarray, normal: np.ndarray) -> list[int]:
    """``ring`` vertices sorted by angle around ``normal`` at ``center`` (0 = direction of head +y)."""
    n = normal / (np.linalg.norm(normal) + 1e-12)
    up = np.array([0.0, 1.0, 0.0]) - n * n[1]
    if np.linalg.norm(up) < 1e-6:
        up = np.array([1.0, 0.0, 0.0]) - n * n[0]
    up /= np.linalg.norm(up)
    side = np.cross(n, up)
    d = v[ring] - v[center]
    ang = np.arctan2(d @ side, d @ up) % (2 * np.pi)
    return [ring[i] for i in np.argsort(ang, kind="stable")]


def spiral_indices(vertices: np.ndarray, triangles: np.ndarray, length: int) -> np.ndarray:
    """SpiralNet++ sequences: (N, length) int64, row i = i, its 1-ring, 2-ring, ... each ring by angle.

    Rings follow the triangle graph; each ring is ordered counter-clockwise
    around the vertex normal starting from the head's up direction, so the
    order is consistent across the face.  Vertices in no triangle (iris
    points) and walks shorter than ``length`` are completed with the nearest
    vertices by distance not yet in the walk.

    Args:
        vertices: (N, 3) float metres.
        triangles: (F, 3) int faces.
        length: spiral length (>= 1).
    """
    v = np.asarray(vertices, np.float64)
    n = len(v)
    nbrs: list[set[int]] = [set() for _ in range(n)]
    normals = np.zeros_like(v)
    for a, b, c in np.asarray(triangles):
        nbrs[a] |= {b, c}
        nbrs[b] |= {a, c}
        nbrs[c] |= {a, b}
        fn = np.cross(v[b] - v[a], v[c] - v[a])
        normals[[a, b, c]] += fn
    normals[np.linalg.norm(normals, axis=1) < 1e-12] = [0.0, 0.0, 1.0]
    dist = np.linalg.norm(v[:, None] - v[None], axis=-1)
    out = np.zeros((n, length), np.int64)
    for i in range(n):
        walk, seen, ring = [i], {i}, [i]
        while len(walk) < length and ring:
            nxt = sorted({j for r in ring for j in nbrs[r]} - seen)
            nxt = _ring_order(i, nxt, v, normals[i]) if nxt else []
            walk += nxt
            seen |= set(nxt)
            ring = nxt
        for j in np.argsort(dist[i], kind="stable"):
            if len(walk) >= length:
                break
            if int(j) not in seen:
                walk.append(int(j))
                seen.add(int(j))
        out[i] = walk[:length]
    return out


class SpiralConv(nn.Module):
    """(B, N, C_in) -> (B, N, C_out): gather each vertex's spiral, flatten, linear."""

    def __init__(self, c_in: int, c_out: int, spiral: torch.Tensor):
        super().__init__()
        self.register_buffer("spiral", spiral, persistent=False)
        self.linear = nn.Linear(c_in * spiral.shape[1], c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        g = x[:, self.spiral.reshape(-1)].reshape(b, n, -1)
        return self.linear(g)


class _Encoder(nn.Module):
    """(B, N, 3) centimetre offsets -> (code (B, D), per-block features list of (B, N, C))."""

    def __init__(self, cfg: SerepConfig, spiral: torch.Tensor, n: int, dim: int):
        super().__init__()
        chans = (3,) + tuple(cfg.channels)
        self.blocks = nn.ModuleList(SpiralConv(a, b, spiral) for a, b in zip(chans[:-1], chans[1:]))
        self.fc = nn.Linear(n * chans[-1], dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for blk in self.blocks:
            x = nn.functional.elu(blk(x))
            feats.append(x)
        return self.fc(x.flatten(1)), feats


class _Decoder(nn.Module):
    """(z_id (B, Di), z_exp (B, De), identity features, motion (B, N, 3)) -> (B, N, 3) centimetre correction."""

    def __init__(self, cfg: SerepConfig, spiral: torch.Tensor, n: int):
        super().__init__()
        chans = tuple(reversed(cfg.channels))
        self.n, self.c0 = n, chans[0]
        self.fc = nn.Linear(cfg.id_dim + cfg.exp_dim, n * chans[0])
        # block k sees its input, the identity encoder's matching features (skip connection) and the motion
        ins = [c + c + 3 for c in chans]
        outs = list(chans[1:]) + [chans[-1]]
        self.blocks = nn.ModuleList(SpiralConv(a, b, spiral) for a, b in zip(ins, outs))
        self.out = SpiralConv(chans[-1], 12, spiral)    # per vertex: 3 x 3 map of the motion + 3 offset
        nn.init.zeros_(self.out.linear.weight)    # start as the plain copy of the source motion
        nn.init.zeros_(self.out.linear.bias)

    def forward(self, z_id, z_exp, id_feats: list[torch.Tensor], motion: torch.Tensor) -> torch.Tensor:
        x = self.fc(torch.cat([z_id, z_exp], 1)).reshape(-1, self.n, self.c0)
        for blk, skip in zip(self.blocks, reversed(id_feats)):
            x = nn.functional.elu(blk(torch.cat([x, skip, motion], -1)))
        y = self.out(x)
        linear = y[..., :9].reshape(y.shape[:2] + (3, 3))
        return (linear @ motion[..., None])[..., 0] + y[..., 9:]


class SerepNet(nn.Module):
    """Identity encoder, expression encoder and mesh decoder on the 478-vertex topology.

    All tensors are centimetre offsets from the canonical neutral, (B, 478, 3).
    """

    def __init__(self, cfg: SerepConfig):
        super().__init__()
        model = load_face_model()
        self.cfg = cfg
        spiral = torch.from_numpy(spiral_indices(model.neutral, model.triangles, cfg.spiral_length))
        n = model.num_vertices
        self.id_encoder = _Encoder(cfg, spiral, n, cfg.id_dim)
        self.exp_encoder = _Encoder(cfg, spiral, n, cfg.exp_dim)
        self.decoder = _Decoder(cfg, spiral, n)

    def encode_identity(self, neutral: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, N, 3) neutral offsets -> (z_id (B, id_dim), skip features)."""
        return self.id_encoder(neutral)

    def encode_expression(self, mesh: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) expressive offsets -> z_exp (B, exp_dim)."""
        return self.exp_encoder(mesh)[0]

    def decode(self, identity: tuple[torch.Tensor, list[torch.Tensor]], z_exp: torch.Tensor,
               neutral: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        """The expression ``z_exp`` (B, exp_dim) on the identity (z_id, skip features) -> (B, N, 3) offsets.

        ``neutral`` (B, N, 3): that identity's neutral (the one encoded); ``motion`` (B, N, 3): the source
        expression's displacement (source mesh - source neutral), centimetres.  Output = neutral + motion +
        the learned correction.
        """
        z_id, feats = identity
        return neutral + motion + self.decoder(z_id, z_exp, feats, motion)


def load_serep(path: str | Path) -> SerepNet:
    """Load trained SEREP weights (eval mode, CPU) with a name and shape check.

    Args:
        path: a folder holding ``serep.safetensors`` + ``config.json``, or the
            ``.safetensors`` file itself (its ``config.json`` beside it).

    Raises:
        FaceKeyError ``weights_missing`` (no file) or ``weights_invalid``
        (unreadable, missing/extra tensors or wrong shapes).
    """
    def build(c: dict) -> SerepNet:
        return SerepNet(SerepConfig(channels=tuple(int(x) for x in c["channels"]), spiral_length=int(c["spiral_length"]),
                                    id_dim=int(c["id_dim"]), exp_dim=int(c["exp_dim"])))
    return load_net(path, WEIGHTS_NAME, "SEREP", _TRAIN_HINT, build)


class SerepRetarget:
    """Captured ARKit weights -> SEREP expression codes -> meshes on another neutral.

    Args:
        net: a trained :class:`SerepNet` (see :func:`load_serep`).
    """

    def __init__(self, net: SerepNet):
        self.net = net
        self.model = load_face_model()
        self._canon = torch.from_numpy(self.model.neutral.copy())

    def _offsets(self, verts: np.ndarray) -> torch.Tensor:
        return (torch.as_tensor(np.asarray(verts, np.float32)) - self._canon) / CM

    def _source(self, weights: np.ndarray) -> np.ndarray:
        """(T, 52) weights in [0,1] -> (T, 478, 3) float32 metres: the canonical face making them."""
        w = np.asarray(weights, np.float32)
        if w.ndim != 2 or w.shape[1] != 52:
            raise FaceKeyError("bad_argument", f"weights must have shape (T, 52), got {w.shape}",
                               "Pass a Take's weights array.")
        return self.model.vertices(w).astype(np.float32)

    @torch.no_grad()
    def expression_code(self, weights: np.ndarray, batch: int = 256) -> np.ndarray:
        """(T, 52) weights in [0,1] -> (T, exp_dim) float32 codes of the canonical face making them."""
        src = self._source(weights)
        out = [self.net.encode_expression(self._offsets(src[i:i + batch])) for i in range(0, len(src), batch)]
        return torch.cat(out).numpy() if out else np.zeros((0, self.net.cfg.exp_dim), np.float32)

    @torch.no_grad()
    def decode_on(self, neutral: np.ndarray, weights: np.ndarray, batch: int = 256) -> np.ndarray:
        """The canonical face's expressions ``weights`` (T, 52) decoded on ``neutral`` (478, 3) metres
        -> (T, 478, 3) float32 metres."""
        nv = np.asarray(neutral, np.float32)
        if nv.shape != self.model.neutral.shape:
            raise FaceKeyError("bad_argument", f"neutral must have shape {self.model.neutral.shape}, got {nv.shape}",
                               "Fit the built-in model to the character first (mesh_transfer.fit_face).")
        # the canonical face's offsets from the canonical neutral are its motion: the expression
        # encoder's input and the decoder's source displacement at once, centimetres
        moved = self._offsets(self._source(weights))
        target = self._offsets(nv)[None]
        z_id, feats = self.net.encode_identity(target)          # one target: encoded once, shared by every frame
        out = []
        for i in range(0, len(moved), batch):
            mb = moved[i:i + batch]
            n = len(mb)
            identity = (z_id.expand(n, -1), [f.expand(n, -1, -1) for f in feats])
            out.append(self.net.decode(identity, self.net.encode_expression(mb), target.expand(n, -1, -1), mb) * CM
                       + self._canon)
        return torch.cat(out).numpy() if out else np.zeros((0,) + nv.shape, np.float32)

    def displacements(self, neutral: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """(T, 478, 3) metres: decoded take on ``neutral`` minus the decoded neutral expression.

        Relative to the decoded all-zero take, so a neutral frame gives exactly 0.
        """
        w = np.asarray(weights, np.float32)
        meshes = self.decode_on(neutral, np.concatenate([np.zeros((1, 52), np.float32), w]))
        return meshes[1:] - meshes[:1]
