"""Run FaceKey's Blender-side code headless: with the bpy module, or a ``blender`` binary.

The same add-on code runs everywhere: the add-on is staged from this
checkout (``build_addon.stage``) into a cache folder keyed by its content,
and its ``headless.py`` is run either as ``python headless.py -- ...`` (a
Python that imports ``bpy``) or as ``blender -b --factory-startup --python
headless.py -- ...``.  This module never imports bpy itself.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .protocol.errors import FaceKeyError

__all__ = ["run_blender_script", "staged_addon", "headless_script", "bake_take_file", "bake_take_folder", "render_take_rows",
           "character_source_args",
           "build_head_blend"]

REPO = Path(__file__).resolve().parents[1]
_HINT_BLENDER = ("Install the Blender module (pip install 'facekey[blender]'), put `blender` on PATH, "
                 "or set FACEKEY_BLENDER to a Blender executable.")


def _blender_command(script: str, args: list[str], blender: str | None) -> list[str]:
    """The command running ``script``: ``blender`` or ``$FACEKEY_BLENDER`` when named (a chosen Blender
    writes .blend files its own version opens), else the bpy module when importable, else PATH's blender."""
    named = blender or os.environ.get("FACEKEY_BLENDER") or None           # an empty variable names nothing
    if named is None and importlib.util.find_spec("bpy") is not None:
        return [sys.executable, script, "--", *args]
    if named is not None and not (os.path.isfile(named) or shutil.which(named)):
        raise FaceKeyError("blender_missing", "The Blender named by --blender or $FACEKEY_BLENDER is not an "
                           f"executable: {named!r}.",
                           "Fix the path, or unset FACEKEY_BLENDER to use the bpy module / PATH's blender.")
    exe = named or shutil.which("blender")
    if not exe:
        raise FaceKeyError("blender_missing", "No Blender found (bpy module not importable, no blender on PATH).",
                           _HINT_BLENDER)
    return [exe, "-b", "--factory-startup", "--python-exit-code", "1", "--python", script, "--", *args]


