"""Bridge the stretches a capture is unsure of: a new action whose shape-key keys there follow a straight
line between the keys the capture trusts on either side.

The capture keys its confidence as the ``["facekey_confidence"]`` curve (``shape_keys.bake_confidence``);
a stretch is a run of its keys below ``LOW_CONFIDENCE`` (``readback.unsure_stretches``).  On a mistracked
run (a hand over the mouth, a turn to profile) the solved weights are noise, and an animator's first fix
is to replace them by the motion around them; this does that in one step, as a new action, the way the
solver already leans frames it fits badly on their neighbours (``estimators.solver``), but wholly and
where the user asks.  The line is ``protocol.bridge``'s, the one ``facekey bridge`` draws on a Take file.
"""
from __future__ import annotations

import json
from typing import Optional

import numpy as np

from ..protocol.bridge import EPS, line_over_runs
from ..protocol.errors import FaceKeyError
from ..protocol.take import LOW_CONFIDENCE
from .fcurves import LINEAR, action_fcurves, get_keys
from .head import GROUP as HEAD_GROUP
from .head import HEAD_PROP
from .readback import confidence_curve, key_action, unsure_stretches
from .shape_keys import CONFIDENCE_PATH

__all__ = ["bridge_unsure", "bridge_if_unsure", "stretch_at", "BRIDGED_PROP", "BRIDGED_FROM_PROP"]

#: Action property listing the stretches a bridged action replaced: JSON ``[[first frame, last frame], ...]``.
BRIDGED_PROP = "facekey_bridged"
#: Action property naming the captured action a bridged one was made from (bridged copies are named after it).
BRIDGED_FROM_PROP = "facekey_bridged_from"


def stretch_at(stretches: list[tuple[float, float, float]], frame: float) -> Optional[tuple[float, float, float]]:
    """The stretch ``(first, last, lowest)`` of ``stretches`` whose keys span ``frame``, or None."""
    return next((s for s in stretches if s[0] - EPS <= frame <= s[1] + EPS), None)


def _span(first: float, last: float) -> list[float]:
    """A stretch as stored and reported: frames rounded to 1/1000 (keys are float32)."""
    return [round(float(first), 3), round(float(last), 3)]


def _bridge_curve(fc, chosen, every) -> None:
    """Put the keys of F-curve ``fc`` inside each ``chosen`` stretch on the line of
    ``protocol.bridge.line_over_runs`` (anchors outside *every* stretch); those keys and the key each line
    starts from get LINEAR interpolation, so the line is exact.  A curve without a trusted key keeps its keys."""
    co = get_keys(fc)
    values, changed, starts = line_over_runs(co[:, 0], co[:, 1:], chosen, every)
    if not changed.any():
        return
    co[:, 1] = values[:, 0]
    interp = np.empty(len(co), np.int32)
    fc.keyframe_points.foreach_get("interpolation", interp)
    interp[changed] = LINEAR
    interp[starts] = LINEAR
    fc.keyframe_points.foreach_set("co", co.ravel())
    fc.keyframe_points.foreach_set("interpolation", interp)
    fc.update()


