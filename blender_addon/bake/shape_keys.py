"""Take weights -> shape-key F-curves on one mesh object."""
from __future__ import annotations

import json
import os

import numpy as np

from ..protocol.arkit import ARKIT_NAMES
from ..protocol.errors import FaceKeyError
from ..protocol.take import read_take
from .fcurves import ensure_fcurve, new_action_for, set_keys

__all__ = ["bake_shape_keys", "bake_key_take", "bake_corrective_keys", "take_frames", "key_data_path", "silent_keys",
           "bake_confidence", "bake_source_confidence", "CONFIDENCE_PROP", "CONFIDENCE_PATH"]

GROUP = "FaceKey"
#: Custom property of the shape-key datablock whose curve, in a take's action, is the take's confidence.
CONFIDENCE_PROP = "facekey_confidence"
#: RNA path of that property's curve.
CONFIDENCE_PATH = f'["{CONFIDENCE_PROP}"]'


def take_frames(take, start_frame: float, scene_fps: float, every_frame: bool = False) -> np.ndarray:
    """(V,) float64 scene frames of the take's valid frames (with ``every_frame``, (T,) of all of them):
    ``start_frame + timestamp * scene_fps``.

    Real timestamps (seconds) are used, so variable-frame-rate footage keeps
    its timing; frames may be fractional.
    """
    ts = take.timestamps if every_frame else take.timestamps[take.valid]
    return float(start_frame) + ts.astype(np.float64) * float(scene_fps)


def _bake_key_curves(obj, names, values, source, action_name: str, start_frame: float, scene_fps: float,
                     wrong_keys_hint: str, no_keys_hint: str, value_range: tuple[float, float] = (0.0, 1.0)):
    """New action on ``obj``'s shape keys with one LINEAR curve per name in ``names``.

    ``values`` is (T, len(names)), clipped to ``value_range`` (ARKit weights and
    solved keys: [0, 1]; corrective key coefficients: [-1, 1]); ``source`` has ``valid`` (T,) and
    ``timestamps`` (T,) (a Take or a KeyTake).  Checks the object, the names and
    that some frame is valid before anything is created.
    """
    key = obj.data.shape_keys if obj.type == "MESH" else None
    if key is None:
        raise FaceKeyError("no_shape_keys", f"Object '{obj.name}' has no shape keys.", no_keys_hint)
    missing = [n for n in names if n not in key.key_blocks]
    if missing:
        raise FaceKeyError("bad_argument", f"Shape keys {missing[:8]} do not exist on '{obj.name}'.", wrong_keys_hint)
    if not source.valid.any():
        raise FaceKeyError("no_face", "The take has no valid (tracked) frame to bake.",
                           "Use footage where the face is visible, or check the face index.")
    frames = take_frames(source, start_frame, scene_fps)
    values = np.clip(values[source.valid], *value_range)
    action = new_action_for(key, action_name)
    for i, name in enumerate(names):
        set_keys(ensure_fcurve(action, key, key_data_path(name), 0, GROUP), frames, values[:, i])
    action["facekey_start_frame"] = float(start_frame)
    action["facekey_scene_fps"] = float(scene_fps)
    return action


def bake_confidence(obj, action, take, start_frame: float, scene_fps: float) -> None:
    """Key ``take.confidence`` as the curve ``["facekey_confidence"]`` of ``obj``'s shape keys in ``action``.

    One LINEAR key on *every* frame of the take at ``start_frame + timestamp * scene_fps``: the
    take's confidence (0-1, the backend's product of face found, share of the face not under a
    hand and trust in the landmark fit) on valid frames, 0 where no face was found, so the Graph
    Editor shows where the capture is unsure next to the shape-key curves.  The custom property
    (range 0-1) is added to the shape-key datablock when it is not there yet; nothing else of it
    is written.  A take that did not measure its confidence (no ``confidence`` entry in its header:
    Live Link CSV imports, generated clips) gets no curve, nor does a datablock whose own property of
    that name is not a number.
    """
    key = obj.data.shape_keys
    if "confidence" not in take.header or not isinstance(key.get(CONFIDENCE_PROP, 1.0), float):
        return
    if CONFIDENCE_PROP not in key:
        key[CONFIDENCE_PROP] = 1.0
        key.id_properties_ui(CONFIDENCE_PROP).update(
            min=0.0, max=1.0, description="FaceKey: how sure the capture is of this frame (0-1)")
    values = np.where(take.valid, take.confidence, 0.0)
    set_keys(ensure_fcurve(action, key, CONFIDENCE_PATH, 0, GROUP), take_frames(take, start_frame, scene_fps, True),
             values)


def bake_source_confidence(obj, action, take_path: str, start_frame: float, scene_fps: float) -> None:
    """:func:`bake_confidence` of the Take file (.npz) a character solve was made from, when it is still
    there (a solve from a Live Link CSV, or from a take that is gone, gets no curve); the path is recorded
    as ``facekey_take``, which ties the action to the take's head rotation (``bake.bridge``)."""
    action["facekey_take"] = take_path or ""
    if take_path and take_path.lower().endswith(".npz") and os.path.isfile(take_path):
        bake_confidence(obj, action, read_take(take_path), start_frame, scene_fps)


