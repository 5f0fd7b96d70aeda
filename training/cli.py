"""The command line every training script shares: ``--config --out --device --steps --threads [--coma]``, step logs."""
from __future__ import annotations

import argparse
import dataclasses
from typing import Callable

import torch

__all__ = ["training_arguments", "step_printer"]


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