def _plan(obj, at_frame: Optional[float]):
    """Everything checked before anything is written: ``(key datablock, action, stretches to bridge, every
    stretch)``; raise FaceKeyError ``bad_argument`` naming what is wrong and the fix."""
    key, action = key_action(obj)
    name = obj.name if obj is not None else "(none)"
    conf = confidence_curve(obj)
    if conf is None:
        raise FaceKeyError("bad_argument", f"The shape keys of '{name}' have no action with a facekey_confidence "
                           "curve, so FaceKey cannot tell which frames the capture is unsure of.",
                           "Select an object you captured onto (Live Link CSV imports and generated clips "
                           "measure no confidence).")
    if key.animation_data.use_tweak_mode:
        raise FaceKeyError("bad_argument", f"The shape keys of '{name}' are in NLA tweak mode.",
                           "Leave tweak mode (Tab in the NLA Editor) and bridge again.")
    every = unsure_stretches(obj)
    if not every:
        raise FaceKeyError("bad_argument", f"The capture on '{name}' is sure of every frame (confidence "
                           f"{LOW_CONFIDENCE} or more): there is nothing to bridge.", "Nothing to do.")
    if not (get_keys(conf)[:, 1] >= LOW_CONFIDENCE).any():
        raise FaceKeyError("bad_argument", f"The capture on '{name}' is unsure of every frame: there is no "
                           "trusted key to bridge from.", "Capture the footage again with the face in view "
                           "and well lit.")
    chosen = every
    if at_frame is not None:
        found = stretch_at(every, at_frame)
        if found is None:
            raise FaceKeyError("bad_argument", f"Frame {at_frame:g} of '{name}' is not in a stretch the capture "
                               f"is unsure of ({len(every)} stretch(es) in all).",
                               "Jump to one with Take > Unsure frames, or bridge all of them.")
        chosen = [found]
    if _bridged_already(action, chosen):
        which = "this stretch" if at_frame is not None else "every stretch"
        raise FaceKeyError("bad_argument", f"The action '{action.name}' has {which} bridged already.",
                           "Nothing to do; the captured action is kept beside it.")
    return key, action, chosen, every


def _copy_assigned(datablock, action):
    """Copy ``action``, name the copy ``"<captured action> bridged"`` (.001, .002, ... when taken), assign
    it to ``datablock`` (on the same slot where actions are layered), keep ``action`` with a fake user;
    return the copy."""
    import bpy
    slot = getattr(datablock.animation_data, "action_slot", None)
    identifier = slot.identifier if slot is not None else None
    root = action.get(BRIDGED_FROM_PROP, action.name)
    name = f"{root} bridged"
    taken = {a.name for a in bpy.data.actions}
    name = next(n for n in [name] + [f"{name}.{i:03d}" for i in range(1, len(taken) + 2)] if n not in taken)
    new = action.copy()
    new[BRIDGED_FROM_PROP] = root
    new.name = name
    action.use_fake_user = True
    datablock.animation_data.action = new
    if identifier is not None and datablock.animation_data.action_slot is None:
        datablock.animation_data.action_slot = next(s for s in new.slots if s.identifier == identifier)
    return new


def _spans(chosen) -> list[list[float]]:
    return [_span(a, b) for a, b, *_ in chosen]


def _bridged_already(action, chosen) -> bool:
    """Whether ``action``'s ``facekey_bridged`` lists every stretch of ``chosen``."""
    done = json.loads(action.get(BRIDGED_PROP, "[]"))
    return all(s in done for s in _spans(chosen))


def _bridge_copy(datablock, action, chosen, every, keep) -> object:
    """The bridged copy of ``action`` on ``datablock`` (:func:`_copy_assigned`): the keys of every F-curve
    ``keep(fcurve)`` selects put on the line (:func:`_bridge_curve`), the stretches added to its
    ``facekey_bridged``."""
    new = _copy_assigned(datablock, action)
    for fc in action_fcurves(new, datablock):
        if keep(fc) and len(fc.keyframe_points):
            _bridge_curve(fc, chosen, every)
    done = json.loads(new.get(BRIDGED_PROP, "[]"))
    new[BRIDGED_PROP] = json.dumps(sorted(done + [s for s in _spans(chosen) if s not in done]))
    return new


def _is_head_curve(fc) -> bool:
    """A rotation curve the head bake wrote (its group; the data path changes when a bone is renamed)."""
    return fc.group is not None and fc.group.name == HEAD_GROUP


