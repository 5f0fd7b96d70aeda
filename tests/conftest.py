"""Shared fixtures: repo paths and the optional real-data folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def realdata_dir() -> Path | None:
    """``$FACEKEY_REALDATA`` or ``../shared/realdata`` next to the repo, if present."""
    env = os.environ.get("FACEKEY_REALDATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "realdata"]:
        if cand.is_dir():
            return cand
    return None


@pytest.fixture(scope="session")
def realdata() -> Path:
    """Path to ../shared/realdata; skips the test cleanly when it is absent."""
    d = realdata_dir()
    if d is None:
        pytest.skip("../shared/realdata is absent (set FACEKEY_REALDATA to run real-footage tests)")
    return d


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_generators(tmp_path_factory) -> tuple[Path, Path]:
    """(Motion3DGAN, S2D-Dec) weights folders from a few training steps: enough to run the chain, not to
    judge it (quality lives in benchmarks/bench_generation.py)."""
    import dataclasses

    import torch

    from training.motion3dgan.train import CONFIGS as GAN_CONFIGS, train as train_gan
    from training.s2d.train import CONFIGS as S2D_CONFIGS, train as train_s2d
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("generators")
    try:
        train_gan(dataclasses.replace(GAN_CONFIGS["tiny"], steps=5), root / "gan")
        train_s2d(dataclasses.replace(S2D_CONFIGS["tiny"], steps=5), root / "s2d")
    finally:
        torch.set_num_threads(threads)
    return root / "gan", root / "s2d"
