"""Build a mesh object with shape keys from arrays (the demo head, test characters)."""
from __future__ import annotations

import numpy as np

from .protocol.axes import points_to_blender

__all__ = ["build_head_object"]


def build_head_object(name: str, vertices: np.ndarray, triangles: np.ndarray, unit_deltas: np.ndarray,
                      unit_names, *, collection=None, head_frame: bool = True):
    """Create mesh object ``name`` with a Basis key and one shape key per unit.

    Args:
        vertices: (N, 3) float metres, neutral face.
        triangles: (F, 3) int vertex indices.
        unit_deltas: (U, N, 3) float metres, offset of each unit at weight 1.
        unit_names: U shape-key names (e.g. ARKit names).
        collection: where to link the object (default: the scene collection).
        head_frame: inputs are in the Take head frame (x left, y up, z out of
            the face) and are turned to face -Y in Blender; False: already Blender axes.

    Returns:
        The new object; shape keys ``Basis`` + ``unit_names`` in order, values 0.
    """
    import bpy
    v = np.asarray(vertices, np.float64)
    d = np.asarray(unit_deltas, np.float64)
    tris = np.asarray(triangles, np.int64)
    names = list(unit_names)
    if v.ndim != 2 or v.shape[1] != 3 or tris.ndim != 2 or tris.shape[1] != 3:
        raise ValueError(f"vertices {v.shape} must be (N, 3) and triangles {tris.shape} (F, 3)")
    if d.shape != (len(names),) + v.shape:
        raise ValueError(f"unit_deltas {d.shape} must be ({len(names)}, {v.shape[0]}, 3)")
    if head_frame:
        v, d = points_to_blender(v), points_to_blender(d)
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(v.tolist(), [], tris.tolist())
    mesh.update()
    obj = bpy.data.objects.new(name, mesh)
    (collection or bpy.context.scene.collection).objects.link(obj)
    obj.shape_key_add(name="Basis", from_mix=False)
    for n, delta in zip(names, d):
        kb = obj.shape_key_add(name=n, from_mix=False)
        kb.data.foreach_set("co", (v + delta).astype(np.float32).ravel())
    mesh.update()
    return obj
