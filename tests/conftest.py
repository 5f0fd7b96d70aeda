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
