"""Which selected objects can receive a bake, and how their keys map to ARKit units."""
from __future__ import annotations

from .protocol.errors import FaceKeyError

__all__ = ["resolve_targets"]


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
    objects = list(objects)
    if not objects:
        raise FaceKeyError("no_targets", "No target objects were given.",
                           "Select the character meshes that have ARKit shape keys.")
    targets, skipped = [], {}
    for obj in objects:
        if obj.type != "MESH":
            skipped[obj.name] = f"not a mesh ({obj.type.lower()})"
            continue
        key = obj.data.shape_keys
        if key is None or len(key.key_blocks) < 2:
            skipped[obj.name] = "has no shape keys"
            continue
        names = [kb.name for kb in key.key_blocks[1:]]
        res = name_map.resolve(names)
        if not res.mapping:
            skipped[obj.name] = "no shape key matches an ARKit unit with this name map"
            continue
        targets.append((obj, res))
    if not targets:
        why = "; ".join(f"{n}: {r}" for n, r in skipped.items())
        raise FaceKeyError("no_shape_keys", f"None of the selected objects can receive the animation ({why}).",
                           "Select meshes with ARKit-style shape keys, or pick a name map that matches their names.")
    return targets, skipped
