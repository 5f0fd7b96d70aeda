"""S2D-Dec training entry point (CPU or GPU, same code).

    python -m training.s2d.train --config tiny|base --out DIR [--device cuda] [--steps N] [--coma ROOT]

Trains :class:`backend.generation.s2d.S2DDecoder` on (landmark displacement,
dense displacement) pairs: every non-neutral frame of labelled synthetic
expression motions (:func:`training.motion3dgan.data.expression_motions`,
actors from the training pool), or with ``--coma`` every non-neutral frame
of the clips of the user's copy of CoMA (:mod:`training.motion3dgan.coma`,
the first clip of each sequence held out for the evaluation).  Loss, on centimetre displacements, as the
paper's equations: ``L_dr + 0.1 L_pr`` with ``L_dr`` the plain L1 (eq. 5) and
``L_pr`` the L1 weighted per vertex by :func:`backend.generation.s2d.vertex_weights`
(eq. 6; on a fixed neutral the mesh error is the displacement error).
Writes ``DIR/s2d.safetensors`` and ``DIR/config.json`` (the
:class:`TrainConfig`, including the network config the product checks the
weights against, the loss history and the held-out :func:`evaluate` result).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from backend.generation.s2d import WEIGHTS_NAME, S2DConfig, S2DDecoder, decode_dense, vertex_weights
from backend.retarget.serep import CM
from backend.tracking.ibug68 import MEDIAPIPE_TO_IBUG68
from backend.weightsfile import save_net
from training.cli import LossHistory, step_printer, training_arguments, user_errors
from training.motion3dgan.coma import motion_sets
from training.motion3dgan.data import HELDOUT_SEED, TRAIN_SEED, Motions, expression_motions

__all__ = ["TrainConfig", "CONFIGS", "train", "evaluate", "main"]


@dataclasses.dataclass
class TrainConfig:
    """One training run.  Losses are per-vertex L1 norms of centimetre displacements."""

    net: S2DConfig = S2DConfig()
    steps: int = 1500
    batch: int = 32
    lr: float = 1e-3
    motions: int = 400           # training motions (each gives frames - 1 pairs)
    frames: int = 30
    identities: int = 200        # training actor pool size
    w_plain: float = 1.0         # beta1 x L_dr, the paper's eq. 5: plain L1 of the displacements
    w_weighted: float = 0.1      # beta2 x L_pr, eq. 6: L1 weighted by closeness to the landmarks
    eval_count: int = 48         # held-out motions scored after training
    seed: int = 0
    log_every: int = 10


CONFIGS = {
    # tiny: the tests' CPU run
    "tiny": TrainConfig(net=S2DConfig(channels=(16, 16), latent=4), steps=150, batch=16, lr=2e-3, motions=48,
                        identities=48, eval_count=24),
    # base: the product default (about 5 min on one CPU thread)
    "base": TrainConfig(net=S2DConfig(channels=(32, 32), latent=8), steps=1500, batch=32, motions=400),
}


def _l1(pred: torch.Tensor, truth: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over batch and vertices of ``weights[v] * |pred - truth|_1``; (B, N, 3) inputs, (N,) weights."""
    err = (pred - truth).abs().sum(-1)
    return (err * weights).mean() if weights is not None else err.mean()


