"""An actor's face as one solve found it, reused on the other takes of the same actor.

A capture app calibrates an actor once and keeps the result for every take;
FaceKey's equivalent is any solver Take of that actor (best one calibrated on
a rest frame): its header holds the actor identity (K,) and, when calibrated,
the rest face offset (N, 3).  Solving another take with that
:class:`ActorProfile` skips the identity stage: every take of the actor is
measured from the same neutral face, so the same expression gives the same
weights from take to take, and a short take or a single photo does not have
to tell face shape from expression on its own.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

import numpy as np

from backend.facemodel import FaceModel
from backend.protocol.errors import FaceKeyError
from backend.protocol.take import Take, read_take

__all__ = ["ActorProfile"]


@dataclasses.dataclass(frozen=True)
class ActorProfile:
    """The actor's neutral face for the solver.

    Attributes:
        identity: (K,) float32 identity coefficients of the face model.
        rest_offset: (N, 3) float32 metres, head frame, the rest-face
            calibration (None when the take was not calibrated).
        source: where it came from (the take file), kept in the new Take's header.
    """

    identity: np.ndarray
    rest_offset: Optional[np.ndarray]
    source: str

    @classmethod
    def from_take(cls, take: Take, model: FaceModel, source: str) -> "ActorProfile":
        """The actor of a solver Take; raises ``bad_argument`` for a take that carries none
        (not made by the solver, e.g. an imported Live Link CSV) or one of another face model."""
        hint = "Use a take of the same actor captured by FaceKey's solver (facekey capture), ideally with a rest frame."
        header = take.header
        if header.get("estimator") != "solver":
            raise FaceKeyError("bad_argument", f"the take {source} holds no actor face "
                               f"(it was made by {header.get('estimator') or 'an import'}, not the solver)", hint)
        if header.get("identity") is None:
            raise FaceKeyError("bad_argument", f"the solver take {source} holds no actor identity (its header "
                               "has no 'identity'; the file was edited or written by another tool)", hint)
        identity = _field(header["identity"], (model.num_identity,), "actor identity", source, hint)
        rest = header.get("rest_offset")
        if rest is not None:
            rest = _field(rest, (model.num_vertices, 3), "rest face", source, hint)
        return cls(identity=identity, rest_offset=rest, source=source)

    @classmethod
    def read(cls, path: str | os.PathLike, model: FaceModel) -> "ActorProfile":
        """The actor of the Take file at ``path`` (its absolute path is the source a new take names, like the
        footage; errors as :func:`read_take` and :meth:`from_take`)."""
        return cls.from_take(read_take(path), model, os.path.abspath(os.fspath(path)))


def _field(value, shape: tuple, what: str, source: str, hint: str) -> np.ndarray:
    """``value`` as a float32 array of ``shape``, or ``bad_argument`` saying whether the shape is wrong or
    the numbers are not finite."""
    try:
        a = np.asarray(value, np.float32)
    except (TypeError, ValueError):
        raise FaceKeyError("bad_argument", f"the {what} in {source} is not an array of numbers", hint) from None
    if a.shape != shape:
        raise FaceKeyError("bad_argument", f"the {what} in {source} has shape {a.shape}, this face model needs "
                           f"{shape}", hint)
    if not np.all(np.isfinite(a)):
        raise FaceKeyError("bad_argument", f"the {what} in {source} holds NaN or infinite numbers", hint)
    return a
