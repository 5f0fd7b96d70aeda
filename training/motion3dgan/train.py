"""Motion3DGAN training entry point (CPU or GPU, same code).

    python -m training.motion3dgan.train --config tiny|base --out DIR [--device cuda] [--steps N] [--coma ROOT]

Trains :class:`backend.generation.motion3dgan.Motion3DGAN` on the labelled
synthetic expression motions of :mod:`training.motion3dgan.data`, or with
``--coma`` on the clips of the user's copy of CoMA
(:mod:`training.motion3dgan.coma`; the first clip of each sequence is held
out for the evaluation, as in the paper).  As in the paper: a conditional
WGAN-GP in the tangent space of the SRVF hypersphere at
the training set's mean SRVF p, generator loss
``alpha_adv * L_adv + alpha_rec * L_r`` with ``L_r`` the L1 distance (mean
over elements, in the networks' units: tangent vectors times ``sqrt(3 k)``)
between ``log_p(exp_p(G(z, c)))`` and ``log_p(q)`` of a real SRVF ``q`` of
label c, Adam.  The generator's label skip starts at each label's mean
tangent vector, so the GAN learns the variation around it.  Then evaluates the generator against held-out
real motions (:func:`evaluate`).

Writes ``DIR/motion3dgan.safetensors`` (the network state) and
``DIR/config.json`` (the :class:`TrainConfig`, including the network config
the product checks the weights against, the loss history, the training time
and the evaluation).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from backend.generation.motion3dgan import (WEIGHTS_NAME, Motion3DGAN, Motion3DGANConfig, exp_map, log_map,
                                            sample_landmark_motions)
from backend.generation.srvf import motion_to_srvf, sphere_log, sphere_mean
from backend.protocol.errors import FaceKeyError
from backend.protocol.labels import LABELS
from backend.weightsfile import save_net
from training.cli import step_printer, training_arguments, user_errors

from .coma import motion_sets
from .data import HELDOUT_SEED, TRAIN_SEED, Motions, expression_motions

__all__ = ["TrainConfig", "CONFIGS", "train", "evaluate", "main"]


@dataclasses.dataclass
class TrainConfig:
    """One training run.

    ``steps`` generator updates, each after ``n_critic`` critic updates with
    gradient penalty weight ``gp``; ``train_samples`` synthetic motions (labels
    cycling); the evaluation generates ``eval_samples`` motions per label and
    compares them with ``eval_real`` held-out real motions per label.
    """

    net: Motion3DGANConfig = Motion3DGANConfig()
    steps: int = 600
    batch: int = 32
    lr: float = 5e-4
    n_critic: int = 5
    gp: float = 10.0
    alpha_adv: float = 1.0
    alpha_rec: float = 10.0
    train_samples: int = 600
    eval_samples: int = 20
    eval_real: int = 20
    seed: int = 0
    log_every: int = 20


CONFIGS = {
    # tiny: the tests' CPU run (~15 s on one thread)
    "tiny": TrainConfig(net=Motion3DGANConfig(noise_dim=16, hidden=(32, 64)), steps=30, batch=16, lr=1e-3,
                        train_samples=48, eval_samples=6, eval_real=2, log_every=10),
    # base: the product default (~8 min on one CPU thread, 1-2 min of it making the data)
    "base": TrainConfig(net=Motion3DGANConfig(hidden=(128, 256)), steps=600, batch=32, lr=5e-4, train_samples=600),
}


def _heldout(cfg: Motion3DGANConfig, per_label: int) -> Motions:
    return expression_motions(per_label * len(LABELS), frames=cfg.frames, seed=HELDOUT_SEED)


def _pairwise(x: np.ndarray) -> float:
    """Mean L2 distance over distinct pairs of the rows of ``x`` (n, d)."""
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    n = len(x)
    return float(d.sum() / (n * (n - 1)))


def evaluate(net: Motion3DGAN, seed: int = 0, per_label: int = 20, real: Motions | None = None,
             real_per_label: int = 20) -> dict:
    """Label fidelity, diversity and size of generated motions against held-out real ones.

    Apex = last frame (68 x 3 landmark displacements, metres, flattened).

    Args:
        net: the model (any device).
        seed: generation seed (label i uses ``seed + i``).
        per_label: generated motions per label.
        real: held-out real motions (any number per label; the diversity is over the labels
            with two or more, NaN when none has); default
            ``real_per_label`` per label from ``HELDOUT_SEED``.
        real_per_label: see ``real``.

    Returns:
        dict: ``label_accuracy`` (fraction of generated motions whose apex's
        nearest real apex, L2, has their own label: a 1-nearest-neighbour
        classifier: a label whose motions vary in kind is scored against
        all of them, not their average; chance ``chance`` = 1/12), ``per_label_accuracy`` {label: fraction},
        ``diversity`` (mean pairwise apex distance within a label, averaged
        over labels, generated / real), ``size_ratio`` (mean apex norm
        generated / real), ``real_apex_norm`` and ``generated_apex_norm``
        (metres).
    """
    real = _heldout(net.cfg, real_per_label) if real is None else real
    real_apex = real.landmarks[:, -1].reshape(len(real.labels), -1).astype(np.float64)
    n = len(LABELS)
    gen_apex = [sample_landmark_motions(net, i, per_label, seed + i)[:, -1].reshape(per_label, -1).astype(np.float64)
                for i in range(n)]
    correct = [real.labels[np.linalg.norm(g[:, None] - real_apex[None], axis=-1).argmin(1)] == i
               for i, g in enumerate(gen_apex)]
    varied = [i for i in range(n) if (real.labels == i).sum() >= 2]     # a diversity needs two real motions
    gen_div = np.mean([_pairwise(gen_apex[i]) for i in varied]) if varied else np.nan
    real_div = np.mean([_pairwise(real_apex[real.labels == i]) for i in varied]) if varied else np.nan
    gen_size = float(np.mean([np.linalg.norm(g, axis=1).mean() for g in gen_apex]))
    real_size = float(np.linalg.norm(real_apex, axis=1).mean())
    return {"label_accuracy": float(np.mean(correct)), "chance": 1.0 / n,
            "per_label_accuracy": {lab: float(c.mean()) for lab, c in zip(LABELS, correct)},
            "diversity": float(gen_div / real_div), "size_ratio": gen_size / real_size,
            "real_apex_norm": real_size, "generated_apex_norm": gen_size}


def _gradient_penalty(net: Motion3DGAN, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """WGAN-GP term: mean (|grad_v D(v)| - 1)^2 at random points between real and fake tangent vectors."""
    tau = torch.rand(len(real), 1, 1, 1, device=real.device)
    mix = (tau * real + (1 - tau) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(net.score(mix, labels).sum(), mix, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def train(cfg: TrainConfig, out: str | Path, device: str = "cpu", progress=None,
          coma: str | Path | None = None) -> dict:
    """Train Motion3DGAN on labelled motions; save weights + config in ``out``; evaluate.

    Args:
        cfg: run configuration.
        out: output folder (created).
        device: torch device ("cpu", "cuda").
        progress: optional callable(step, total, losses dict).
        coma: a CoMA folder (:mod:`training.motion3dgan.coma`) to train on its clips (the first
            clip of each sequence held out for the evaluation) instead of synthetic motions.

    Returns:
        dict with ``history`` (per log step: step, mean critic loss, mean
        Wasserstein estimate, mean reconstruction loss), ``train_seconds``
        (data + updates, without the evaluation), ``evaluation`` (see
        :func:`evaluate`) and the file paths.
    """
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    sets = motion_sets(coma, cfg.net.frames,
                       lambda: expression_motions(cfg.train_samples, frames=cfg.net.frames, seed=TRAIN_SEED))
    data = sets.train
    missing = [label for i, label in enumerate(LABELS) if not (data.labels == i).any()]
    if missing:
        raise FaceKeyError("bad_argument", f"no training clip of {', '.join(missing)}",
                           "Motion3DGAN learns every label: the data set needs sequences of all 12 "
                           "(with two or more apexes each on CoMA, the first being held out).")
    q, scale = motion_to_srvf(data.landmarks)
    p = sphere_mean(q)
    net = Motion3DGAN(cfg.net)
    net.reference.copy_(torch.from_numpy(p))
    for i in range(len(LABELS)):
        net.scale_mean[i] = float(scale[data.labels == i].mean())
        net.scale_std[i] = float(scale[data.labels == i].std())
    net = net.to(device)
    real_np = sphere_log(p[None], q)
    with torch.no_grad():                   # the generator's label skip starts at each label's mean tangent vector
        means = np.stack([real_np[data.labels == i].mean(0).ravel() for i in range(len(LABELS))], 1)
        net.generator.label_out.weight.copy_(torch.from_numpy(means * net.generator.unit))
    real_v = torch.from_numpy(real_np.astype(np.float32)).to(device)
    labels_all = torch.from_numpy(data.labels).to(device)
    by_label = [np.flatnonzero(data.labels == i) for i in range(len(LABELS))]
    opt_g = torch.optim.Adam(net.generator.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(net.critic.parameters(), lr=cfg.lr, betas=(0.5, 0.9))

    def fake_tangent(labels: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(len(labels), cfg.net.noise_dim, device=device)
        return log_map(net.reference, exp_map(net.reference, net.tangent(noise, labels)))

    history, window = [], []
    for step in range(cfg.steps):
        for _ in range(cfg.n_critic):
            idx = torch.from_numpy(rng.integers(0, len(real_v), cfg.batch)).to(device)
            real, labels = real_v[idx], labels_all[idx]
            with torch.no_grad():
                fake = fake_tangent(labels)
            wdist = net.score(real, labels).mean() - net.score(fake, labels).mean()
            loss_d = -wdist + cfg.gp * _gradient_penalty(net, real, fake, labels)
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        # generator: labels of a real batch, reconstruction against other real motions of the same labels
        idx = rng.integers(0, len(real_v), cfg.batch)
        other = np.array([rng.choice(by_label[int(data.labels[i])]) for i in idx])
        labels = labels_all[torch.from_numpy(idx).to(device)]
        fake = fake_tangent(labels)
        rec = (fake - real_v[torch.from_numpy(other).to(device)]).abs().mean() * net.generator.unit
        loss_g = -cfg.alpha_adv * net.score(fake, labels).mean() + cfg.alpha_rec * rec
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        window.append((loss_d.item(), wdist.item(), rec.item()))
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            d, w, r = np.mean(window, axis=0)
            history.append({"step": step + 1, "critic": float(d), "wasserstein": float(w), "rec": float(r)})
            window = []
            if progress:
                progress(step + 1, cfg.steps, {"critic": loss_d.item(), "wasserstein": wdist.item(),
                                               "rec": rec.item()})
    net = net.cpu().eval()
    seconds = time.perf_counter() - t0
    evaluation = {**evaluate(net, cfg.seed, cfg.eval_samples, real=sets.heldout, real_per_label=cfg.eval_real),
                  "heldout": sets.heldout_name}
    weights, config = save_net(net, out, WEIGHTS_NAME, {**dataclasses.asdict(cfg), "device": device, "history": history,
                                                        "train_seconds": seconds, "evaluation": evaluation,
                                                        "data": sets.data})
    return {"history": history, "train_seconds": seconds, "evaluation": evaluation, "weights": weights, "config": config}


@user_errors
def main(argv: list[str] | None = None) -> int:
    cfg, a = training_arguments("python -m training.motion3dgan.train", CONFIGS, argv, WEIGHTS_NAME, coma=True)
    res = train(cfg, a.out, a.device, step_printer(cfg.log_every), coma=a.coma)
    ev = res["evaluation"]
    print(f"trained in {res['train_seconds']:.1f} s; label accuracy {ev['label_accuracy']:.3f} "
          f"(chance {ev['chance']:.3f}), diversity {ev['diversity']:.3f}, size ratio {ev['size_ratio']:.3f}")
    print(f"saved {res['weights']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
