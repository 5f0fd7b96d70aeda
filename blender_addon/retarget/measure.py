"""A mesh object's rest shape and shape keys -> ``CharacterKeys`` (bpy + numpy).

Positions come from the evaluated mesh (modifiers and the armature in its
current pose applied, as the character is seen; skinned glTF meshes store
their vertices in bind space, so the raw data would be misplaced), in world
space, then in the head frame (character facing -Y, Z up: head (x, y, z) =
Blender (X, Z, -Y)).  Each key is evaluated alone at value 1 with every
other key at 0; the key values are restored afterwards (nothing is kept).
Vertex groups ``facekey_eye_left`` / ``facekey_eye_right`` / ``facekey_mouth``
(all three) become user anchors and replace the key-based ones.
"""
from __future__ import annotations

import contextlib

import numpy as np

from ..protocol.axes import points_from_blender
from ..protocol.errors import FaceKeyError
from ..protocol.keytake import ANCHOR_NAMES, CharacterKeys

__all__ = ["character_keys_from_object", "evaluated_world", "vertex_for_vertex", "ANCHOR_GROUPS"]

#: Vertex-group name of each user anchor.
ANCHOR_GROUPS = {a: f"facekey_{a}" for a in ANCHOR_NAMES}


#: Modifier types that make new geometry (Blender's "Generate" modifiers): evaluated with them on, a mesh
#: no longer has one vertex per vertex of its data.
GENERATE_MODIFIERS = frozenset({
    "ARRAY", "BEVEL", "BOOLEAN", "BUILD", "DECIMATE", "EDGE_SPLIT", "NODES", "MASK", "MIRROR", "MULTIRES",
    "REMESH", "SCREW", "SKIN", "SOLIDIFY", "SUBSURF", "TRIANGULATE", "VOLUME_TO_MESH", "WELD", "WIREFRAME"})


def _evaluated_co(obj, n: int):
    """``(object-space positions (n, 3) float64, world matrix (4, 4))`` of ``obj``'s evaluated mesh, or
    ``(None, None)`` when it does not have ``n`` vertices."""
    import bpy
    bpy.context.view_layer.update()
    ev = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    me = ev.to_mesh()
    try:
        if len(me.vertices) != n:
            return None, None
        co = np.empty(n * 3, np.float32)
        me.vertices.foreach_get("co", co)
    finally:
        ev.to_mesh_clear()
    return co.reshape(n, 3).astype(np.float64), np.array(ev.matrix_world, np.float64)


@contextlib.contextmanager
def vertex_for_vertex(obj):
    """For the block, ``obj`` evaluates to one vertex per vertex of its data: where modifiers that make new
    geometry (:data:`GENERATE_MODIFIERS`: a subdivision surface, a mirror, ...) change the count, they are
    switched off in the viewport and switched back on after (the shape keys live on the vertices under
    them); a modifier that keeps the count, a geometry-nodes deformer say, stays on."""
    n = len(obj.data.vertices)
    off = []
    if _evaluated_co(obj, n)[0] is None:
        off = [m for m in obj.modifiers if m.type in GENERATE_MODIFIERS and m.show_viewport]
    try:
        for m in off:
            m.show_viewport = False
        yield
    finally:
        for m in off:
            m.show_viewport = True


def evaluated_world(obj, n: int) -> np.ndarray:
    """(n, 3) float64 world positions of ``obj``'s evaluated mesh (its ``n`` vertices with the shape keys at their
    values, the modifiers and the armature's pose applied; inside :func:`vertex_for_vertex` where modifiers
    may make new geometry), or ``bad_argument`` when a modifier changes the vertex count."""
    co, mw = _evaluated_co(obj, n)
    if co is None:
        raise FaceKeyError("bad_argument", f"'{obj.name}''s modifiers change its vertex count.",
                           "Disable the modifiers that add or remove vertices and measure again.")
    return co @ mw[:3, :3].T + mw[:3, 3]


def _anchors(obj) -> dict:
    groups = {a: obj.vertex_groups.get(g) for a, g in ANCHOR_GROUPS.items()}
    if not all(groups.values()):
        return {}
    members: dict[str, list[int]] = {a: [] for a in ANCHOR_NAMES}
    by_index = {g.index: a for a, g in groups.items()}
    for v in obj.data.vertices:
        for ge in v.groups:
            if ge.group in by_index and ge.weight > 0:
                members[by_index[ge.group]].append(v.index)
    empty = [ANCHOR_GROUPS[a] for a, m in members.items() if not m]
    if empty:
        raise FaceKeyError("bad_argument", f"Vertex groups {empty} of '{obj.name}' have no vertices.",
                           "Assign a few vertices at each eye's centre and the mouth's centre to those groups.")
    return {a: np.asarray(m, np.int32) for a, m in members.items()}


def character_keys_from_object(obj, source: str = "") -> CharacterKeys:
    """Measure ``obj``'s shape keys.

    Returns:
        ``CharacterKeys`` with rest (N, 3) and deltas (K, N, 3) in metres
        (world scale, head frame), triangles (F, 3), anchors from vertex groups.

    Raises:
        FaceKeyError: ``no_shape_keys`` when ``obj`` is not a mesh with shape keys.
    """
    key = obj.data.shape_keys if obj.type == "MESH" else None
    if key is None or len(key.key_blocks) < 2:
        raise FaceKeyError("no_shape_keys", f"Object '{obj.name}' has no shape keys to measure.",
                           "Pick the mesh that carries the face's shape keys.")
    me = obj.data
    n = len(me.vertices)
    me.calc_loop_triangles()
    tris = np.empty(len(me.loop_triangles) * 3, np.int32)
    me.loop_triangles.foreach_get("vertices", tris)
    blocks = [kb for kb in key.key_blocks if kb != key.reference_key]
    saved = [(kb.value, kb.mute) for kb in blocks]
    saved_pin = obj.show_only_shape_key
    names, deltas = [], []
    try:
        obj.show_only_shape_key = False
        for kb in blocks:
            kb.value, kb.mute = 0.0, False
        with vertex_for_vertex(obj):
            rest = evaluated_world(obj, n)
            for kb in blocks:
                kb.value = 1.0
                deltas.append(points_from_blender(evaluated_world(obj, n) - rest))
                names.append(kb.name)
                kb.value = 0.0
    finally:
        for kb, (value, mute) in zip(blocks, saved):
            kb.value, kb.mute = value, mute
        obj.show_only_shape_key = saved_pin
    return CharacterKeys(obj.name, tuple(names), points_from_blender(rest).astype(np.float32), tris.reshape(-1, 3),
                         np.asarray(deltas, np.float32), _anchors(obj), {"source": source}).validate()
