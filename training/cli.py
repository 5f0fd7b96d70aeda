"""What every training script shares: the command line (``--config --out --device --steps --threads
[--overwrite] [--coma]``, checked before any work: a run is never lost to a bad option at its end), user
errors printed as ``error[code]`` + hint, step logs and the loss history."""
from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from backend.protocol.errors import FaceKeyError
from backend.weightsfile import CONFIG_NAME

__all__ = ["training_arguments", "check_output_folder", "check_device", "user_errors", "step_printer", "LossHistory"]


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


def training_arguments(prog: str, configs: dict, argv: list[str] | None, weights_name: str, coma: bool = False):
    """Parse and check the shared options; returns ``(the chosen config, --steps applied, parsed args)``.

    ``weights_name``: the file the run writes into ``--out`` (:func:`check_output_folder`).  ``coma``: also
    take ``--coma ROOT`` (train on the user's copy of CoMA, :mod:`training.motion3dgan.coma`; ``args.coma``
    is None without it).  Sets torch's CPU thread count when ``--threads`` is given.

    Raises:
        FaceKeyError: ``bad_argument`` for an unusable ``--device`` or ``--out``.
    """
    p = argparse.ArgumentParser(prog=prog)
    p.add_argument("--config", choices=sorted(configs), default="base")
    p.add_argument("--out", required=True, help="folder for the weights and config.json (one model per folder)")
    p.add_argument("--overwrite", action="store_true", help="replace the model already trained in --out")
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=_at_least_one, default=None, help="override the config's step count")
    p.add_argument("--threads", type=_at_least_one, default=None, help="torch CPU threads")
    if coma:
        p.add_argument("--coma", default=None, metavar="ROOT",
                       help="train on CoMA's sequences in ROOT/<subject>/<label>/*.ply instead of synthetic motions")
    a = p.parse_args(argv)
    check_device(a.device)
    check_output_folder(a.out, weights_name, a.overwrite)
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    cfg = configs[a.config]
    return (dataclasses.replace(cfg, steps=a.steps) if a.steps is not None else cfg), a


def check_device(device: str) -> None:
    """Raise ``bad_argument`` unless torch can train on ``device`` ("cpu", "cuda", "cuda:1", ...)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise FaceKeyError("bad_argument", f"--device {device!r} is not a torch device ({e}).",
                           "Use cpu, cuda or cuda:N.") from None
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise FaceKeyError("bad_argument", f"--device {device}: no such CUDA device here "
                           f"({torch.cuda.device_count()} visible, torch {torch.__version__}).",
                           "Train with --device cpu, or install a CUDA build of torch on a machine with the GPU.")
    if dev.type not in ("cpu", "cuda"):
        raise FaceKeyError("bad_argument", f"--device {device}: training runs on cpu or cuda.", "Use cpu or cuda.")


def check_output_folder(out: str | os.PathLike, weights_name: str, overwrite: bool = False) -> None:
    """Raise ``bad_argument`` when a run could not save into ``out``, or would destroy a trained model there.

    ``out`` must be a folder (or not exist yet) under a writable folder.  A folder holding this model's
    weights is replaced only with ``overwrite``; one holding another model's weights never is, because
    the two would share (and break) its ``config.json``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FaceKeyError("bad_argument", f"--out {out} is a file; the weights go into a folder.",
                           "Pass a folder, e.g. --out runs/s2d.")
    parent = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not parent.is_dir():
        raise FaceKeyError("bad_argument", f"--out {out}: {parent} is a file, not a folder.",
                           "Pass a folder path, e.g. --out runs/s2d.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FaceKeyError("bad_argument", f"--out {out}: {parent} is not writable.", "Pick a folder you can write to.")
    others = sorted(p.name for p in out.glob("*.safetensors") if p.name != weights_name) if out.is_dir() else []
    if others and (out / CONFIG_NAME).exists():
        raise FaceKeyError("bad_argument", f"--out {out} already holds another model ({', '.join(others)}); its "
                           f"{CONFIG_NAME} would be replaced by this one's.",
                           "Give each model its own folder, e.g. gen/motion3dgan and gen/s2d.")
    if (out / weights_name).exists() and not overwrite:
        raise FaceKeyError("bad_argument", f"--out {out} already holds a trained {weights_name}.",
                           "Pass --overwrite to replace it, or another --out to keep it.")


def user_errors(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a training ``main``: a FaceKeyError (bad options, a data set that is not there) is printed as
    ``error[code]: message`` and its hint on stderr, and the exit code is 2 (no traceback)."""
    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except FaceKeyError as e:
            print(f"error[{e.code}]: {e.message}" + (f"\nhint: {e.hint}" if e.hint else ""), file=sys.stderr)
            return 2
    return wrapper


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
