"""DESIGN.md import rules, checked on the source tree (AST, not grep)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = {"torch", "cv2", "mediapipe", "av", "safetensors", "trimesh", "typer", "rich", "matplotlib", "scipy"}


def _imports(path: Path) -> set[str]:
    """Top-level module names imported anywhere in ``path`` (absolute imports only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _files(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


@pytest.mark.parametrize("folder", ["backend", "training"])
def test_no_bpy_outside_the_addon(folder):
    offenders = [str(p.relative_to(REPO)) for p in _files(folder) if {"bpy", "mathutils", "bmesh"} & _imports(p)]
    assert not offenders, f"bpy imported outside blender_addon/: {offenders}"


def test_addon_never_imports_heavy_libraries():
    offenders = {str(p.relative_to(REPO)): sorted(HEAVY & _imports(p)) for p in _files("blender_addon")}
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"blender_addon/ imports backend-only libraries: {offenders}"


def test_backend_never_imports_training():
    offenders = [str(p.relative_to(REPO)) for p in _files("backend") if "training" in _imports(p)]
    assert not offenders, f"backend/ imports training/: {offenders}"


def test_protocol_is_stdlib_and_numpy_only():
    import sys
    allowed = set(sys.stdlib_module_names) | {"numpy"}
    offenders = {str(p.relative_to(REPO)): sorted(_imports(p) - allowed) for p in _files("backend/protocol")}
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"backend/protocol must import only stdlib + numpy (it is copied into the add-on): {offenders}"


def test_rules_see_violations(tmp_path):
    """The checker itself must flag an offending file."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import bpy\n    from torch import nn\n")
    assert {"bpy", "torch"} <= _imports(bad)