def evaluate(net: S2DDecoder, seed: int = HELDOUT_SEED, count: int = 48, motions: Motions | None = None) -> dict:
    """Mean per-vertex Euclidean error (mm) on ``count`` held-out motions (actors never trained on), or on
    ``motions`` when given (CoMA's held-out clips, say).

    Scores the decoder, its interpolation baseline and zero displacement (the floor any decoder must
    beat) on every non-neutral frame and on the apex (last) frames, over all 478 vertices and over
    the non-landmark vertices.

    Returns:
        ``{"decoder" | "baseline" | "zero": {"all", "non_landmark", "apex_all", "apex_non_landmark"}}``
        in millimetres, plus ``count``, ``seed`` and ``frames`` (pairs scored).
    """
    m = expression_motions(count, seed=seed) if motions is None else motions
    count = len(m.labels)
    sparse, dense = m.landmarks[:, 1:], m.dense[:, 1:]              # frame 0 is the neutral: all zeros
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    with torch.no_grad():
        base = net.baseline(torch.from_numpy(sparse).to(device)).cpu().numpy()
    preds = {"decoder": decode_dense(net, sparse), "baseline": base, "zero": np.zeros_like(dense)}
    net.train(was_training)
    keep = np.setdiff1d(np.arange(dense.shape[-2]), list(MEDIAPIPE_TO_IBUG68))
    res = {}
    for name, pred in preds.items():
        err = np.linalg.norm(pred - dense, axis=-1) * 1000.0                   # (count, T - 1, 478) mm
        res[name] = {"all": float(err.mean()), "non_landmark": float(err[..., keep].mean()),
                     "apex_all": float(err[:, -1].mean()), "apex_non_landmark": float(err[:, -1][..., keep].mean())}
    return {**res, "count": count, "seed": seed, "frames": int(np.prod(dense.shape[:2]))}


def train(cfg: TrainConfig, out: str | Path, device: str = "cpu", progress=None,
          coma: str | Path | None = None) -> dict:
    """Train S2D-Dec on expression motions; save weights + config in ``out``.

    Args:
        cfg: run configuration.
        out: output folder (created).
        device: torch device ("cpu", "cuda").
        progress: optional callable(step, total, losses dict).
        coma: a CoMA folder (:mod:`training.motion3dgan.coma`) to train on its clips (the first clip of
            each sequence held out for the evaluation) instead of synthetic motions.

    Returns:
        dict with ``history`` (per-log-step mean total losses), ``evaluation`` (:func:`evaluate`
        on ``cfg.eval_count`` held-out motions), ``seconds`` (data + training) and the file paths.
    """
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    sets = motion_sets(coma, cfg.frames, lambda: expression_motions(cfg.motions, frames=cfg.frames, seed=TRAIN_SEED,
                                                                    identities=cfg.identities))
    m = sets.train
    sparse = torch.from_numpy(m.landmarks[:, 1:].reshape(-1, m.landmarks.shape[2], 3)).to(device) / CM
    dense = torch.from_numpy(m.dense[:, 1:].reshape(-1, m.dense.shape[2], 3)).to(device) / CM
    w = torch.from_numpy(vertex_weights()).to(device)
    net = S2DDecoder(cfg.net).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps, eta_min=cfg.lr * 0.05)
    gen = torch.Generator().manual_seed(cfg.seed)
    history = LossHistory(cfg.steps, cfg.log_every, progress)
    for step in range(cfg.steps):
        idx = torch.randint(0, len(sparse), (cfg.batch,), generator=gen).to(device)
        pred = net(sparse[idx])
        losses = {"plain": _l1(pred, dense[idx]), "weighted": _l1(pred, dense[idx], w)}
        total = cfg.w_plain * losses["plain"] + cfg.w_weighted * losses["weighted"]
        opt.zero_grad()
        total.backward()
        opt.step()
        sched.step()
        history.add(step, total, losses)
    seconds = time.perf_counter() - start
    evaluation = {**evaluate(net, HELDOUT_SEED, cfg.eval_count, motions=sets.heldout), "heldout": sets.heldout_name}
    weights, config = save_net(net, out, WEIGHTS_NAME, {**dataclasses.asdict(cfg), "device": device, "seconds": seconds,
                                                        "history": history.values, "evaluation": evaluation,
                                                        "data": sets.data})
    return {"history": history.values, "evaluation": evaluation, "seconds": seconds, "weights": weights,
            "config": config}


@user_errors
def main(argv: list[str] | None = None) -> int:
    cfg, a = training_arguments("python -m training.s2d.train", CONFIGS, argv, WEIGHTS_NAME, coma=True)
    res = train(cfg, a.out, a.device, step_printer(cfg.log_every), coma=a.coma)
    print(f"trained in {res['seconds']:.1f} s")
    ev = res["evaluation"]
    for name in ("decoder", "baseline", "zero"):
        print(f"held-out {name:8s} " + " ".join(f"{k}={v:.4f}mm" for k, v in ev[name].items()))
    print(f"saved {res['weights']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
