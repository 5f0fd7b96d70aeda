"""Hands over the face: which face landmarks a hand covers, from MediaPipe Hands.

MediaPipe's face mesh never says a point is hidden: with a hand over the
mouth it still returns a whole, plausible mouth, and the solver would read
whatever shape that invented mouth has (a pucker, a funnel) as the actor's.
This module finds the hands (MediaPipe Hands, legacy ``mp.solutions`` API;
the palm-detector and hand-landmark models ship inside the mediapipe wheel)
and marks the face landmarks that lie under one.

Hand silhouette (:func:`hand_polygons`), in image pixels: the convex hull of
the 21 hand landmarks, and the start of the forearm, a strip as wide as the
palm (index to little-finger knuckle, landmarks 5 and 17) running
:data:`FOREARM_PALMS` palm lengths from the wrist away from the
middle-finger knuckle; both grown by :data:`FINGER_HALF_WIDTH` palm lengths
(half a finger's width: the landmarks run along the middle of each finger).
A palm length is the wrist-to-middle-knuckle distance (landmarks 0 and 9),
about 9 cm on an adult hand.  A hand that overlaps the face in the image is
in front of it (a hand behind the head is hidden by the head, so MediaPipe
does not see it).  The hull also covers the gaps between spread fingers:
points there are marked hidden, which costs a little evidence and never
invents any.

Cost: while a hand is in view, one hand-landmark pass per frame (plus the palm
detector looking for a second hand).  While none is, the palm detector, the
larger part of the cost, looks at every other frame only; when it finds a hand
after a frame it skipped, that frame is looked at too (the hand may have come
in there); only a hand seen on a single skipped frame and on no other is
missed.  On a 2-core CPU about 3x the face tracking time; hence opt-in
(``TrackSettings.hands``).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["HandOcclusion", "hand_polygons", "covered", "FINGER_HALF_WIDTH", "FOREARM_PALMS"]

#: Margin added around the hand landmarks' hull, in palm lengths (half a finger width).
FINGER_HALF_WIDTH = 0.12
#: Length of the forearm strip beyond the wrist, in palm lengths.
FOREARM_PALMS = 1.0


def hand_polygons(hand: np.ndarray) -> tuple[list[np.ndarray], float]:
    """Outline of one hand: ``([hand hull, forearm strip], margin)``, each polygon (P, 2) float32 pixels,
    the margin in pixels.

    Args:
        hand: (21, 2) MediaPipe hand landmarks, pixels x, y (0 = wrist,
            5 / 17 = index / little-finger knuckles, 9 = middle-finger knuckle).
    """
    import cv2

    h = np.asarray(hand, np.float64)
    if h.shape != (21, 2):
        raise ValueError(f"expected (21, 2) hand landmarks, got {np.shape(hand)}")
    palm = h[0] - h[9]
    palm_len = float(np.linalg.norm(palm))
    along = palm / max(palm_len, 1e-9)
    across = np.array([-along[1], along[0]]) * max(0.5 * float(np.linalg.norm(h[5] - h[17])), 0.3 * palm_len)
    reach = along * FOREARM_PALMS * palm_len
    strip = np.array([h[0] + across, h[0] - across, h[0] - across + reach, h[0] + across + reach], np.float32)
    hull = cv2.convexHull(h.astype(np.float32))[:, 0, :]
    return [hull, strip], FINGER_HALF_WIDTH * palm_len


def covered(points: np.ndarray, hands: list[np.ndarray]) -> np.ndarray:
    """(L,) bool: which of ``points`` (L, 2+) pixels lie under any of ``hands`` (each (21, 2+) pixels)."""
    import cv2

    pts = np.asarray(points, np.float64)[:, :2]
    out = np.zeros(len(pts), bool)
    for hand in hands:
        polygons, margin = hand_polygons(np.asarray(hand)[:, :2])
        for poly in polygons:
            lo, hi = poly.min(0) - margin, poly.max(0) + margin
            near = np.flatnonzero(np.all((pts >= lo) & (pts <= hi), axis=1) & ~out)
            for i in near:
                # signed distance: positive inside the polygon, negative outside
                if cv2.pointPolygonTest(poly, (float(pts[i, 0]), float(pts[i, 1])), True) >= -margin:
                    out[i] = True
    return out


class HandOcclusion:
    """MediaPipe Hands on a sequence of frames (tracking mode) or on photos (``static=True``).

    Call :meth:`push` once per frame, in order, and :meth:`flush` after the
    last; each returns the masks of the frames decided so far, in frame order
    (in tracking mode a frame the palm detector skipped is decided with the
    next one); :meth:`close` when done.
    """

    def __init__(self, static: bool = False, max_hands: int = 2, min_detection_confidence: float = 0.5,
                 skip_while_none: bool = True):
        import mediapipe as mp  # heavy import, only when hands are asked for

        self._hands = mp.solutions.hands.Hands(static_image_mode=static, max_num_hands=int(max_hands),
                                               model_complexity=1,
                                               min_detection_confidence=float(min_detection_confidence))
        self._skip = bool(skip_while_none) and not static   # every other frame while no hand is in view
        self._in_view = False       # a hand was found on the last frame looked at
        self._pending = None        # (image, face) of the skipped frame, decided with the next one

    def find(self, image: np.ndarray) -> list[np.ndarray]:
        """Hands in one (H, W, 3) uint8 RGB image: a list of (21, 2) float32 pixel arrays."""
        res = self._hands.process(np.ascontiguousarray(image))
        h, w = image.shape[:2]
        return [np.array([(p.x * w, p.y * h) for p in hand.landmark], np.float32)
                for hand in (res.multi_hand_landmarks or [])]

    def push(self, image: np.ndarray, face: Optional[np.ndarray]) -> list[Optional[np.ndarray]]:
        """Give the next frame; returns the masks of the frames now decided, oldest first.

        Each mask is (L,) bool over ``face`` (L, 2+) pixels of that frame, True
        where a hand covers the landmark, or None where the frame has no face.
        """
        pending, self._pending = self._pending, None
        if self._skip and not self._in_view and pending is None:
            self._pending = (image, face)
            return []
        hands = self.find(image)
        decided = []
        if pending is not None:
            if hands:   # a hand came in: look at the skipped frame too, then follow the hand again
                decided.append(_mask(pending[1], self.find(pending[0])))
                hands = self.find(image) or hands
            else:
                decided.append(_mask(pending[1], []))
        self._in_view = bool(hands)
        decided.append(_mask(face, hands))
        return decided

    def flush(self) -> list[Optional[np.ndarray]]:
        """The mask of the last frame when it was skipped (looked at now), else nothing."""
        pending, self._pending = self._pending, None
        return [] if pending is None else [_mask(pending[1], self.find(pending[0]))]

    def close(self) -> None:
        self._hands.close()


def _mask(face: Optional[np.ndarray], hands: list[np.ndarray]) -> Optional[np.ndarray]:
    return None if face is None else covered(face, hands)
