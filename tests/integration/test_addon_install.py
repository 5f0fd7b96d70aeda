"""The built extension zip installs and enables in real Blender (bpy 5.0 module)."""
from __future__ import annotations

import zipfile


def test_extension_zip_layout(addon_zips):
    names = zipfile.ZipFile(addon_zips["extension"]).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert "protocol/take.py" in names and "protocol/client.py" in names and "headless.py" in names
    assert any(n.startswith("wheels/facekey-") and n.endswith(".whl") for n in names)
    legacy = zipfile.ZipFile(addon_zips["legacy"]).namelist()
    assert "facekey/__init__.py" in legacy and "facekey/protocol/errors.py" in legacy
    assert not any("__pycache__" in n for n in names + legacy)


def test_extension_installs_enables_and_disables(run_scenario):
    res = run_scenario("install", {})
    assert res["module"] == "bl_ext.user_default.facekey"
    assert set(res["ops"]) == {"capture", "generate", "cancel", "setup_backend", "check_backend", "import_csv",
                               "export_csv", "open_log", "apply_take", "preview_frame", "clear_preview",
                               "solve_character", "mesh_retarget", "set_rest_frame"}
    assert res["panel"] and res["scene_prop"] and res["object_prop"]
    # every operator that adds to the scene is one undo step (a bake made none: the next Ctrl+Z took it too)
    assert res["undo"] == sorted(["capture", "generate", "solve_character", "mesh_retarget", "apply_take", "import_csv",
                                  "preview_frame", "clear_preview", "set_rest_frame"])
    assert res["wheel"].startswith("facekey-0.1.0-")
    assert res["panel_after_disable"] is False and res["object_prop_after_disable"] is False


def test_the_legacy_add_on_and_the_extension_are_never_both_enabled(run_scenario, addon_zips):
    """Both used to enable (the second replacing the first's classes), and disabling one then raised and
    left its timer ticking on a missing scene property."""
    res = run_scenario("two_facekeys", {"legacy_zip": addon_zips["legacy"]})
    assert res["capture_module"].startswith(res["extension"] + ".")
    assert not res["legacy_enabled"] and res["disabled"] is True


def test_the_zips_hold_the_sources_as_they_are_now(tmp_path):
    """setuptools reuses the checkout's build/lib, so a module deleted from the sources stayed in the
    bundled wheel; editor backups and hidden files (.DS_Store, operators.py~) were shipped.  Built from a
    copy of the checkout holding such files (the real one is not touched)."""
    import importlib.util
    import shutil

    from blender_fixtures import REPO
    copy = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__", ".venv", ".git", "build", "dist", "*.egg-info")
    copy.mkdir()
    for name in ("build_addon.py", "pyproject.toml", "README.md", "backend", "training", "blender_addon"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, copy / name, ignore=ignore)
        else:
            shutil.copy2(REPO / name, copy / name)
    for junk in (copy / "build" / "lib" / "backend" / "zz_deleted_module.py", copy / "blender_addon" / ".DS_Store",
                 copy / "blender_addon" / "operators.py~"):
        junk.parent.mkdir(parents=True, exist_ok=True)
        junk.write_text("X = 1\n")
    spec = importlib.util.spec_from_file_location("facekey_build_addon_copy", copy / "build_addon.py")
    build_addon = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_addon)
    target = build_addon.stage(tmp_path / "stage")
    (wheel,) = (target / "wheels").glob("facekey-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "backend/worker.py" in names and "backend/zz_deleted_module.py" not in names
    assert "backend/assets/generators/s2d/s2d.safetensors" in names
    assert not (target / ".DS_Store").exists() and not (target / "operators.py~").exists()
