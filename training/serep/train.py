"""SEREP training entry point (CPU or GPU, same code).

    python -m training.serep.train --config tiny|base --out DIR [--device cuda] [--steps N]

Writes ``DIR/serep.safetensors`` (the :class:`backend.retarget.serep.SerepNet`
state) and ``DIR/config.json`` (the :class:`TrainConfig`, including the
network config the product checks the weights against, and the loss history).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from backend.facemodel import load_face_model
from backend.retarget.serep import CM, WEIGHTS_NAME, SerepConfig, SerepNet
from backend.weightsfile import save_net
from training.cli import LossHistory, step_printer, training_arguments, user_errors

from .data import TRAIN_SEED, MeshSampler, identity_pool
from .losses import cycle_loss, delta_loss, edge_loss, mesh_edges, reconstruction_loss

__all__ = ["TrainConfig", "CONFIGS", "train", "main"]


@dataclasses.dataclass
class TrainConfig:
    """One training run.  Loss weights apply to centimetre-offset meshes."""

    net: SerepConfig = SerepConfig()
    steps: int = 3000
    batch: int = 32
    lr: float = 1e-3
    train_identities: int = 400
    w_rec: float = 1.0
    w_delta: float = 0.1      # the decoder's correction to the plain copy, squared: keeps it small
    w_edge: float = 1.0
    w_cycle: float = 0.1
    seed: int = 0
    log_every: int = 10


CONFIGS = {
    # tiny: the tests' CPU run (120 steps)
    "tiny": TrainConfig(net=SerepConfig(channels=(8, 16), spiral_length=9, id_dim=16, exp_dim=16), steps=120,
                        batch=16, lr=2e-3, train_identities=64),
    "base": TrainConfig(net=SerepConfig(channels=(16, 32), spiral_length=9, id_dim=32, exp_dim=32), steps=1500,
                        batch=24, train_identities=400),
}


def _t(x: np.ndarray, canon: torch.Tensor, device) -> torch.Tensor:
    return (torch.from_numpy(x).to(device) - canon) / CM


def train(cfg: TrainConfig, out: str | Path, device: str = "cpu", progress=None) -> dict:
    """Train SEREP on built-in model meshes; save weights + config in ``out``.

    Args:
        cfg: run configuration.
        out: output folder (created).
        device: torch device ("cpu", "cuda").
        progress: optional callable(step, total, losses dict).

    Returns:
        dict with ``history`` (list of per-log-step mean total losses) and the file paths.
    """
    torch.manual_seed(cfg.seed)
    model = load_face_model()
    canon0 = torch.from_numpy(model.neutral.copy()).to(device)
    edges = mesh_edges(model.triangles).to(device)
    net = SerepNet(cfg.net).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps, eta_min=cfg.lr * 0.05)
    sampler = MeshSampler(identity_pool(cfg.train_identities, TRAIN_SEED), seed=cfg.seed)
    history = LossHistory(cfg.steps, cfg.log_every, progress)
    for step in range(cfg.steps):
        b = sampler.sample(cfg.batch)
        na, nb, src, tgt, other, c1, c2 = (_t(x, canon0, device) for x in (
            b.neutral_a, b.neutral_b, b.src, b.tgt, b.other, b.canonical, b.canonical_other))
        # canonical neutral offsets are 0, so c1 / c2 are the canonical face's motions
        id_a, id_b = net.encode_identity(na), net.encode_identity(nb)
        z1, z2, zc = net.encode_expression(src), net.encode_expression(other), net.encode_expression(c1)
        rec_src, rec_other = net.decode(id_a, z1, na, c1), net.decode(id_a, z2, na, c2)
        ret = net.decode(id_b, zc, nb, c1)
        losses = {
            "rec": reconstruction_loss(rec_src, src) + reconstruction_loss(rec_other, other)
            + reconstruction_loss(ret, tgt),
            "delta": delta_loss(ret, nb, c1, torch.zeros_like(c1)),
            "edge": edge_loss(ret, tgt, edges) + edge_loss(rec_src, src, edges),
            "cycle": cycle_loss(zc, net.encode_expression(ret)) + cycle_loss(z1, zc),
        }
        total = (cfg.w_rec * losses["rec"] + cfg.w_delta * losses["delta"] + cfg.w_edge * losses["edge"]
                 + cfg.w_cycle * losses["cycle"])
        opt.zero_grad()
        total.backward()
        opt.step()
        sched.step()
        history.add(step, total, losses)
    weights, config = save_net(net, out, WEIGHTS_NAME, {**dataclasses.asdict(cfg), "device": device,
                                                        "history": history.values})
    return {"history": history.values, "weights": weights, "config": config}


@user_errors
def main(argv: list[str] | None = None) -> int:
    cfg, a = training_arguments("python -m training.serep.train", CONFIGS, argv, WEIGHTS_NAME)
    res = train(cfg, a.out, a.device, step_printer(cfg.log_every))
    print(f"saved {res['weights']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
