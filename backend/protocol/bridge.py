"""Bridge the stretches a capture is unsure of: values there replaced by the straight line between the
trusted values on either side.

One rule for both places it is used: a Take file (:func:`bridge_take`, ``facekey bridge``) and the
add-on's baked F-curve keys (``bake.bridge``, which runs it on each curve's keys).  A run is a stretch
``(first, last)`` of frames below ``LOW_CONFIDENCE``; the line's ends are the nearest rows outside
*every* run, so a line never leans on the junk of another stretch, and a run at an end of the take is
held flat at its one trusted neighbour.  Linear, like the solver's fill of faceless frames: what was
invented is plain to see.

numpy + standard library only: copied into the add-on.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .errors import FaceKeyError
from .take import LOW_CONFIDENCE, Take, unsure_runs

__all__ = ["line_over_runs", "bridge_take"]

#: Frames closer than this count as the same (keys sit on subframes when take and scene fps differ).
EPS = 1e-3


def line_over_runs(frames: np.ndarray, values: np.ndarray, chosen, every) -> tuple[np.ndarray, np.ndarray, list]:
    """Put the rows of ``values`` inside each ``chosen`` run on the straight line between the nearest rows
    outside ``every`` run.

    Args:
        frames: (K,) float increasing frame of each row (take frames or scene frames).
        values: (K, C) float.
        chosen: ``[(first, last, ...), ...]`` runs to bridge, in ``frames`` units.
        every: all the runs the capture is unsure of (``chosen`` among them); their rows are no anchors.

    Returns:
        ``(new values (K, C), changed (K,) bool, anchors before)``: the rows that were put on a line, and
        for each chosen run the index of the row the line starts from (none where the run starts the take).
        With no row outside every run, the values are returned unchanged.
    """
    frames = np.asarray(frames, np.float64)
    out = np.array(values, np.float64, copy=True)
    changed = np.zeros(len(frames), bool)
    unsure = np.zeros(len(frames), bool)
    for first, last, *_ in every:
        unsure |= (frames >= first - EPS) & (frames <= last + EPS)
    trusted = np.flatnonzero(~unsure)
    starts = []
    if not len(trusted):
        return out, changed, starts
    for first, last, *_ in chosen:
        inside = np.flatnonzero((frames >= first - EPS) & (frames <= last + EPS))
        before, after = trusted[frames[trusted] < first - EPS], trusted[frames[trusted] > last + EPS]
        anchors = np.r_[before[-1:], after[:1]]
        for c in range(out.shape[1]):
            out[inside, c] = np.interp(frames[inside], frames[anchors], out[anchors, c])
        changed[inside] = True
        starts += [int(i) for i in before[-1:]]
    return out, changed, starts


def bridge_take(take: Take) -> tuple[Take, list[tuple[int, int]]]:
    """``take`` with its weights and eye gaze bridged over every stretch the capture is unsure of
    (confidence below ``LOW_CONFIDENCE``, frames without a face included); head pose, validity and the
    confidence itself are kept, and the header's ``bridged`` lists the stretches (take frames).

    Returns:
        ``(the bridged take, [(first frame, last frame), ...])``.

    Raises:
        FaceKeyError ``bad_argument``: the take measured no confidence (a Live Link CSV import, a generated
        clip), is sure of every frame, or unsure of every frame.
    """
    if "confidence" not in take.header:
        raise FaceKeyError("bad_argument", f"The take '{take.header.get('source', '')}' measured no confidence "
                           "(a Live Link CSV import or a generated clip), so FaceKey cannot tell which frames "
                           "it is unsure of.", "Bridge a take that facekey capture wrote.")
    runs = unsure_runs(np.where(take.valid, take.confidence, 0.0))
    if not runs:
        raise FaceKeyError("bad_argument", f"The capture is sure of every frame (confidence {LOW_CONFIDENCE} or "
                           "more): there is nothing to bridge.", "Nothing to do; the take is as captured.")
    if runs == [(0, take.num_frames - 1)]:
        raise FaceKeyError("bad_argument", "The capture is unsure of every frame: there is no trusted frame to "
                           "bridge from.", "Capture the footage again with the face in view and well lit.")
    frames = np.arange(take.num_frames, dtype=np.float64)
    values = line_over_runs(frames, np.hstack([take.weights, take.eye_gaze]), runs, runs)[0]
    weights, gaze = values[:, :take.weights.shape[1]], values[:, take.weights.shape[1]:]
    header = dict(take.header, bridged=[list(r) for r in runs])
    bridged = dataclasses.replace(take, weights=np.clip(weights, 0.0, 1.0).astype(np.float32),
                                  eye_gaze=gaze.astype(np.float32), header=header)
    return bridged.validate(), runs
