"""Bake one Take onto every target of a scene: the one entry point operators and headless runs share."""
from __future__ import annotations

import os

from ..protocol.arkit import ARKIT_NAMES
from ..targets import resolve_targets
from .head import bake_head_rotation, check_head_target
from .shape_keys import bake_shape_keys, silent_keys

__all__ = ["bake_take", "scene_fps", "action_name_for", "capture_counts"]


def scene_fps(scene) -> float:
    """Scene frames per second (``render.fps / render.fps_base``)."""
    return scene.render.fps / scene.render.fps_base


def action_name_for(source: str) -> str:
    """``FK_<stem>`` for a footage/take/CSV path (Blender adds .001 on clashes)."""
    stem = os.path.splitext(os.path.basename(source.rstrip("/\\")))[0] or "take"
    return f"FK_{stem}"


def capture_counts(take) -> dict:
    """What a captured take's header counts, for reports: ``"face_covered_frames"`` (when the capture
    looked for hands over the face) and ``"low_confidence_frames"`` (when it measured its confidence)."""
    out = {}
    if "occlusion" in take.header:
        out["face_covered_frames"] = int(take.header["occlusion"]["frames_with_face_covered"])
    if "low_confidence_frames" in take.header:
        out["low_confidence_frames"] = int(take.header["low_confidence_frames"])
    return out


def bake_take(take, objects, name_map, *, scene, source: str, start_frame: float = 1.0,
              take_path: str | None = None, head_target=None, head_bone: str | None = None) -> dict:
    """Bake ``take`` onto every usable object of ``objects`` (new actions; nothing existing is modified).

    Targets are resolved first (objects without usable shape keys are
    skipped with a reason), so an error leaves the scene unchanged.

    Returns:
        ``{"objects": {name: {"action", "mapped", "unmapped_units", "unused_keys", "warnings"}},
        "skipped": {name: reason}, "frames": valid frame count, "head": action name or None}`` and the
        take's :func:`capture_counts`.
    """
    targets, skipped = resolve_targets(objects, name_map)
    if head_target is not None:
        check_head_target(head_target, head_bone or None)
    fps = scene_fps(scene)
    name = action_name_for(source)
    report = {"objects": {}, "skipped": skipped, "frames": int(take.valid.sum()), "head": None,
              **capture_counts(take)}
    for obj, res in targets:
        action = bake_shape_keys(obj, take, res.mapping, name, start_frame, fps, take_path)
        report["objects"][obj.name] = {
            "action": action.name,
            "mapped": {ARKIT_NAMES[u]: k for u, k in sorted(res.mapping.items())},
            "unmapped_units": list(res.unmapped_units),
            "unused_keys": list(res.unused_keys),
            "warnings": silent_keys(obj, res.mapping.values()),
        }
    if head_target is not None:
        report["head"] = bake_head_rotation(head_target, take, name + "_head", start_frame, fps, head_bone or None,
                                            take_path or "").name
    return report
