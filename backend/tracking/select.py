"""Which face to follow when several are visible (pure numpy, no MediaPipe).

Rule, applied when no face is being followed yet (the first frame with a
face, or after the followed face was lost):

* ``face_index=None`` (default): the largest face, by the area of the
  bounding box of its landmarks (x, y).
* ``face_index=k``: the k-th face counted from the left of the image
  (0 = leftmost), ordered by the x of its landmark bounding-box centre.
  If fewer than k + 1 faces are visible, no face is chosen on that frame.

Once a face is chosen it is *followed*: on the next frames the candidate
whose bounding-box centre is nearest to the followed one is taken, as long as
it lies within ``gate`` times the followed face's bounding-box diagonal, so
the choice does not flip between people who move or change size.  When no
candidate is that close (the person left, or a cut), the rule picks again.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

__all__ = ["face_box", "FaceSelector", "order_left_to_right"]


def face_box(points: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) bounding box of (L, 2+) landmarks in pixels."""
    xy = np.asarray(points)[:, :2]
    x0, y0 = np.nanmin(xy, axis=0)
    x1, y1 = np.nanmax(xy, axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def _centre_size(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    x0, y0, x1, y1 = face_box(points)
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    return centre, (x1 - x0) * (y1 - y0), float(np.hypot(x1 - x0, y1 - y0))


def order_left_to_right(candidates: Sequence[np.ndarray]) -> list[int]:
    """Indices of ``candidates`` sorted by bounding-box centre x (leftmost first)."""
    return sorted(range(len(candidates)), key=lambda i: _centre_size(candidates[i])[0][0])


class FaceSelector:
    """Stateful chooser of one face per frame (see the module docstring).

    Args:
        face_index: None for the largest face, else the position counted
            from the left (0-based).
        gate: how far (in followed-face diagonals) the followed face may move
            between two frames where it is seen and still count as the same.
    """

    def __init__(self, face_index: Optional[int] = None, gate: float = 1.0):
        if face_index is not None and face_index < 0:
            raise ValueError("face_index must be >= 0")
        self.face_index = face_index
        self.gate = float(gate)
        self._centre: Optional[np.ndarray] = None
        self._diag = 0.0
        self.max_seen = 0  # the most candidates seen on one frame
        self.acquisitions = 0  # how many times the rule (re)picked a face

    @property
    def following(self) -> bool:
        return self._centre is not None

    def reset(self) -> None:
        self._centre = None
        self._diag = 0.0

    @property
    def followed(self) -> Optional[tuple[np.ndarray, float]]:
        """(centre (2,), bounding-box diagonal) of the followed face, or None."""
        return None if self._centre is None else (self._centre.copy(), self._diag)

    def accepts(self, points: np.ndarray) -> bool:
        """Whether one face lies within the gate of the followed one (always False when not following)."""
        if self._centre is None:
            return False
        centre, _, _ = _centre_size(points)
        return float(np.linalg.norm(centre - self._centre)) <= self.gate * max(self._diag, 1e-6)

    def take(self, points: np.ndarray) -> None:
        """Follow ``points`` from now on (after :meth:`accepts` said yes)."""
        centre, _, diag = _centre_size(points)
        self._centre, self._diag = centre, diag

    def pick_by_rule(self, candidates: Sequence[np.ndarray]) -> Optional[int]:
        """Apply the rule alone (largest, or k-th from the left); None if impossible."""
        if not candidates:
            return None
        if self.face_index is None:
            return int(np.argmax([_centre_size(c)[1] for c in candidates]))
        order = order_left_to_right(candidates)
        return order[self.face_index] if self.face_index < len(order) else None

    def choose(self, candidates: Sequence[np.ndarray]) -> Optional[int]:
        """Index into ``candidates`` of the face to use on this frame, or None."""
        self.max_seen = max(self.max_seen, len(candidates))
        if not candidates:
            return None  # keep following: the face may come back where it was
        pick = None
        if self._centre is not None:
            dists = [float(np.linalg.norm(_centre_size(c)[0] - self._centre)) for c in candidates]
            j = int(np.argmin(dists))
            if dists[j] <= self.gate * max(self._diag, 1e-6):
                pick = j
        if pick is None:
            pick = self.pick_by_rule(candidates)
            if pick is None:
                return None
            self.acquisitions += 1
        centre, _, diag = _centre_size(candidates[pick])
        self._centre, self._diag = centre, diag
        return pick
