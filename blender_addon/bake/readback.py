"""Baked shape-key F-curves -> Take (for Live Link CSV export), and the unsure stretches of a baked take."""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from ..protocol.arkit import ARKIT_NAMES, INDEX
from ..protocol.errors import FaceKeyError
from ..protocol.take import Take, read_take, unsure_runs
from .fcurves import action_fcurves, get_keys
from .shape_keys import CONFIDENCE_PATH, key_data_path

__all__ = ["take_from_action", "find_facekey_action", "key_action", "confidence_curve", "unsure_stretches"]


def key_action(obj) -> tuple:
    """``(shape-key datablock, its assigned action)`` of ``obj``; None for what is missing."""
    key = obj.data.shape_keys if obj is not None and obj.type == "MESH" else None
    return key, (key.animation_data.action if key is not None and key.animation_data else None)


def find_facekey_action(obj):
    """The FaceKey action assigned to ``obj``'s shape keys; raise ``bad_argument`` if there is none."""
    key, action = key_action(obj)
    if action is None or "facekey_mapping" not in action:
        name = obj.name if obj is not None else "(none)"
        raise FaceKeyError("bad_argument", f"Object '{name}' has no FaceKey action on its shape keys.",
                           "Select an object you captured or imported a CSV onto.")
    return key, action


def take_from_action(obj) -> Take:
    """Read the FaceKey action on ``obj``'s shape keys back into a Take.

    Mapped units take their values from the F-curve keys (so key edits are
    exported), in [0, 1].  When the take file the bake came from still
    exists and has one valid frame per key, everything else (unmapped
    units, head, gaze, exact timestamps, header) comes from it; otherwise
    timestamps are ``(frame - start_frame) / scene_fps`` and the rest is
    rest pose / zero.
    """
    key, action = find_facekey_action(obj)
    mapping = {INDEX[u]: name for u, name in json.loads(action["facekey_mapping"]).items()}
    places = {INDEX[u]: i for u, i in json.loads(action.get("facekey_key_indices", "{}")).items()}
    paths = {fc.data_path: fc for fc in action_fcurves(action, key)}
    cols, lost = {}, []
    named = set(mapping.values())
    for unit, name in mapping.items():
        fc = paths.get(key_data_path(name))
        if fc is None and 0 <= places.get(unit, -1) < len(key.key_blocks):     # renamed since the bake
            now = key.key_blocks[places[unit]].name      # unless keys moved and that place holds another unit's
            fc = None if now in named else paths.get(key_data_path(now))
        if fc is not None:
            cols[unit] = get_keys(fc)
        else:
            lost.append(f"{ARKIT_NAMES[unit]} (key '{name}')")
    if not cols:
        raise FaceKeyError("bad_argument", f"The action '{action.name}' has no shape-key F-curves left.",
                           "Capture or import again to create a new FaceKey action.")
    if lost:
        raise FaceKeyError("bad_argument", f"The curves of {', '.join(lost)} are gone from '{action.name}' "
                           "(deleted, or keys renamed and reordered since the bake): they would export as 0.",
                           "Give the keys their names back, or capture or import again to make a new action.")
    frames = next(iter(cols.values()))[:, 0]
    for unit, kv in cols.items():
        if kv.shape != (frames.shape[0], 2) or np.abs(kv[:, 0] - frames).max() > 1e-3:
            raise FaceKeyError("bad_argument", f"F-curves of '{action.name}' have keys on different frames.",
                               "Keep one key per frame on every FaceKey curve (bake again to reset).")
    base = _base_take(action.get("facekey_take", ""), frames.shape[0])
    if base is None:
        start, fps = float(action["facekey_start_frame"]), float(action["facekey_scene_fps"])
        ts = (frames.astype(np.float64) - start) / fps
        base = Take.empty(frames.shape[0], fps, timestamps=ts, source=action.name)
    out = dataclasses.replace(base, weights=base.weights.copy(), header=dict(base.header))
    rows = np.flatnonzero(out.valid)
    for unit, kv in cols.items():
        out.weights[rows, unit] = np.clip(kv[:, 1], 0.0, 1.0)
    return out.validate()


def _base_take(path: str, num_keys: int):
    if not path or not os.path.isfile(path):
        return None
    take = read_take(path)
    return take if int(take.valid.sum()) == num_keys else None


def confidence_curve(obj):
    """The ``["facekey_confidence"]`` F-curve of the action on ``obj``'s shape keys, or None."""
    key, action = key_action(obj)
    if action is None:
        return None
    return next((fc for fc in action_fcurves(action, key) if fc.data_path == CONFIDENCE_PATH), None)


def unsure_stretches(obj) -> list[tuple[float, float, float]]:
    """Runs of consecutive keys of ``obj``'s confidence curve below ``LOW_CONFIDENCE``
    (``protocol.take.unsure_runs``): ``[(first frame, last frame, lowest confidence)]`` in frame order
    ([] without a curve)."""
    fc = confidence_curve(obj)
    if fc is None or not len(fc.keyframe_points):
        return []
    keys = get_keys(fc)
    return [(float(keys[a, 0]), float(keys[b, 0]), float(keys[a:b + 1, 1].min())) for a, b in unsure_runs(keys[:, 1])]