def _head_action(target, key_act, chosen) -> tuple[Optional[object], Optional[str]]:
    """``(the head-rotation action of the same take as key_act on the object target, None)`` (for a bone,
    the armature's: ``bake.head`` records the take, start frame and fps it shares with the shape-key
    action), or ``(None, why it is left as it is)``."""
    ad = target.animation_data
    act = ad.action if ad is not None else None
    if act is None or HEAD_PROP not in act:
        return None, f"'{target.name}' has no head rotation baked by FaceKey"
    if ad.use_tweak_mode:
        return None, f"'{target.name}' is in NLA tweak mode"
    same = [key_act.get(k) == act.get(k) for k in ("facekey_take", "facekey_start_frame", "facekey_scene_fps")]
    if not key_act.get("facekey_take") or not all(same):
        return None, f"its action '{act.name}' is from another take or another start frame"
    if _bridged_already(act, chosen):
        return None, f"its action '{act.name}' has these stretches bridged already"
    if not any(_is_head_curve(fc) for fc in action_fcurves(act, target)):
        return None, f"its action '{act.name}' has no FaceKey Head curve left"
    return act, None


def bridge_unsure(obj, at_frame: Optional[float] = None,
                  head=None) -> tuple[object, list[list[float]], Optional[object], Optional[str]]:
    """Bridge the unsure stretches of the action on ``obj``'s shape keys into a new action.

    Every shape-key F-curve key inside a stretch gets the value on the straight line between that curve's
    last key before the stretch and its first key after it, both outside every unsure stretch (held flat
    at an end of the take), and LINEAR interpolation, as does the key before it; keys outside the
    stretches, the confidence curve (it still says where the capture was unsure), curve modifiers and the
    action's FaceKey properties are copied as they are.  The new action, ``"<captured action> bridged"``,
    is assigned to the shape keys; the action it was made from is kept unchanged with a fake user.  Its
    ``facekey_bridged`` property lists the stretches bridged so far.  With ``head``, the head target's
    rotation action of the same take, start frame and fps (``bake.head``) is bridged the same way over the
    same stretches: its FaceKey Head curves only (a bone's armature action keeps every other curve), each
    channel on its own line (quaternion channels are kept sign-continuous by the bake and normalised by
    Blender; axis-angle channels are not made continuous, so bridge long stretches of them with care).

    Args:
        obj: a mesh object whose shape keys' action has a confidence curve (a name-map bake, corrective keys
            or a character solve of a captured take).
        at_frame: bridge only the stretch whose keys span this scene frame (None: every stretch).
        head: the object that received the take's head rotation (the armature, for a bone), or None.

    Returns:
        ``(the new shape-key action, [[first frame, last frame], ...] of the stretches bridged, the new head
        action or None, why the head was left as it is or None)``.

    Raises:
        FaceKeyError ``bad_argument``: no action with a confidence curve, NLA tweak mode, no unsure stretch
        (at ``at_frame``), no key the capture trusts, or the stretches bridged already; nothing is changed.
    """
    key, action, chosen, every = _plan(obj, at_frame)
    head_act, head_note = _head_action(head, action, chosen) if head is not None else (None, None)
    new = _bridge_copy(key, action, chosen, every, lambda fc: fc.data_path != CONFIDENCE_PATH)
    new_head = None if head_act is None else _bridge_copy(head, head_act, chosen, every, _is_head_curve)
    return new, _spans(chosen), new_head, head_note


def bridge_if_unsure(obj, head=None) -> dict:
    """:func:`bridge_unsure` of every stretch, for ``blender -b`` runs (``--bridge-unsure``):
    ``{"action": the new action's name or None, "stretches": [[first, last], ...], "head": the new head
    action's name or None, "head_skipped": why a head target's rotation was left as it is or None,
    "skipped": why nothing was bridged (the FaceKeyError's message: no confidence curve, no unsure
    stretch, ...) or None}``."""
    try:
        action, spans, head_action, head_note = bridge_unsure(obj, head=head)
    except FaceKeyError as e:
        return {"action": None, "stretches": [], "head": None, "head_skipped": None, "skipped": e.message}
    return {"action": action.name, "stretches": spans, "head": head_action.name if head_action else None,
            "head_skipped": head_note, "skipped": None}
