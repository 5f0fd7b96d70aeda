"""Take head rotation -> rotation F-curves of an object or a pose bone."""
from __future__ import annotations

import numpy as np

from ..protocol.errors import FaceKeyError
from ..protocol.axes import quats_to_blender
from ..targets import write_blocker
from .fcurves import ensure_fcurve, new_action_for, set_keys
from .shape_keys import take_frames

__all__ = ["bake_head_rotation", "check_head_target", "head_quaternions", "HEAD_PROP", "REST_PROP"]

GROUP = "FaceKey Head"
#: Action property of a head-rotation action: the data-path prefix of its rotation curves ("" for an object).
HEAD_PROP = "facekey_head"
#: Action property of a head-rotation action: the rotation (w, x, y, z) the take was composed after.
REST_PROP = "facekey_rest"


def head_quaternions(take, rest, bone_rest=None) -> list:
    """Per valid frame, the rotation to key as ``mathutils.Quaternion`` list.

    The take's head-frame rotation ``q`` is expressed in Blender axes (the
    character faces -Y), moved into the bone's local space when
    ``bone_rest`` (the bone's rest orientation in armature space) is given,
    and applied after the target's current rotation ``rest``.
    """
    from mathutils import Quaternion
    qs = quats_to_blender(take.head_rotation[take.valid].astype(np.float64))
    out = []
    inv_b = bone_rest.inverted() if bone_rest is not None else None
    for w, x, y, z in qs:
        q = Quaternion((w, x, y, z))
        if bone_rest is not None:
            q = inv_b @ q @ bone_rest
        out.append(rest @ q)
    return out


def _channels(mode: str, quats: list) -> tuple[str, np.ndarray]:
    """(data path suffix, (V, C) values) for a rotation mode, with continuous signs/angles."""
    if mode == "QUATERNION":
        vals = np.array([tuple(q) for q in quats], np.float64)
        for i in range(1, len(vals)):
            if np.dot(vals[i], vals[i - 1]) < 0:
                vals[i] = -vals[i]
        return "rotation_quaternion", vals
    if mode == "AXIS_ANGLE":
        vals = []
        for q in quats:
            axis, angle = q.to_axis_angle()
            vals.append((angle, axis[0], axis[1], axis[2]))
        return "rotation_axis_angle", np.array(vals, np.float64)
    vals, prev = [], None
    for q in quats:
        e = q.to_euler(mode, prev) if prev is not None else q.to_euler(mode)
        vals.append(tuple(e))
        prev = e
    return "rotation_euler", np.array(vals, np.float64)


def check_head_target(target, bone: str | None) -> None:
    """Raise before anything is baked when ``target`` (or its pose bone ``bone``) cannot take the head rotation:
    ``object_missing`` for a bone it does not have, ``bad_argument`` for linked data or an NLA in tweak mode."""
    if bone is not None and (target.type != "ARMATURE" or bone not in target.pose.bones):
        raise FaceKeyError("object_missing", f"'{target.name}' has no pose bone '{bone}'.",
                           "Pick an armature and one of its bones as head rotation target.")
    blocked = write_blocker(target, "object")
    if blocked:
        raise FaceKeyError("bad_argument", f"The head target '{target.name}' cannot be baked: {blocked}.",
                           "Fix that, or pick another head target (or none).")


def bake_head_rotation(target, take, action_name: str, start_frame: float, scene_fps: float,
                       bone: str | None = None, take_path: str = ""):
    """Bake the take's head rotation onto ``target`` (object) or its pose bone ``bone``; return the new Action.

    Keys every valid frame at :func:`take_frames`, in the target's own
    rotation mode (quaternion, axis-angle or Euler of any order), composed
    after its current rotation.  For a bone the rotation is taken into the
    bone's rest axes.  The new action starts as a copy of the target's current
    action, so its other channels (the armature's other bones, the object's
    location) keep playing; that action is kept as it was (fake user).  Baking
    again over a FaceKey head action composes after the rotation that action
    recorded (:data:`REST_PROP`), not after its keyed pose, so the head does not
    turn twice.  The action records ``facekey_head`` (the data-path prefix of its
    rotation curves: "" for an object), ``facekey_rest``, ``facekey_take``
    (``take_path``), ``facekey_start_frame`` and ``facekey_scene_fps``, which tie
    it to the take's shape-key actions (``bake.bridge``).
    """
    from mathutils import Quaternion
    if not take.valid.any():
        raise FaceKeyError("no_face", "The take has no valid (tracked) frame to bake.",
                           "Use footage where the face is visible, or check the face index.")
    check_head_target(target, bone)
    if bone is not None:
        pb = target.pose.bones[bone]
        rest = pb.matrix_basis.to_3x3().normalized().to_quaternion()
        bone_rest = pb.bone.matrix_local.to_3x3().normalized().to_quaternion()
        mode, prefix = pb.rotation_mode, f'pose.bones["{_escape(bone)}"].'
    else:
        rest = target.matrix_basis.to_3x3().normalized().to_quaternion()
        bone_rest, mode, prefix = None, target.rotation_mode, ""
    previous = target.animation_data.action if target.animation_data is not None else None
    if previous is not None and previous.get(HEAD_PROP) == prefix and previous.get(REST_PROP) is not None:
        rest = Quaternion(tuple(previous[REST_PROP]))       # its pose is the last bake's, not the target's
    quats = head_quaternions(take, rest, bone_rest)
    path, vals = _channels(mode, quats)
    frames = take_frames(take, start_frame, scene_fps)
    action = new_action_for(target, action_name, keep_others=True)
    for c in range(vals.shape[1]):
        fc = ensure_fcurve(action, target, prefix + path, c, GROUP)
        set_keys(fc, frames, vals[:, c])
    action[HEAD_PROP] = prefix
    action[REST_PROP] = list(rest)
    action["facekey_take"] = take_path or ""
    action["facekey_start_frame"] = float(start_frame)
    action["facekey_scene_fps"] = float(scene_fps)
    return action


def _escape(name: str) -> str:
    import bpy
    return bpy.utils.escape_identifier(name)
