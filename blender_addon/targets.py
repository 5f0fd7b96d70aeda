"""Which selected objects can receive a bake, how their keys map to ARKit units, and which retarget mode
each one gets (name map, character solve or mesh-level)."""
from __future__ import annotations

from .protocol.errors import FaceKeyError

__all__ = ["resolve_targets", "resolve_mode", "target_mode", "plan_targets", "write_blocker", "MODE_ITEMS",
           "MODE_LABELS"]

#: ``Object.facekey_retarget_mode`` enum items (identifier, label, description); AUTO picks one of the others.
MODE_ITEMS = [("AUTO", "Auto", "Name map when some shape key is named like an ARKit unit, else character solve "
               "when the mesh has shape keys, else mesh-level"),
              ("NAMEMAP", "Name map", "Bake the take onto shape keys named like ARKit units"),
              ("SOLVE", "Character solve", "Solve the take for this mesh's own shape keys (any names)"),
              ("MESH", "Mesh-level", "Move the mesh itself (any topology, no shape keys needed): Mesh Cache "
               "or corrective keys, per the Output setting")]
MODE_LABELS = {ident: label for ident, label, _ in MODE_ITEMS}


def _key_names(obj) -> list[str]:
    """Shape-key names of mesh ``obj`` without the reference key ([] when it has none to animate)."""
    key = obj.data.shape_keys if obj.type == "MESH" else None
    if key is None or len(key.key_blocks) < 2:
        return []
    return [kb.name for kb in key.key_blocks[1:]]


def write_blocker(idblock, what: str, animated: bool = True) -> str | None:
    """Why a bake cannot write ``idblock``'s animation (``what`` names it in the reason), or None; with
    ``animated`` False (a modifier is added, no action) only linked data blocks it.

    Linked data (from another .blend, not made local): Blender shows a new action on it but saves none
    of it.  An NLA in tweak mode: the active action cannot be swapped (Blender raises half-way through
    a bake).
    """
    if idblock is None:
        return None
    if not getattr(idblock, "is_editable", idblock.library is None):       # Blender < 4 has no is_editable
        lib = idblock.library.filepath if idblock.library is not None else "a library"
        return (f"its {what} are linked from {lib}: a bake would not be saved (make them local, "
                "Object > Relations > Make Local)")
    ad = idblock.animation_data
    if animated and ad is not None and ad.use_tweak_mode:
        return f"the NLA of its {what} is in tweak mode (leave it with Tab in the NLA editor)"
    return None


def _keys_blocker(obj) -> str | None:
    """Why a bake onto ``obj``'s shape keys would not be written or not move anything, or None."""
    key = obj.data.shape_keys
    if key is not None and not key.use_relative:
        return "its shape keys are absolute (Relative off): keyed values would move nothing"
    return write_blocker(key, "shape keys")


def _namemap_resolution(obj, name_map) -> tuple[object, str | None]:
    """(Resolution or None, reason ``obj`` cannot take a name-map bake or None)."""
    if obj.type != "MESH":
        return None, f"not a mesh ({obj.type.lower()})"
    blocked = _keys_blocker(obj)
    if blocked:
        return None, blocked
    names = _key_names(obj)
    if not names:
        return None, "has no shape keys"
    res = name_map.resolve(names)
    if not res.mapping:
        return None, "no shape key matches an ARKit unit with this name map"
    return res, None


def resolve_targets(objects, name_map) -> tuple[list, dict[str, str]]:
    """Split ``objects`` into bake targets and skipped ones.

    Args:
        objects: iterable of Blender objects.
        name_map: ``protocol.namemap.NameMap``.

    Returns:
        (targets, skipped): ``targets`` is a list of ``(object, Resolution)``
        (mapping unit index -> key name, unmapped units, unused keys);
        ``skipped`` maps object name -> reason.  A skipped object never
        stops the others.

    Raises:
        FaceKeyError: ``no_targets`` if ``objects`` is empty; ``no_shape_keys``
        if no object remains.
    """
    return _split(objects, lambda obj: _namemap_resolution(obj, name_map))


def resolve_mode(obj, name_map) -> str | None:
    """The retarget mode ``obj`` gets: its ``facekey_retarget_mode``, with AUTO resolved.

    AUTO: NAMEMAP when some shape key matches an ARKit unit under ``name_map``,
    else SOLVE when the mesh has any shape keys, else MESH.  None for a non-mesh.
    """
    if obj.type != "MESH":
        return None
    mode = getattr(obj, "facekey_retarget_mode", "AUTO")
    if mode != "AUTO":
        return mode
    if _namemap_resolution(obj, name_map)[1] is None:
        return "NAMEMAP"
    return "SOLVE" if _key_names(obj) else "MESH"


def target_mode(obj, name_map) -> tuple[str | None, str | None]:
    """``(mode, None)`` with the mode ``obj`` is retargeted by ("NAMEMAP" | "SOLVE" | "MESH"), or
    ``(None, reason)`` when it cannot be (not a mesh; NAMEMAP without matching keys; SOLVE without keys)."""
    mode = resolve_mode(obj, name_map)
    if mode is None:
        return None, f"not a mesh ({obj.type.lower()})"
    blocked = write_blocker(obj, "object", animated=False) if mode == "MESH" else _keys_blocker(obj)
    if blocked:
        return None, blocked
    if mode == "NAMEMAP":
        why = _namemap_resolution(obj, name_map)[1]
        if why:
            return None, why
    elif mode == "SOLVE" and not _key_names(obj):
        return None, "has no shape keys to solve for (use Mesh-level)"
    return mode, None


def plan_targets(objects, name_map) -> tuple[list[tuple[object, str]], dict[str, str]]:
    """Each object with the mode it will be retargeted by (:func:`target_mode`), and the ones that cannot be.

    Returns:
        (plan, skipped): ``plan`` lists ``(object, "NAMEMAP" | "SOLVE" | "MESH")`` in the given
        order; ``skipped`` maps object name -> reason.

    Raises:
        FaceKeyError: ``no_targets`` if ``objects`` is empty; ``no_shape_keys`` if no object remains.
    """
    return _split(objects, lambda obj: target_mode(obj, name_map))


def _split(objects, classify) -> tuple[list, dict[str, str]]:
    """``([(obj, value)], {name: reason})`` by ``classify(obj) -> (value, reason or None)``; coded errors when
    ``objects`` is empty (``no_targets``) or every object is skipped (``no_shape_keys``)."""
    objects = list(objects)
    if not objects:
        raise FaceKeyError("no_targets", "No target objects were given.",
                           "Select the character meshes that have ARKit shape keys.")
    kept, skipped = [], {}
    owners: dict[int, str] = {}         # shape-key datablock -> the object that takes its bake
    for obj in objects:
        value, why = classify(obj)
        key = obj.data.shape_keys if obj.type == "MESH" and value != "MESH" else None
        if not why and key is not None and key.as_pointer() in owners:
            why = (f"shares its mesh and shape keys with '{owners[key.as_pointer()]}': one set of keys plays one "
                   "action, baked there")
        if why:
            skipped[obj.name] = why
        else:
            if key is not None:
                owners[key.as_pointer()] = obj.name
            kept.append((obj, value))
    if not kept:
        why = "; ".join(f"{n}: {r}" for n, r in skipped.items())
        raise FaceKeyError("no_shape_keys", f"None of the selected objects can receive the animation ({why}).",
                           "Select meshes with ARKit-style shape keys, or pick a name map that matches their names.")
    return kept, skipped
