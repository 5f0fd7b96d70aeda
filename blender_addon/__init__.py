"""FaceKey: video -> ARKit-52 shape-key animation, as a Blender add-on.

Works as a Blender 4.2+ extension (``bl_ext.<repo>.facekey``, see
``blender_manifest.toml``) and as a legacy add-on for Blender 3.4+
(``facekey``, via ``bl_info``).  Only relative imports are used.

The heavy work (decoding, tracking, solving) runs in a separate backend
process (``protocol.client.BackendClient``); this package owns the UI, the
scene changes and the baking.  ``protocol`` is copied in by ``build_addon.py``.
"""
from __future__ import annotations

bl_info = {
    "name": "FaceKey",
    "author": "FaceKey developers",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "3D View > Sidebar > FaceKey",
    "description": "Facial performance capture from video to ARKit shape-key animation",
    "category": "Animation",
}


def _modules():
    from . import cli_command, operators, panels, preferences
    return (preferences, operators, panels, cli_command)


def register() -> None:
    import importlib.util

    import bpy
    from .protocol.errors import FaceKeyError
    if importlib.util.find_spec("numpy") is None:
        raise FaceKeyError("blender_failed", "This Blender's Python has no numpy, which FaceKey needs to read takes.",
                           "Use an official Blender build (it bundles numpy), or on Debian/Ubuntu: apt install python3-numpy.")
    other = getattr(bpy.types, "FACEKEY_OT_capture", None)
    if other is not None and not other.__module__.startswith(__name__ + "."):
        raise FaceKeyError("bad_argument", f"Another FaceKey is enabled ({other.__module__.split('.operators')[0]}).",
                           "Disable or remove the other one (the legacy add-on or the extension), then enable this.")
    for m in _modules():
        m.register()


def unregister() -> None:
    import traceback
    for m in reversed(_modules()):
        try:          # each part goes even when another fails, so no timer or class is left behind
            m.unregister()
        except Exception:  # noqa: BLE001 - reported, and the remaining parts still unregister
            traceback.print_exc()
