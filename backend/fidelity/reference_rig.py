"""How large our 52 units are against an ARKit reference rig: a diagnostic of what the weights mean.

An ARKit weight means "this much of the reference shape": an animator who bakes a take onto an ARKit
rig sees weight 1 as that rig's full key.  The units of the built-in model are hand-built displacement
fields (``backend.facemodel.units``); if one moves the face half as far as an ARKit rig's key, the
solver needs twice the weight for the same face, and a real smile saturates at 1.

The reference: the realistic head of the Live Link Face example (``characters/...FBHead_arkit51.blend``
in realdata, 51 ARKit keys, no tongue), measured in Blender like any character
(:func:`backend.retarget.pipeline.measure_character`), the model's 468 skin points matched on its
surface (:func:`backend.retarget.correspondence.find_correspondence`, the frontal map's scale taking the
rig to model size).  Per unit, ``scale`` is the least-squares factor ``s`` that takes our unit's
displacement at the matched points to the rig key's, ``sum(ours . rig) / sum(ours . ours)``; ``residual``
is ``mean |s ours - rig| / mean |rig|``, how far the shapes differ beyond size (near 1: they move
different points, and the scale says little).  One artist's rig, so a guide, not a ground truth.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from backend.protocol.errors import FaceKeyError

__all__ = ["REFERENCE_RIG", "unit_scales_vs_rig"]

#: (file under realdata, mesh object) of the reference ARKit rig.
REFERENCE_RIG = ("characters/jmtechart_Live_Link_Face_FBHead_arkit51.blend", "FBHead")


def unit_scales_vs_rig(realdata: Path) -> dict:
    """Per-unit size of the reference rig's ARKit keys against ours (see the module docstring).

    Returns:
        ``{"rig": file, "object": name, "points": matched model points, "units": {ARKit name: {"scale",
        "residual"}}}`` for the units the rig has a key for (names matched case-insensitively), or
        ``{"skipped": reason}`` when the rig file is absent, cannot be measured or matched.
    """
    from backend.facemodel import load_face_model
    from backend.facemodel.canonical import NUM_MESH
    from backend.protocol.arkit import ARKIT_NAMES
    from backend.retarget.correspondence import find_correspondence
    from backend.retarget.pipeline import measure_character

    rel, name = REFERENCE_RIG
    path = Path(realdata) / rel
    if not path.is_file():
        return {"skipped": f"{rel} absent"}
    model = load_face_model()
    try:
        ck = measure_character(path, name, timeout=300)
        points = find_correspondence(ck, model.neutral, model.unit_deltas, model.unit_names, np.arange(NUM_MESH))
    except FaceKeyError as e:
        return {"skipped": f"{rel}: {e.message}"}
    keys = {k.lower(): i for i, k in enumerate(ck.key_names)}
    units = {}
    for u, unit in enumerate(ARKIT_NAMES):
        if unit.lower() not in keys:
            continue
        rig = points.interpolate(ck.deltas[keys[unit.lower()]], ck.triangles) / points.scale   # (P, 3) model metres
        ours = model.unit_deltas[u][points.model_index].astype(np.float64)
        scale = float((ours * rig).sum() / max((ours * ours).sum(), 1e-18))
        residual = float(np.linalg.norm(scale * ours - rig, axis=1).mean()
                         / max(np.linalg.norm(rig, axis=1).mean(), 1e-12))
        units[unit] = {"scale": round(scale, 3), "residual": round(residual, 3)}
    return {"rig": rel, "object": name, "points": int(len(points.model_index)), "units": units}
