"""Estimators: FaceTrack (+ frames) in, Take out, behind one interface."""
from __future__ import annotations

import threading
from typing import Any, Callable, Optional, Protocol

from backend.protocol.errors import FaceKeyError
from backend.protocol.messages import Progress
from backend.protocol.take import Take
from backend.tracking.track import FaceTrack

from .actor import ActorProfile
from .solver import SolverEstimator, SolverSettings

__all__ = ["Estimator", "get_estimator", "ESTIMATORS", "SolverSettings", "ActorProfile"]


class Estimator(Protocol):
    """What every estimator provides.

    Attributes:
        name: registry name (stored in the Take header).
        needs: required inputs, e.g. ["landmarks"] or ["landmarks", "frames"].
        weights: names of the weights files it needs (empty for the solver).
        device: torch device string it runs on.
    """

    name: str
    needs: list[str]
    weights: list[str]
    device: str

    def estimate(self, track: FaceTrack, settings: Any = None,
                 progress: Optional[Callable[[Progress], Any]] = None,
                 cancel: Optional[threading.Event] = None, actor: Optional[ActorProfile] = None) -> Take: ...


#: Registry: name -> class taking ``device``.
ESTIMATORS: dict[str, type] = {"solver": SolverEstimator}


def get_estimator(name: str = "solver", device: str = "cpu") -> Estimator:
    """Return the estimator called ``name`` on ``device``; unknown names raise ``bad_argument``."""
    cls = ESTIMATORS.get(name)
    if cls is None:
        raise FaceKeyError("bad_argument", f"unknown estimator {name!r}",
                           f"Choose one of: {', '.join(sorted(ESTIMATORS))}.")
    return cls(device=device)
