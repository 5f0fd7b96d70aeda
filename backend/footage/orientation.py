"""Display orientation of decoded frames (rotation metadata).

Phones store portrait video as landscape frames plus a *display matrix* that
says how to turn them for display.  FFmpeg (and PyAV's ``VideoFrame.rotation``)
report that as a counter-clockwise angle: the displayed picture is the stored
one rotated counter-clockwise by ``rotation`` degrees (ffmpeg's own
``-autorotate`` does exactly this).  The older MP4/MOV ``rotate`` metadata tag
is the same turn expressed clockwise (``rotate=90`` == ``rotation=-90``).

An :class:`Orientation` is one of the 8 right-angle turns/mirrors of an image;
:func:`apply_orientation` applies it with ``np.rot90`` (a view, no copy) and
an optional left-right mirror done *before* the turn.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from typing import Optional, Sequence

import numpy as np

__all__ = ["Orientation", "orientation_from_display_matrix", "orientation_from_rotate_tag",
           "orientation_from_degrees", "orientation_from_exif", "apply_orientation"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Orientation:
    """How to turn a stored frame for display.

    Attributes:
        quarter_turns: number of 90-degree counter-clockwise turns (0..3),
            as ``np.rot90(image, quarter_turns)``.
        hflip: mirror left-right before turning.
    """

    quarter_turns: int = 0
    hflip: bool = False

    @property
    def degrees(self) -> int:
        """Counter-clockwise degrees of the turn (0, 90, 180, 270)."""
        return 90 * self.quarter_turns

    @property
    def swaps_axes(self) -> bool:
        """True when width and height trade places (90/270 degree turns)."""
        return self.quarter_turns % 2 == 1

    @property
    def is_identity(self) -> bool:
        return self.quarter_turns == 0 and not self.hflip

    def display_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the displayed image for a stored ``width`` x ``height`` frame."""
        return (height, width) if self.swaps_axes else (width, height)

    def matrix(self) -> np.ndarray:
        """2x2 integer map of stored pixel offsets (x right, y down) to displayed ones."""
        m = np.array([[-1, 0], [0, 1]]) if self.hflip else np.eye(2, dtype=int)
        ccw = np.array([[0, 1], [-1, 0]])  # (x, y) -> (y, -x): a CCW turn on screen (y down)
        for _ in range(self.quarter_turns):
            m = ccw @ m
        return m


def orientation_from_degrees(degrees: float, hflip: bool = False) -> Orientation:
    """Counter-clockwise degrees (any multiple of 90, sign free) to an Orientation.

    Angles that are not a multiple of 90 are rounded to the nearest one with a
    warning (arbitrary-angle display matrices are not used by cameras).
    """
    if not math.isfinite(degrees):
        return Orientation(0, hflip)
    q = int(round(degrees / 90.0))
    if abs(degrees - 90 * q) > 1.0:
        log.warning("display rotation %.1f deg is not a multiple of 90; using %d", degrees, 90 * q)
    return Orientation(q % 4, bool(hflip))


#: EXIF orientation tag (0x0112) value -> (counter-clockwise quarter turns, mirror first), as PIL's
#: ``ImageOps.exif_transpose`` displays it (checked value by value in the tests).
_EXIF = {1: (0, False), 2: (0, True), 3: (2, False), 4: (2, True), 5: (1, True), 6: (3, False), 7: (3, True),
         8: (1, False)}


def orientation_from_exif(tag: Optional[int]) -> Orientation:
    """A photo's EXIF orientation tag (1-8) to an Orientation; anything else (no tag) is upright."""
    turns, flip = _EXIF.get(tag if isinstance(tag, int) else 1, (0, False))
    return Orientation(turns, flip)


def orientation_from_rotate_tag(tag: Optional[str]) -> Orientation:
    """The legacy ``rotate`` metadata tag (clockwise degrees) to an Orientation."""
    if tag is None:
        return Orientation()
    try:
        cw = float(str(tag).strip())
    except ValueError:
        log.warning("ignoring unparsable rotate tag %r", tag)
        return Orientation()
    return orientation_from_degrees(-cw)


def orientation_from_display_matrix(matrix: Sequence[int]) -> Orientation:
    """FFmpeg's 3x3 display matrix (9 int32, 16.16 fixed point) to an Orientation.

    FFmpeg maps a stored pixel (x, y) to ``(a*x + c*y + tx, b*x + d*y + ty)``
    with ``a, b, c, d = m[0], m[1], m[3], m[4]``, in pixel coordinates with y
    pointing down.  The 2x2 part of every camera matrix is a signed
    permutation; we pick the one of the 8 right-angle orientations that
    matches it (the nearest one if the matrix has an odd angle).
    """
    m = [float(v) for v in matrix]
    if len(m) != 9:
        raise ValueError(f"display matrix needs 9 numbers, got {len(m)}")
    target = np.array([[m[0], m[3]], [m[1], m[4]]]) / 65536.0
    norm = np.linalg.norm(target)
    if norm == 0:
        return Orientation()
    best, best_err = Orientation(), math.inf
    for flip in (False, True):
        for q in range(4):
            cand = Orientation(q, flip)
            err = float(np.abs(cand.matrix() - target / norm * math.sqrt(2)).sum())
            if err < best_err:
                best, best_err = cand, err
    if best_err > 0.05:
        log.warning("display matrix %s is not a right-angle turn; using %d deg%s",
                    list(matrix), best.degrees, " + mirror" if best.hflip else "")
    return best


def apply_orientation(image: np.ndarray, orientation: Orientation) -> np.ndarray:
    """Turn a stored (H, W, ...) image for display; returns a contiguous array."""
    if orientation.is_identity:
        return image
    out = image[:, ::-1] if orientation.hflip else image
    out = np.rot90(out, orientation.quarter_turns)
    return np.ascontiguousarray(out)
