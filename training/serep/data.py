"""Training meshes from the built-in face model: random identities x sparse ARKit expressions.

Identities are standard-normal coefficient vectors drawn from a seeded pool;
the train and held-out pools come from different seeds, so held-out actors
are never seen in training.  An expression is 1-4 random units (never both
of an exclusive pair; half of the Left/Right units mirrored) with weights
uniform in [0.2, 1]; one sample in ``neutral_fraction`` is the neutral face.

A batch holds, for identities ``a``, ``b`` and expressions ``e1``, ``e2``:
``src`` = a making e1, ``tgt`` = b making e1 (the same expression on another
face), ``other`` = a making e2, ``canonical`` / ``canonical_other`` = the
canonical face (identity 0) making e1 / e2, and the neutrals of a and b.  The
product always retargets from the canonical face (a take's weights are
decoded on it), so every decoded mesh is the canonical face's motion carried
onto a or b.  Each actor makes
an expression with its own units, deformation-transferred from the canonical
ones (:mod:`training.serep.expressions`), so the same weights move two faces
differently, as they do on real actors.  All arrays are metres in the head
frame, (B, 478, 3) float32.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from backend.facemodel import load_face_model
from backend.protocol.arkit import ARKIT_NAMES, EXCLUSIVE_PAIRS, MIRROR

from .expressions import IdentityExpressions

__all__ = ["Batch", "identity_pool", "random_expressions", "MeshSampler", "TRAIN_SEED", "HELDOUT_SEED"]

TRAIN_SEED = 1
HELDOUT_SEED = 2


@dataclasses.dataclass
class Batch:
    """One training batch; every mesh (B, 478, 3) float32 metres, weights (B, 52)."""

    neutral_a: np.ndarray
    neutral_b: np.ndarray
    src: np.ndarray
    tgt: np.ndarray
    other: np.ndarray
    canonical: np.ndarray
    canonical_other: np.ndarray
    weights: np.ndarray


def identity_pool(count: int, seed: int) -> np.ndarray:
    """(count, K) float32 standard-normal identity coefficients."""
    return np.random.default_rng(seed).normal(size=(count, load_face_model().num_identity)).astype(np.float32)


def random_expressions(rng: np.random.Generator, count: int, neutral_fraction: float = 0.1) -> np.ndarray:
    """(count, 52) float32 sparse weights in [0, 1] (see module doc)."""
    partner: dict[int, set[int]] = {}
    for a, b in EXCLUSIVE_PAIRS:
        partner.setdefault(a, set()).add(b)
        partner.setdefault(b, set()).add(a)
    w = np.zeros((count, len(ARKIT_NAMES)), np.float32)
    for i in range(count):
        if rng.random() < neutral_fraction:
            continue
        for k in rng.choice(len(ARKIT_NAMES), int(rng.integers(1, 5)), replace=False):
            group = [int(k)] + ([MIRROR[k]] if MIRROR[k] != k and rng.random() < 0.5 else [])
            if len(group) == 2 and group[1] in partner.get(group[0], ()):
                group = group[:1]            # jawLeft's mirror is jawRight: a pair, never both
            if any(w[i, p] > 0 for g in group for p in partner.get(g, ())):
                continue
            w[i, group] = rng.uniform(0.2, 1.0)
    return w


class MeshSampler:
    """Draws :class:`Batch` es from an identity pool (seeded, reproducible)."""

    def __init__(self, identities: np.ndarray, seed: int = 0):
        self.model = load_face_model()
        self.faces = IdentityExpressions()
        self.ids = np.asarray(identities, np.float32)
        self.rng = np.random.default_rng(seed)

    def sample(self, batch: int) -> Batch:
        r = self.rng
        ia = r.integers(0, len(self.ids), batch)
        ib = r.integers(0, len(self.ids), batch)
        e1 = random_expressions(r, batch)
        e2 = random_expressions(r, batch)
        zero = np.zeros_like(e1)
        m, f = self.model, self.faces
        return Batch(neutral_a=m.vertices(zero, self.ids[ia]), neutral_b=m.vertices(zero, self.ids[ib]),
                     src=f.vertices(e1, self.ids[ia]), tgt=f.vertices(e1, self.ids[ib]),
                     other=f.vertices(e2, self.ids[ia]), canonical=m.vertices(e1),
                     canonical_other=m.vertices(e2), weights=e1)
