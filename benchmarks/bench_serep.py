"""SEREP vs plain blendshape transfer on held-out synthetic identities (MultiREX-style region errors).

    python benchmarks/bench_serep.py [--weights DIR | --config base --out DIR] [--identities 20] [--expressions 20]

Each held-out actor (identities never seen in training) receives expressions
captured on the canonical face: SEREP encodes the canonical face making them
and decodes the code on the actor's neutral; the baseline adds the same
weights times ``transfer_units(actor neutral)``, and ``copy`` adds the
canonical face's displacement unchanged (what an untrained SEREP decoder,
residual on that copy, outputs: the row shows what training adds).  Ground truth is that actor
making those weights with its own deformation-transferred units
(``training.serep.expressions``: the same weights move different faces
differently, which the baseline's scaled copy of the canonical displacements
does not capture).  Prints per-region mean
vertex distance (mm) after per-region rigid alignment, and writes JSON with ``--json``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.facemodel import load_face_model  # noqa: E402
from backend.retarget.mesh_transfer import blendshape_displacements  # noqa: E402
from backend.retarget.serep import SerepRetarget, load_serep  # noqa: E402
from training.serep.data import HELDOUT_SEED, identity_pool, random_expressions  # noqa: E402
from training.serep.expressions import IdentityExpressions  # noqa: E402
from training.serep.multirex import REGION_NAMES, region_errors  # noqa: E402


def evaluate(weights_dir: str | Path, identities: int = 20, expressions: int = 20, seed: int = 0) -> dict:
    """{"serep" | "baseline" | "copy": {region: mm}} averaged over held-out actors."""
    m = load_face_model()
    r = SerepRetarget(load_serep(weights_dir))
    faces = IdentityExpressions()
    rng = np.random.default_rng(seed)
    sums = {name: {k: 0.0 for k in (*REGION_NAMES, "mean")} for name in ("serep", "baseline", "copy")}
    for ident in identity_pool(identities, HELDOUT_SEED):
        w = random_expressions(rng, expressions, neutral_fraction=0.0)
        neutral = m.vertices(np.zeros(52), ident)
        truth = faces.vertices(w, np.repeat(ident[None], len(w), 0))
        serep = neutral[None] + r.displacements(neutral, w)
        base = neutral[None] + blendshape_displacements(neutral, w)
        copy = neutral[None] + (m.vertices(w) - m.neutral[None])
        for name, pred in (("serep", serep), ("baseline", base), ("copy", copy)):
            for k, v in region_errors(pred, truth).items():
                sums[name][k] += v / identities
    return sums


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--weights", default=None, help="a trained run folder (skip training)")
    p.add_argument("--config", default="base")
    p.add_argument("--out", default="serep_run")
    p.add_argument("--device", default="cpu")
    p.add_argument("--identities", type=int, default=20)
    p.add_argument("--expressions", type=int, default=20)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    weights = a.weights
    if weights is None:
        from training.serep.train import CONFIGS, train
        train(CONFIGS[a.config], a.out, a.device)
        weights = a.out
    res = evaluate(weights, a.identities, a.expressions)
    print(f"{'':10s}" + "".join(f"{k:>10s}" for k in (*REGION_NAMES, "mean")))
    for name, row in res.items():
        print(f"{name:10s}" + "".join(f"{row[k]:10.3f}" for k in (*REGION_NAMES, "mean")))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
