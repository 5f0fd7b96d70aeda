"""Attach a Point Cache 2 file (mesh-level retarget output) to an object with a Mesh Cache modifier.

The object's mesh data is never changed: the modifier reads the .pc2
positions (object-local coordinates, the mesh's vertex order) at each scene
frame.  A modifier of the same name is replaced, so re-running a retarget
does not stack caches.  The modifier goes first in the stack: it replaces the
mesh's own vertex positions, so it must read them before a modifier that
poses (Armature) or adds geometry (Subdivision) does.
"""
from __future__ import annotations

import os

from ..protocol.errors import FaceKeyError

__all__ = ["add_mesh_cache", "MODIFIER_NAME"]

MODIFIER_NAME = "FaceKey Mesh Cache"


def add_mesh_cache(obj, pc2_path: str, frame_start: float = 1.0, num_points: int | None = None,
                   frame_scale: float = 1.0):
    """Add (or replace) a Mesh Cache modifier reading ``pc2_path`` on mesh object ``obj``, first in its stack.

    Args:
        obj: a ``bpy.types.Object`` of type MESH.
        pc2_path: the .pc2 file (absolute path stored).
        frame_start: scene frame at which the cache's first sample plays.
        num_points: the cache's point count; checked against the mesh's vertex count when given.
        frame_scale: samples per scene frame: the take's frame rate over the scene's (the cache holds a
            sample per 1 / fps of the take: a 30 fps take in a 24 fps scene plays 1.25 samples a frame,
            at its own speed).

    Returns:
        The ``MeshCacheModifier``.
    """
    if obj.type != "MESH":
        raise FaceKeyError("bad_argument", f"Object '{obj.name}' is a {obj.type}, not a mesh.",
                           "Pick the character's head mesh object.")
    if not os.path.isfile(pc2_path):
        raise FaceKeyError("file_missing", f"Point cache not found: {pc2_path}", "Run the mesh-level retarget first.")
    if num_points is not None and num_points != len(obj.data.vertices):
        raise FaceKeyError("bad_argument", f"The cache has {num_points} points but '{obj.name}' has "
                           f"{len(obj.data.vertices)} vertices.",
                           "Retarget onto this object's own mesh (same vertex order), then attach the cache.")
    old = obj.modifiers.get(MODIFIER_NAME)
    if old is not None:
        obj.modifiers.remove(old)
    mod = obj.modifiers.new(MODIFIER_NAME, "MESH_CACHE")
    mod.cache_format = "PC2"
    mod.filepath = os.path.abspath(pc2_path)
    # Blender reads sample (scene frame x frame_scale - frame_start): its frame_start counts samples
    mod.frame_start = float(frame_start) * float(frame_scale)
    mod.frame_scale = float(frame_scale)
    mod.play_mode = "SCENE"
    mod.time_mode = "FRAME"
    mod.deform_mode = "OVERWRITE"
    mod.interpolation = "LINEAR"
    _move_first(obj, mod)
    return mod


def _move_first(obj, mod) -> None:
    """Put ``mod`` first in ``obj``'s modifier stack (``modifiers.move`` since Blender 4.0, the operator before)."""
    import bpy
    if obj.modifiers[0] == mod:
        return
    if hasattr(obj.modifiers, "move"):      # found by name: a modifier pinned last keeps the end of the stack
        obj.modifiers.move(obj.modifiers.find(mod.name), 0)
    else:
        with bpy.context.temp_override(object=obj, active_object=obj):
            bpy.ops.object.modifier_move_to_index(modifier=mod.name, index=0)
