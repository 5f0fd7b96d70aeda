"""One F-curve helper over Blender's two animation APIs.

* Blender 4.4+ (slotted/layered actions; ``action.fcurves`` is gone in 5.0):
  ``Action.fcurve_ensure_for_datablock`` creates layer, strip, channel bag
  and slot, and assigns the slot.
* Blender < 4.4: ``action.fcurves.new``.

Keys are written in bulk (``keyframe_points.add`` + ``foreach_set``): 52
curves x 10,000 frames take well under a second, where a
``keyframe_insert`` loop takes minutes.
"""
from __future__ import annotations

import numpy as np

__all__ = ["new_action_for", "ensure_fcurve", "set_keys", "get_keys", "action_fcurves", "LINEAR"]

#: Keyframe.interpolation enum index of LINEAR, for foreach_set (CONSTANT=0, LINEAR=1, BEZIER=2).
LINEAR = 1


def _layered(action) -> bool:
    return hasattr(action, "fcurve_ensure_for_datablock")


def new_action_for(datablock, name: str, keep_others: bool = False):
    """Create a new Action named ``name`` (Blender adds .001 on clashes) and assign it at full influence.

    The previously assigned action (if any) gets ``use_fake_user = True`` so
    it survives saving; it is not modified otherwise.  With ``keep_others`` the
    new action starts as a copy of it (without its ``facekey_*`` properties), so
    the channels the caller does not write keep playing (an armature's other
    bones under a head bake); not when it was blended in over an NLA (Add, part
    influence), whose channels would play another way at full Replace.  The new action plays as baked: the animation
    data's influence is set to 1 and its blend to Replace (a previous action's
    0.2 / Add would otherwise scale it).  Returns the new action.
    """
    import bpy
    ad = datablock.animation_data or datablock.animation_data_create()
    previous = ad.action
    if previous is not None:
        previous.use_fake_user = True
    # over an NLA, a copy of an action blended in (Add, or part influence) would play its channels another
    # way at full Replace: then the new action starts empty and the NLA plays the other channels (without
    # an NLA, Blender plays the active action whole whatever its influence and blend say)
    whole = not ad.nla_tracks or (ad.action_influence == 1.0 and ad.action_blend_type == "REPLACE")
    if keep_others and previous is not None and whole:
        action = previous.copy()
        action.name = name
        action.use_fake_user = False
        for prop in [k for k in action.keys() if k.startswith("facekey_")]:
            del action[prop]
    else:
        action = bpy.data.actions.new(name)
        if not _layered(action) and hasattr(action, "id_root"):
            action.id_root = getattr(datablock, "id_type", None) or datablock.bl_rna.identifier.upper()  # 'KEY'
    ad.action = action
    ad.action_influence = 1.0
    ad.action_blend_type = "REPLACE"
    return action


def ensure_fcurve(action, datablock, data_path: str, index: int = 0, group: str = ""):
    """The F-curve ``data_path[index]`` of ``action`` for ``datablock`` (created if needed).

    ``action`` must already be assigned to ``datablock`` (see :func:`new_action_for`).
    """
    if _layered(action):
        return action.fcurve_ensure_for_datablock(datablock, data_path, index=index, group_name=group)
    fc = action.fcurves.find(data_path, index=index)
    if fc is None:
        fc = action.fcurves.new(data_path, index=index, action_group=group)
    return fc


def set_keys(fcurve, frames: np.ndarray, values: np.ndarray) -> None:
    """Replace the keys of ``fcurve`` by ``(frames[i], values[i])``, LINEAR interpolation.

    Args:
        frames: (K,) float, strictly increasing scene frames (fractional allowed).
        values: (K,) float.
    """
    frames = np.asarray(frames, np.float32)
    values = np.asarray(values, np.float32)
    if frames.shape != values.shape or frames.ndim != 1:
        raise ValueError(f"frames {frames.shape} and values {values.shape} must be equal 1-D shapes")
    kp = fcurve.keyframe_points
    kp.clear()
    k = frames.shape[0]
    kp.add(k)
    co = np.empty((k, 2), np.float32)
    co[:, 0] = frames
    co[:, 1] = values
    kp.foreach_set("co", co.ravel())
    kp.foreach_set("interpolation", np.full(k, LINEAR, np.int32))
    fcurve.update()


def get_keys(fcurve) -> np.ndarray:
    """(K, 2) float32 ``(frame, value)`` of every key of ``fcurve``, in key order."""
    co = np.empty(2 * len(fcurve.keyframe_points), np.float32)
    fcurve.keyframe_points.foreach_get("co", co)
    return co.reshape(-1, 2)


def action_fcurves(action, datablock=None) -> list:
    """All F-curves of ``action`` (for ``datablock``'s slot where the action is layered)."""
    if not _layered(action):
        return list(action.fcurves)
    slot = None
    if datablock is not None and datablock.animation_data is not None and datablock.animation_data.action == action:
        slot = datablock.animation_data.action_slot
    out = []
    for layer in action.layers:
        for strip in layer.strips:
            for bag in strip.channelbags:
                if slot is None or bag.slot == slot:
                    out.extend(bag.fcurves)
    return out
