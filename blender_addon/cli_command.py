"""``blender -b -c facekey bake ...`` on Blender 4.2+ (``bpy.utils.register_cli_command``).

Same commands and arguments as ``headless.py``; absent on older Blender.
"""
from __future__ import annotations

import bpy

__all__ = ["register", "unregister"]

_HANDLE: list = []


def _run(argv: list[str]) -> int:
    from .headless import main
    return main(argv)


def register() -> None:
    if hasattr(bpy.utils, "register_cli_command"):
        _HANDLE.append(bpy.utils.register_cli_command("facekey", _run))


def unregister() -> None:
    while _HANDLE:
        bpy.utils.unregister_cli_command(_HANDLE.pop())
