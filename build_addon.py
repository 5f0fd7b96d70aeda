"""Build the FaceKey Blender add-on zips (standard library only).

    python build_addon.py                 # dist/facekey-0.1.0.zip (+ -legacy.zip)
    python build_addon.py --stage-only DIR  # DIR/facekey/ ready to enable (dev)

Staging copies ``blender_addon/`` and ``backend/protocol/`` (as
``facekey/protocol``) and, unless ``--no-wheel``, the facekey wheel built
from this repo with ``pip wheel . --no-deps`` into ``facekey/wheels/`` (the
add-on's **Set up backend** installs it into the backend venv).

Outputs:
* ``dist/facekey-<version>.zip``: Blender 4.2+ extension, built and
  validated with Blender's ``blender_ext.py`` when the bpy module ships it,
  else zipped directly (same layout: manifest at the zip root).
* ``dist/facekey-<version>-legacy.zip``: a ``facekey/`` folder, for
  ``Preferences > Add-ons > Install`` on Blender 3.4-4.1.
"""
from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent
ADDON_SRC = REPO / "blender_addon"
PROTOCOL_SRC = REPO / "backend" / "protocol"
PACKAGE = "facekey"
#: Never shipped: caches, editor backups and hidden files (.DS_Store, .pytest_cache, operators.py~).
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.blend1", ".*", "*~")
#: What the wheel is built from (copied clean: setuptools reuses the checkout's build/lib, which keeps
#: modules deleted from the sources).
WHEEL_SOURCES = ("pyproject.toml", "README.md", "backend", "training")


def version() -> str:
    """The add-on version from ``blender_manifest.toml``."""
    m = re.search(r'^version\s*=\s*"([^"]+)"', (ADDON_SRC / "blender_manifest.toml").read_text(), re.M)
    if not m:
        raise SystemExit("blender_manifest.toml has no version")
    return m.group(1)


def build_wheel(out_dir: Path) -> Path:
    """``pip wheel . --no-deps -w out_dir``; return the facekey wheel."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="facekey-wheel-") as tmp:
        src = Path(tmp) / "src"
        for name in WHEEL_SOURCES:
            path = REPO / name
            if path.is_dir():
                shutil.copytree(path, src / name, ignore=_IGNORE)
            else:
                src.mkdir(exist_ok=True)
                shutil.copy2(path, src / name)
        subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "-q", "-w", tmp], check=True)
        (wheel,) = glob.glob(os.path.join(tmp, "facekey-*.whl"))
        return Path(shutil.copy2(wheel, out_dir))


def stage(dest: str | os.PathLike, *, with_wheel: bool = True) -> Path:
    """Write the add-on folder ``dest/facekey/`` (replacing it); return its path."""
    target = Path(dest) / PACKAGE
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(ADDON_SRC, target, ignore=_IGNORE)
    shutil.copytree(PROTOCOL_SRC, target / "protocol", ignore=_IGNORE)
    if with_wheel:
        build_wheel(target / "wheels")
    return target


def _zip_dir(src: Path, zip_path: Path, prefix: str) -> Path:
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = zip_path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                z.write(path, str(Path(prefix) / path.relative_to(src)) if prefix else str(path.relative_to(src)))
    os.replace(tmp, zip_path)
    return zip_path


def blender_ext_tool() -> Path | None:
    """``blender_ext.py`` from the bpy module's bundled scripts, if installed."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        found = sorted(glob.glob(os.path.join(root, "*", "scripts", "addons_core", "bl_pkg", "cli", "blender_ext.py")))
        if found:
            return Path(found[-1])
    return None


def build_extension(staged: Path, out_dir: Path) -> Path:
    """Validate and build the extension zip from ``staged`` (Blender's tool when present)."""
    zip_path = out_dir / f"{PACKAGE}-{version()}.zip"
    tool = blender_ext_tool()
    if tool is None:
        return _zip_dir(staged, zip_path, "")
    subprocess.run([sys.executable, str(tool), "validate", str(staged)], check=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(tool), "build", "--source-dir", str(staged), "--output-filepath",
                    str(zip_path)], check=True)
    return zip_path


def build(out_dir: str | os.PathLike = REPO / "dist") -> dict[str, Path]:
    """Build both zips into ``out_dir``; return {"extension": path, "legacy": path}."""
    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="facekey-stage-") as tmp:
        staged = stage(tmp)
        ext = build_extension(staged, out)
        legacy = _zip_dir(staged, out / f"{PACKAGE}-{version()}-legacy.zip", PACKAGE)
    return {"extension": ext, "legacy": legacy}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stage-only", metavar="DIR", help="only write DIR/facekey/ (development)")
    p.add_argument("--no-wheel", action="store_true", help="do not bundle the facekey wheel")
    p.add_argument("--out", default=str(REPO / "dist"), help="output folder for the zips")
    args = p.parse_args(argv)
    if args.stage_only:
        print(stage(args.stage_only, with_wheel=not args.no_wheel))
        return 0
    for kind, path in build(args.out).items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
