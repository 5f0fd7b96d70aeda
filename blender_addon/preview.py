"""One-frame preview: a copy of a target object showing one take frame, next to it; the target is never touched.

The copy is a new object with a copy of the target's mesh datablock (shape
keys included, their animation data removed), named ``<name>.FaceKeyPreview``,
in the collection "FaceKey Preview", placed at the target's world transform
moved along +X by 1.2 x the target's world bounding-box width.  It has no
modifiers, parent or animation.  Objects, meshes and the collection made here
carry the ID property ``facekey_preview`` holding their own name, so
:func:`clear_preview` removes exactly those (:func:`is_preview`): a copy the
user duplicated (Shift+D copies ID properties) or renamed to keep it is theirs.
Making a preview first clears the previous one.
"""
from __future__ import annotations

import numpy as np

from .bake.shape_keys import take_frames
from .protocol.errors import FaceKeyError

__all__ = ["take_frame_at", "make_preview_object", "show_key_values", "show_positions", "clear_preview", "is_preview",
           "check_not_preview", "PREVIEW_TAG", "COLLECTION_NAME", "SUFFIX", "OFFSET_WIDTHS"]

PREVIEW_TAG = "facekey_preview"
COLLECTION_NAME = "FaceKey Preview"
SUFFIX = ".FaceKeyPreview"
#: The copy's offset along +X, in widths of the target's world bounding box.
OFFSET_WIDTHS = 1.2


def take_frame_at(take, scene_frame: float, start_frame: float, scene_fps: float) -> int:
    """The valid take frame baked nearest to ``scene_frame`` (index into the take's T frames).

    A bake keys valid frame i at ``start_frame + timestamp_i * scene_fps``
    (``bake.shape_keys.take_frames``); scene frames before / after the take
    clamp to its first / last valid frame.

    Raises:
        FaceKeyError: ``no_face`` when the take has no valid frame.
    """
    if not take.valid.any():
        raise FaceKeyError("no_face", "The take has no valid (tracked) frame to preview.",
                           "Use footage where the face is visible, or check the face index.")
    rows = np.flatnonzero(take.valid)
    at = take_frames(take, start_frame, scene_fps)
    return int(rows[np.argmin(np.abs(at - float(scene_frame)))])


def _world_width(obj) -> float:
    """Width along world X of ``obj``'s bounding box (metres; 1.0 for a flat or empty box)."""
    from mathutils import Vector
    xs = [(obj.matrix_world @ Vector(corner)).x for corner in obj.bound_box]
    width = max(xs) - min(xs)
    return width if width > 1e-6 else 1.0


def is_preview(idblock) -> bool:
    """Whether ``idblock`` (object, mesh, collection) is a preview made here and still FaceKey's: its tag
    holds its own name (a duplicate or a renamed copy is the user's).  Files saved before the tag held a
    name have ``True``, read as a preview."""
    tag = idblock.get(PREVIEW_TAG)
    return tag == idblock.name or (tag is not None and not isinstance(tag, str) and bool(tag))


def check_not_preview(obj) -> None:
    """Raise ``bad_argument`` when ``obj`` is the preview copy itself (a new preview would delete it)."""
    if is_preview(obj):
        raise FaceKeyError("bad_argument", f"'{obj.name}' is FaceKey's preview copy, not a character.",
                           "Select the original object and preview again.")


def _tag(idblock) -> None:
    idblock[PREVIEW_TAG] = idblock.name


def _preview_collection(scene):
    import bpy
    coll = next((c for c in bpy.data.collections if is_preview(c)), None)
    if coll is None:
        coll = bpy.data.collections.new(COLLECTION_NAME)
        _tag(coll)
    if scene.collection.children.get(coll.name) is None:
        scene.collection.children.link(coll)
    return coll


def make_preview_object(obj, scene):
    """A new preview copy of mesh object ``obj`` (see module doc), replacing any previous preview.

    Raises:
        FaceKeyError: ``bad_argument`` when ``obj`` is itself the preview copy (clearing it would delete it).
    """
    import bpy
    from mathutils import Matrix
    check_not_preview(obj)
    clear_preview()
    mesh = obj.data.copy()
    mesh.name = obj.name + SUFFIX
    _tag(mesh)
    if mesh.shape_keys is not None:
        mesh.shape_keys.animation_data_clear()
    copy = bpy.data.objects.new(obj.name + SUFFIX, mesh)
    _tag(copy)
    copy.matrix_world = Matrix.Translation((OFFSET_WIDTHS * _world_width(obj), 0.0, 0.0)) @ obj.matrix_world
    _preview_collection(scene).objects.link(copy)
    return copy


def show_key_values(obj, scene_name: str, values: dict[str, float]) -> dict:
    """Preview copy of ``obj`` with shape-key ``values`` ({key name: value}; every other key at 0).

    Returns ``{"object": copy name, "values": {key: value as set}}`` (values are clamped to each key's
    slider range, as Blender does).
    """
    import bpy
    missing = sorted(set(values) - set(obj.data.shape_keys.key_blocks.keys() if obj.data.shape_keys else ()))
    if missing:
        raise FaceKeyError("bad_argument", f"Shape keys {missing[:8]} do not exist on '{obj.name}'.",
                           "Preview the object the keys were measured on.")
    copy = make_preview_object(obj, bpy.data.scenes[scene_name])
    key = copy.data.shape_keys
    if key is not None:
        for kb in key.key_blocks:
            if kb != key.reference_key:
                kb.value = 0.0
        for name, value in values.items():
            key.key_blocks[name].value = float(value)
    copy.data.update()
    return {"object": copy.name, "values": {n: key.key_blocks[n].value for n in values} if key else {}}


def show_positions(obj, scene_name: str, positions: np.ndarray) -> dict:
    """Preview copy of ``obj`` whose mesh vertices are ``positions`` (N, 3) (object-local, the mesh's vertex order).

    The copy's own shape keys are removed (they would override the vertices). Returns ``{"object": copy name}``.
    """
    import bpy
    p = np.asarray(positions, np.float32)
    if p.shape != (len(obj.data.vertices), 3):
        raise FaceKeyError("bad_argument", f"{p.shape} positions for '{obj.name}' with {len(obj.data.vertices)} "
                           "vertices.", "Preview the object the positions were computed for.")
    copy = make_preview_object(obj, bpy.data.scenes[scene_name])
    if copy.data.shape_keys is not None:
        copy.shape_key_clear()
    copy.data.vertices.foreach_set("co", p.ravel())
    copy.data.update()
    return {"object": copy.name}


def clear_preview() -> int:
    """Remove the preview objects, their meshes (when nothing else uses them) and the empty preview
    collection made by this module, and nothing else; return how many objects were removed."""
    import bpy
    removed = 0
    for obj in [o for o in bpy.data.objects if is_preview(o)]:
        bpy.data.objects.remove(obj)
        removed += 1
    for mesh in [m for m in bpy.data.meshes if is_preview(m) and m.users == 0]:
        bpy.data.meshes.remove(mesh)
    for coll in [c for c in bpy.data.collections if is_preview(c)]:
        if not coll.objects and not coll.children:
            bpy.data.collections.remove(coll)
    return removed
