"""Bridge the stretches a capture is unsure of: a new action whose shape-key keys there follow a straight
line between the keys the capture trusts on either side.

The capture keys its confidence as the ``["facekey_confidence"]`` curve (``shape_keys.bake_confidence``);
a stretch is a run of its keys below ``LOW_CONFIDENCE`` (``readback.unsure_stretches``).  On a mistracked
run (a hand over the mouth, a turn to profile) the solved weights are noise, and an animator's first fix
is to replace them by the motion around them; this does that in one step, as a new action, the way the
solver already leans frames it fits badly on their neighbours (``estimators.solver``), but wholly and
where the user asks.
"""
from __future__ import annotations

import json
from typing import Optional

import numpy as np

from ..protocol.errors import FaceKeyError
from ..protocol.take import LOW_CONFIDENCE
from .fcurves import action_fcurves, get_keys
from .readback import confidence_curve, key_action, unsure_stretches
from .shape_keys import CONFIDENCE_PATH

__all__ = ["bridge_unsure", "bridge_if_unsure", "BRIDGED_PROP", "stretch_at"]

#: Action property listing the stretches a bridged action replaced: JSON ``[[first frame, last frame], ...]``.
BRIDGED_PROP = "facekey_bridged"
#: Frames closer than this count as the same key (keys sit on subframes when take and scene fps differ).
_EPS = 1e-3


def stretch_at(stretches: list[tuple[float, float, float]], frame: float) -> Optional[tuple[float, float, float]]:
    """The stretch ``(first, last, lowest)`` of ``stretches`` whose keys span ``frame``, or None."""
    return next((s for s in stretches if s[0] - _EPS <= frame <= s[1] + _EPS), None)


def _bridged_values(frames: np.ndarray, values: np.ndarray, first: float, last: float) -> tuple[np.ndarray, np.ndarray]:
    """``(indices of the keys in [first, last], their new values)`` for one curve's (K,) ``frames`` and
    ``values``: a straight line from the last key before the stretch to the first key after it, held
    flat where the stretch touches an end of the curve; no keys inside or no key outside give empty arrays."""
    inside = np.flatnonzero((frames >= first - _EPS) & (frames <= last + _EPS))
    before = np.flatnonzero(frames < first - _EPS)
    after = np.flatnonzero(frames > last + _EPS)
    if not len(inside) or not (len(before) or len(after)):
        return inside[:0], values[:0]
    anchors = ([before[-1]] if len(before) else []) + ([after[0]] if len(after) else [])
    return inside, np.interp(frames[inside], frames[anchors], values[anchors])


def _copy_assigned(key, action, name: str):
    """Copy ``action`` as ``name``, assign the copy to ``key`` (on the same slot where actions are layered) and
    keep the original with a fake user; return the copy."""
    slot = getattr(key.animation_data, "action_slot", None)
    identifier = slot.identifier if slot is not None else None
    new = action.copy()
    new.name = name
    action.use_fake_user = True
    key.animation_data.action = new
    if identifier is not None and key.animation_data.action_slot is None:
        key.animation_data.action_slot = next(s for s in new.slots if s.identifier == identifier)
    return new


def bridge_unsure(obj, at_frame: Optional[float] = None) -> tuple[object, list[tuple[float, float]]]:
    """Bridge the unsure stretches of the action on ``obj``'s shape keys into a new action.

    Every shape-key F-curve key inside a stretch gets the value on the straight line between that curve's
    last key before the stretch and its first key after it (held flat at an end of the take), LINEAR
    interpolation and auto-clamped handles; keys outside the stretches, the confidence curve (it still says
    where the capture was unsure), curve modifiers and the action's FaceKey properties are copied as they
    are.  The new action, ``"<action> bridged"``, is assigned to the shape keys; the original is kept
    unchanged with a fake user.  The new action's ``facekey_bridged`` property lists the stretches.

    Args:
        obj: a mesh object whose shape keys' action has a confidence curve (a name-map bake, corrective keys
            or a character solve of a captured take).
        at_frame: bridge only the stretch whose keys span this scene frame (None: every stretch).

    Returns:
        ``(the new action, [(first frame, last frame)] of the stretches bridged)``.

    Raises:
        FaceKeyError ``bad_argument``: no action with a confidence curve, no unsure stretch (at
        ``at_frame``), or no key the capture trusts to bridge from.
    """
    key, action = key_action(obj)
    conf = confidence_curve(obj)
    if conf is None:
        name = obj.name if obj is not None else "(none)"
        raise FaceKeyError("bad_argument", f"The shape keys of '{name}' have no action with a facekey_confidence "
                           "curve, so FaceKey cannot tell which frames the capture is unsure of.",
                           "Select an object you captured onto (Live Link CSV imports and generated clips "
                           "measure no confidence).")
    stretches = unsure_stretches(obj)
    if at_frame is not None:
        found = stretch_at(stretches, at_frame)
        if found is None:
            raise FaceKeyError("bad_argument", f"Frame {at_frame:g} of '{obj.name}' is not in a stretch the capture "
                               f"is unsure of ({len(stretches)} stretch(es) in all).",
                               "Jump to one with Take > Unsure frames, or bridge all of them.")
        stretches = [found]
    if not stretches:
        raise FaceKeyError("bad_argument", f"The capture on '{obj.name}' is sure of every frame "
                           f"(confidence {LOW_CONFIDENCE} or more): there is nothing to bridge.",
                           "Nothing to do; the keys are as captured.")
    if not (get_keys(conf)[:, 1] >= LOW_CONFIDENCE).any():
        raise FaceKeyError("bad_argument", f"The capture on '{obj.name}' is unsure of every frame: there are no "
                           "trusted keys to bridge from.",
                           "Capture the footage again with the face in view and well lit.")
    new = _copy_assigned(key, action, f"{action.name} bridged")
    for fc in action_fcurves(new, key):
        if fc.data_path == CONFIDENCE_PATH or not len(fc.keyframe_points):
            continue
        co = get_keys(fc)
        for first, last, _ in stretches:
            idx, values = _bridged_values(co[:, 0], co[:, 1], first, last)
            co[idx, 1] = values
            for i in idx:
                kp = fc.keyframe_points[int(i)]
                kp.co.y = float(co[i, 1])
                kp.interpolation = "LINEAR"
                kp.handle_left_type = kp.handle_right_type = "AUTO_CLAMPED"
        fc.update()
    done = json.loads(new.get(BRIDGED_PROP, "[]")) + [[first, last] for first, last, _ in stretches]
    new[BRIDGED_PROP] = json.dumps(sorted({tuple(s) for s in done}))
    return new, [(first, last) for first, last, _ in stretches]


def bridge_if_unsure(obj) -> Optional[dict]:
    """:func:`bridge_unsure` of every stretch, for ``blender -b`` runs (``--bridge-unsure``): on an object
    whose FaceKey action has unsure stretches, ``{"action": the new action's name, "stretches": [[first,
    last], ...]}``; None where there is nothing to bridge (no confidence curve: a Live Link CSV or a
    generated clip; no stretch; or no trusted key to bridge from)."""
    if not unsure_stretches(obj):
        return None
    conf = confidence_curve(obj)
    if not (get_keys(conf)[:, 1] >= LOW_CONFIDENCE).any():
        return None
    action, stretches = bridge_unsure(obj)
    return {"action": action.name, "stretches": [list(s) for s in stretches]}