def run_blender_script(script: str, args: list[str], *, blender: str | None = None, log_path=None,
                       timeout: float | None = None, check: bool = True,
                       python_paths: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run ``script`` with ``args`` (what follows ``--``) in Blender, headless.

    Uses the ``blender`` binary named by the argument or ``$FACEKEY_BLENDER``;
    else the bpy module of this Python when importable; else ``blender`` on PATH.

    Args:
        script: path of a Python script for Blender.
        args: its arguments (read after ``--``).
        blender: a Blender executable to use instead of the bpy module.
        log_path: file receiving stdout+stderr (default: captured in the result).
        timeout: seconds before the run is killed (``blender_failed``).
        check: raise ``blender_failed`` when the exit code is not 0.
        python_paths: folders added to Blender's Python path (for a system
            Blender without numpy: a folder holding numpy for its Python version).

    Raises:
        FaceKeyError: ``blender_missing``; ``blender_failed`` (with the output tail).
    """
    cmd = _blender_command(script, args, blender)
    env = dict(os.environ)
    if python_paths:
        env["PYTHONPATH"] = os.pathsep.join([*python_paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        if cmd[0] != sys.executable:
            cmd.insert(1, "--python-use-system-env")
    try:
        if log_path:
            os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
            with open(log_path, "a", encoding="utf-8") as log:
                proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env, timeout=timeout)
            with open(log_path, encoding="utf-8", errors="replace") as log:
                tail = log.read()[-3000:]
        else:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
            tail = (proc.stdout or "")[-1500:] + (proc.stderr or "")[-1500:]
    except subprocess.TimeoutExpired as e:
        raise FaceKeyError("blender_failed", f"Blender did not finish within {timeout} s: {' '.join(cmd[:3])} ...",
                           "Try a shorter take, or raise the timeout.") from e
    except OSError as e:
        raise FaceKeyError("blender_missing", f"Could not start Blender ({cmd[0]}): {e}", _HINT_BLENDER) from e
    if check and proc.returncode != 0:
        raise FaceKeyError("blender_failed", f"Blender exited with code {proc.returncode}: {tail.strip()[-2000:]}",
                           f"See the output above{' and ' + str(log_path) if log_path else ''}.")
    return proc


def _addon_digest() -> str:
    h = hashlib.sha256()
    for root in (REPO / "blender_addon", REPO / "backend" / "protocol"):
        for p in sorted(root.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
                h.update(str(p.relative_to(REPO)).encode())
                h.update(p.read_bytes())
    return h.hexdigest()[:16]


def staged_addon() -> Path:
    """The add-on folder staged from this checkout into a cache dir (rebuilt when sources change)."""
    build_script = REPO / "build_addon.py"
    if not build_script.is_file() or not (REPO / "blender_addon").is_dir():
        raise FaceKeyError("blender_failed", f"The FaceKey add-on sources are not next to the backend ({REPO}).",
                           "Run `facekey bake`/`facekey demo` from a FaceKey source checkout.")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "facekey" / f"addon-{_addon_digest()}"
    if (cache / "facekey" / "headless.py").is_file():
        return cache / "facekey"
    spec = importlib.util.spec_from_file_location("facekey_build_addon", build_script)
    build_addon = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_addon)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="stage-", dir=cache.parent))
    build_addon.stage(tmp, with_wheel=False)
    try:
        os.replace(tmp, cache)
    except OSError:  # another process staged the same content first
        shutil.rmtree(tmp)
    return cache / "facekey"


def headless_script() -> str:
    """Path of ``headless.py`` in the staged add-on."""
    return str(staged_addon() / "headless.py")


def run_headless(args: list[str], blender: str | None, log_path=None, timeout=None, python_paths=None, *,
                 script: str | None = None, ok_codes: tuple[int, ...] = (0,)) -> dict:
    """Run a headless script of the staged add-on (default ``headless.py``) with ``args`` plus
    ``--report FILE``; return the JSON report it wrote, or raise its FaceKeyError / ``blender_failed``
    (an exit code outside ``ok_codes``)."""
    with tempfile.TemporaryDirectory(prefix="facekey-run-") as tmp:
        report_path = os.path.join(tmp, "report.json")
        proc = run_blender_script(script or headless_script(), [*args, "--report", report_path], blender=blender,
                                  log_path=log_path, timeout=timeout, check=False, python_paths=python_paths)
        report = None
        if os.path.isfile(report_path):
            with open(report_path, encoding="utf-8") as f:
                report = json.load(f)
    if isinstance(report, dict) and "error" in report:
        raise FaceKeyError.from_dict(report["error"])
    if proc.returncode not in ok_codes or report is None:
        out = ((proc.stdout or "") + (proc.stderr or ""))[-2000:] if not log_path else f"see {log_path}"
        raise FaceKeyError("blender_failed", f"The headless Blender run failed (exit code {proc.returncode}): {out}",
                           "The traceback above (or the log) names the cause; a .blend written by a newer "
                           "Blender does not open in an older one (pick one with --blender or $FACEKEY_BLENDER).")
    return report


def bake_take_file(take_path, blend_in, blend_out, objects: list[str], *, name_map: str = "auto",
                   map_path: str | None = None, start_frame: float = 1, head_target=None,
                   blender: str | None = None, log_path=None, timeout: float | None = None,
                   python_paths: list[str] | None = None, bridge_unsure: bool = False) -> dict:
    """Bake a Take file onto ``objects`` of ``blend_in`` and save ``blend_out`` (``facekey bake``).

    Args:
        take_path: Take ``.npz``.
        blend_in: .blend to open (None: Blender's factory scene).
        blend_out: .blend to write (``blend_in`` itself is never written unless the same path).
        objects: names of mesh objects with shape keys (others are skipped with a reason).
        name_map: "auto" | "arkit" | "livelink" | "custom" (with ``map_path``).
        start_frame: scene frame of the take's timestamp 0.
        head_target: None, an object name, or ``(armature name, bone name)``.
        blender: Blender executable instead of the bpy module.
        bridge_unsure: after the bake, bridge each object's stretches the capture is unsure of into a new
            action (the add-on's ``bake.bridge``; the baked action is kept).

    Returns:
        ``{"objects": {name: {"action", "mapped", "unmapped_units", "unused_keys"[, "bridged"]}},
        "skipped": {name: reason}, "frames": int, "head": action name or None, "output": path}``;
        ``bridged`` (with ``bridge_unsure``) is ``{"action": name or None, "stretches": [[first, last], ...],
        "head": the bridged head-rotation action or None, "head_skipped": why the head target's rotation was
        left as it is or None, "skipped": why nothing was bridged or None}``.
    """
    args = ["bake", "--take", os.fspath(take_path), *_target_args(blend_in, blend_out, objects, name_map, map_path,
                                                                  start_frame, head_target, bridge_unsure)]
    return run_headless(args, blender, log_path, timeout, python_paths)


def _target_args(blend_in, blend_out, objects, name_map, map_path, start_frame, head_target,
                 bridge_unsure) -> list[str]:
    """The headless options ``bake`` and ``batch`` share."""
    args = ["--objects", ",".join(objects), "-o", os.fspath(blend_out), "--name-map", name_map,
            "--start-frame", str(float(start_frame))] + (["--bridge-unsure"] if bridge_unsure else [])
    if blend_in:
        args += ["--open", os.fspath(blend_in)]
    if map_path:
        args += ["--map-path", os.fspath(map_path)]
    if isinstance(head_target, (tuple, list)):
        args += ["--head-object", head_target[0], "--head-bone", head_target[1]]
    elif head_target:
        args += ["--head-object", head_target]
    return args


def bake_take_folder(takes_dir, blend_in, blend_out, objects: list[str], *, name_map: str = "auto",
                     map_path: str | None = None, start_frame: float = 1, head_target=None,
                     blender: str | None = None, log_path=None, timeout: float | None = None,
                     python_paths: list[str] | None = None, bridge_unsure: bool = False) -> dict:
    """Bake every take in ``takes_dir`` (Take .npz, Live Link Face .csv) onto ``objects`` of ``blend_in``,
    one new action per take named after its file, in one Blender run; save ``blend_out`` (``facekey batch``).

    Arguments as :func:`bake_take_file`.  A take that fails does not stop the others.

    Returns:
        ``{"takes": {path: bake report (as bake_take_file's)}, "failed": {path: {code, message, hint}},
        "output": path}``.

    Raises:
        FaceKeyError: no take in the folder, a missing target, or no take baked (nothing is saved).
    """
    args = ["batch", "--takes", os.fspath(takes_dir), *_target_args(blend_in, blend_out, objects, name_map,
                                                                     map_path, start_frame, head_target,
                                                                     bridge_unsure)]
    return run_headless(args, blender, log_path, timeout, python_paths, ok_codes=(0, 3))


def build_head_blend(face_model_npz, take_path, blend_out, preview_png=None, *, blender: str | None = None,
                     log_path=None, timeout: float | None = None, python_paths: list[str] | None = None) -> dict:
    """Write a .blend with head mesh "FaceKeyHead" (52 ARKit keys) animated by the take (``facekey demo``).

    ``face_model_npz`` holds ``vertices`` (N, 3) and ``unit_deltas`` (52, N, 3)
    in metres (head frame), ``triangles`` (F, 3) and ``names`` (52,).  The
    scene gets the take's fps, a frame range covering it, a camera and a light;
    ``preview_png`` (optional) is a Workbench render of the first frame.
    """
    args = ["demo", "--head-npz", os.fspath(face_model_npz), "--take", os.fspath(take_path), "-o", os.fspath(blend_out)]
    if preview_png:
        args += ["--preview", os.fspath(preview_png)]
    return run_headless(args, blender, log_path, timeout, python_paths)


def character_source_args(character, tmp) -> list[str]:
    """The headless arguments that load ``character``: ``["--open", X.blend]``, or ``["--import-glb", X.glb]``
    (imported into an empty scene; a .glb with ``EXT_meshopt_compression``, which Blender cannot import, is
    unpacked into the folder ``tmp`` first).

    Raises:
        FaceKeyError: ``file_missing``; ``bad_argument`` for another kind of file.
    """
    character = os.fspath(character)
    if not os.path.isfile(character):
        raise FaceKeyError("file_missing", f"Character file not found: {character}", "Check the character path.")
    if character.lower().endswith(".blend"):
        return ["--open", character]
    if character.lower().endswith(".glb"):
        from .retarget.gltf_meshopt import needs_meshopt_unpack, unpack_meshopt_glb
        if needs_meshopt_unpack(character):
            character = unpack_meshopt_glb(character, os.path.join(os.fspath(tmp), "character_unpacked.glb"))
        return ["--import-glb", character]
    raise FaceKeyError("bad_argument", f"Character file {character} is neither .blend nor .glb.",
                       "Pass a .blend, or a .glb (imported into an empty scene).")


def render_take_rows(take_path, character, object_name: str, out_dir, *, every: int = 1, size: int = 480,
                     name_map: str = "auto", map_path=None, turn: bool = False, blender: str | None = None,
                     log_path=None, timeout: float | None = None, python_paths: list[str] | None = None) -> dict:
    """Bake a Take onto ``object_name`` of ``character`` (a .blend, or a .glb imported into an empty scene;
    nothing saved) and render every ``every``-th take
    row from the front (a 50 mm camera on -Y framing the part of the mesh its shape keys move, as it is
    seen; Workbench, ``size`` x ``size`` pixels) to ``out_dir/row_<row>.png``: footage of a known performance on
    a character; the keys matched by ``name_map`` (with ``map_path``, the JSON file of a custom map) as a
    bake matches them.  With ``turn`` the rows show the head turned by the take's head rotation (the camera
    orbits the face; the scene's objects are not moved).

    Returns:
        ``{"object", "action", "head": the camera orbit's action or None, "units": [ARKit names the object
        has a key for], "rows": [take row, ...], "files": [png path, ...], "fps": take fps}``.
    """
    args = ["render", "--take", os.fspath(take_path), "--objects", object_name, "--out-dir", os.fspath(out_dir),
            "--every", str(int(every)), "--size", str(int(size)), "--name-map", name_map]
    if map_path:
        args += ["--map-path", os.fspath(map_path)]
    if turn:
        args.append("--turn")
    with tempfile.TemporaryDirectory(prefix="facekey-render-") as tmp:
        return run_headless(args + character_source_args(character, tmp), blender, log_path, timeout, python_paths)