def silent_keys(obj, key_names) -> list[str]:
    """Why some of ``key_names`` of mesh ``obj`` would not play a bake: a driver on the key's value (it wins
    over the action's curve) or the key muted; one line each, for the bake report."""
    key = obj.data.shape_keys
    driven = {d.data_path for d in key.animation_data.drivers} if key.animation_data is not None else set()
    out = []
    for name in key_names:
        kb = key.key_blocks.get(name)
        if kb is None:
            continue
        if key_data_path(name) in driven:
            out.append(f"'{name}' is driven: its driver overrides the baked curve (remove the driver to play it)")
        if kb.mute:
            out.append(f"'{name}' is muted: the baked curve moves nothing until it is unmuted")
    return out


def key_data_path(key_name: str) -> str:
    """RNA path of a shape key's value, e.g. ``key_blocks["jawOpen"].value``."""
    import bpy
    return f'key_blocks["{bpy.utils.escape_identifier(key_name)}"].value'


def bake_shape_keys(obj, take, mapping: dict[int, str], action_name: str, start_frame: float,
                    scene_fps: float, take_path: str | None = None):
    """Bake ``take.weights`` onto ``obj``'s shape keys as a new Action; return it.

    One F-curve per mapped unit (``key_blocks["<name>"].value``), one LINEAR
    key per valid frame (see :func:`take_frames`), values ``(V,)`` in [0, 1].
    Invalid frames get no key: F-curve interpolation holds across the gap.
    The previously assigned action is kept (fake user), never modified; the
    key blocks themselves (names, order, vertices, slider ranges, values)
    are not written.  The take's confidence is keyed beside them
    (:func:`bake_confidence`).

    Args:
        obj: mesh object with shape keys.
        take: :class:`protocol.take.Take`.
        mapping: unit index (ARKit order) -> shape-key name on ``obj``.
        action_name: name of the new action (Blender de-duplicates with .001).
        start_frame: scene frame of timestamp 0.
        scene_fps: scene frames per second (``render.fps / render.fps_base``).
        take_path: Take file the bake came from, stored on the action for export.
    """
    if obj.type == "MESH" and obj.data.shape_keys is not None and not mapping:
        raise FaceKeyError("no_shape_keys", f"No shape key of '{obj.name}' matches an ARKit unit.",
                           "Choose another name map, or a custom map file that names this character's keys.")
    units = sorted(mapping)
    action = _bake_key_curves(obj, [mapping[u] for u in units], take.weights[:, units], take, action_name,
                              start_frame, scene_fps, "Check the name map file against the object's shape keys.",
                              "Select a mesh with ARKit-style shape keys (e.g. jawOpen, eyeBlinkLeft).")
    bake_confidence(obj, action, take, start_frame, scene_fps)
    action["facekey_take"] = take_path or ""
    action["facekey_mapping"] = json.dumps({ARKIT_NAMES[u]: n for u, n in sorted(mapping.items())})
    # the key blocks' places too: a key renamed after the bake is found again by its place (readback)
    blocks = obj.data.shape_keys.key_blocks
    action["facekey_key_indices"] = json.dumps({ARKIT_NAMES[u]: blocks.find(n) for u, n in sorted(mapping.items())})
    return action


def bake_key_take(obj, key_take, action_name: str, start_frame: float, scene_fps: float,
                  key_take_path: str | None = None):
    """Bake a ``protocol.keytake.KeyTake`` (values of ``obj``'s own keys) as a new Action; return it.

    One F-curve per key of ``key_take.key_names`` (values (V,) in [0, 1], one
    LINEAR key per valid frame at ``start_frame + timestamp * scene_fps``);
    like :func:`bake_shape_keys`, the previous action is kept (fake user) and
    key blocks are never written.
    """
    action = _bake_key_curves(obj, list(key_take.key_names), key_take.values, key_take, action_name, start_frame,
                              scene_fps, "Measure and solve again for this object.",
                              "Bake the solved take onto the mesh it was measured from.")
    action["facekey_key_take"] = key_take_path or ""
    action["facekey_retarget"] = "solve"
    return action


def bake_corrective_keys(obj, names: list[str], coefficients, take, action_name: str, start_frame: float,
                         scene_fps: float, pc2_path: str | None = None, take_path: str | None = None):
    """Bake corrective key coefficients (T, K) in [-1, 1] (``retarget.corrective``) as a new Action.

    One LINEAR curve per key of ``names`` on the take's valid frames (see
    :func:`take_frames`), and the take's confidence (:func:`bake_confidence`);
    the previous action is kept (fake user).  ``take_path`` (the take's file) is recorded as
    ``facekey_take``, which ties the action to the take's head rotation (``bake.bridge``).
    """
    action = _bake_key_curves(obj, list(names), np.asarray(coefficients), take, action_name, start_frame,
                              scene_fps, "Run the mesh-level retarget again for this object.",
                              "Add the corrective keys before baking them.", value_range=(-1.0, 1.0))
    bake_confidence(obj, action, take, start_frame, scene_fps)
    action["facekey_take"] = take_path or ""
    action["facekey_pc2"] = pc2_path or ""
    action["facekey_retarget"] = "mesh"
    return action
