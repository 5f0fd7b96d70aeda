"""Attach a Point Cache 2 file (``protocol.pc2``) to an object in a .blend through a headless Blender."""
from __future__ import annotations

from pathlib import Path

__all__ = ["attach_mesh_cache"]


def attach_mesh_cache(pc2_path: str | Path, blend_in: str | Path, blend_out: str | Path, object_name: str, *,
                      start_frame: float = 1.0, take_fps: float | None = None, blender: str | None = None,
                      timeout: float | None = None) -> dict:
    """Add a Mesh Cache modifier reading ``pc2_path`` to ``object_name`` of ``blend_in``; save ``blend_out``.

    The cache holds one sample per 1 / fps of the take (``facekey mesh-retarget``); with ``take_fps`` it
    plays at that rate in the scene (a 30 fps take in a 24 fps scene: 1.25 samples a frame), else one
    sample per scene frame.

    Runs the add-on's ``retarget/headless.py mesh-cache`` in a headless Blender
    (bpy module or ``blender`` binary); the object's mesh data is not changed.

    Returns:
        The step's report: ``{"output", "modifier", "points", "samples"}``.
    """
    from backend.blender_runner import run_headless, staged_addon
    args = ["mesh-cache", "--open", str(Path(blend_in).resolve()), "--object", object_name,
            "--cache", str(Path(pc2_path).resolve()), "-o", str(Path(blend_out).resolve()),
            "--start-frame", str(float(start_frame))]
    if take_fps is not None:
        args += ["--take-fps", str(float(take_fps))]
    return run_headless(args, blender, timeout=timeout, script=str(staged_addon() / "retarget" / "headless.py"))
