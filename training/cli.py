"""What every training script shares: the command line (``--config --out --device --steps --threads [--coma]``),
step logs and the loss history."""
from __future__ import annotations

import argparse
import dataclasses
from typing import Callable

import numpy as np
import torch

__all__ = ["training_arguments", "step_printer", "LossHistory"]


def training_arguments(prog: str, configs: dict, argv: list[str] | None, coma: bool = False):
    """Parse the shared options; returns ``(the chosen config, --steps applied, parsed args)``.

    ``coma``: also take ``--coma ROOT`` (train on the user's copy of CoMA, :mod:`training.motion3dgan.coma`;
    ``args.coma`` is None without it).  Sets torch's CPU thread count when ``--threads`` is given.
    """
    p = argparse.ArgumentParser(prog=prog)
    p.add_argument("--config", choices=sorted(configs), default="base")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=None, help="override the config's step count")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    if coma:
        p.add_argument("--coma", default=None, metavar="ROOT",
                       help="train on CoMA's sequences in ROOT/<subject>/<label>/*.ply instead of synthetic motions")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = configs[a.config]
    return (dataclasses.replace(cfg, steps=a.steps) if a.steps else cfg), a


def step_printer(log_every: int) -> Callable[[int, int, dict], None]:
    """A ``progress(step, total, losses)`` that prints every ``10 * log_every`` steps and the last one."""
    def report(step: int, total: int, losses: dict) -> None:
        if step % (log_every * 10) == 0 or step == total:
            print(f"step {step}/{total} " + " ".join(f"{k}={v:.4f}" for k, v in losses.items()), flush=True)
    return report


class LossHistory:
    """A training run's loss history: ``values`` gets the mean total loss of every ``log_every`` steps
    (and of the last, shorter window); ``progress(step, total, losses)`` is called at those steps with
    that step's losses."""

    def __init__(self, steps: int, log_every: int, progress: Callable[[int, int, dict], None] | None = None):
        self.steps, self.log_every, self.progress = steps, log_every, progress
        self.values: list[float] = []
        self._window: list[float] = []

    def add(self, step: int, total: torch.Tensor, losses: dict[str, torch.Tensor]) -> None:
        """Record the 0-based ``step``'s total loss (a scalar tensor) and its named ``losses``."""
        self._window.append(total.item())
        if (step + 1) % self.log_every == 0 or step + 1 == self.steps:
            self.values.append(float(np.mean(self._window)))
            self._window = []
            if self.progress:
                self.progress(step + 1, self.steps, {k: v.item() for k, v in losses.items()})
