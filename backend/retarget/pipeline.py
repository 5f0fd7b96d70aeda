"""``facekey bake --mode solve``: measure the character in Blender, solve in the backend, bake in Blender.

Three steps, each in a fresh headless Blender (bpy module or binary) or in
this process: (1) the add-on's ``retarget/headless.py measure`` writes the
object's ``CharacterKeys``; (2) :func:`retarget_take` solves the character's
key values (``KeyTake``); (3) ``bake-keys`` writes them as a new Action into
a copy of the character.  A .glb character that needs
``EXT_meshopt_compression`` is unpacked first (Blender cannot import it).
:func:`solve_bake_folder` does the same for a folder of takes: one
measurement, one solve per take, one bake run for all of them.
"""
from __future__ import annotations

import os
import tempfile

from ..blender_runner import character_source_args, run_headless, staged_addon
from ..protocol.errors import FaceKeyError
from ..protocol.keytake import CharacterKeys, read_character_keys, write_key_take
from ..protocol.take import read_take
from ..protocol.takefolder import read_any_take, take_files
from .character_solve import SolveSettings, build_rig, retarget_take

__all__ = ["run_retarget_step", "measure_character", "solve_bake", "solve_bake_folder"]


def run_retarget_step(args: list[str], *, blender: str | None = None, timeout: float | None = None,
                      python_paths: list[str] | None = None) -> dict:
    """Run ``retarget/headless.py`` of the staged add-on with ``args``; return its report.

    Raises:
        FaceKeyError: the step's own error, or ``blender_failed``.
    """
    return run_headless(args, blender, timeout=timeout, python_paths=python_paths,
                        script=str(staged_addon() / "retarget" / "headless.py"))


def _measure(character, object_name: str, tmp: str, run: dict):
    """Measure ``object_name`` of ``character`` in Blender: (source arguments for the later steps, CharacterKeys).
    ``run``: blender / timeout / python_paths of :func:`run_retarget_step`."""
    src = character_source_args(character, tmp)
    char_path = os.path.join(tmp, "character.npz")
    run_retarget_step(["measure", *src, "--object", object_name, "-o", char_path], **run)
    return src, read_character_keys(char_path)


def measure_character(character, object_name: str, *, blender: str | None = None, timeout: float | None = None,
                      python_paths: list[str] | None = None) -> CharacterKeys:
    """What each shape key of ``object_name`` in ``character`` (.blend or .glb) does, measured in Blender
    (the character solve's first step); raise FaceKeyError as :func:`solve_bake` does."""
    with tempfile.TemporaryDirectory(prefix="facekey-measure-") as tmp:
        return _measure(character, object_name, tmp, dict(blender=blender, timeout=timeout,
                                                          python_paths=python_paths))[1]


def _bake_keys(src: list[str], object_name: str, key_takes: list[str], blend_out, start_frame: float, run: dict,
               bridge_unsure: bool) -> dict:
    """One Blender run baking each KeyTake of ``key_takes`` into its own new action (its unsure stretches
    bridged into another with ``bridge_unsure``); the step's report."""
    args = ["bake-keys", *src, "--object", object_name, "-o", os.fspath(blend_out), "--start-frame", str(float(start_frame))]
    args += ["--bridge-unsure"] if bridge_unsure else []
    for path in key_takes:
        args += ["--key-take", path]
    return run_retarget_step(args, **run)


def solve_bake(take_path, character, blend_out, object_name: str, *, settings: SolveSettings | None = None,
               start_frame: float = 1.0, key_take_out=None, blender: str | None = None,
               timeout: float | None = None, python_paths: list[str] | None = None,
               bridge_unsure: bool = False) -> dict:
    """Retarget the Take at ``take_path`` onto ``object_name``'s own keys in ``character``; save ``blend_out``.

    Args:
        take_path: Take ``.npz``.
        character: ``.blend`` or ``.glb`` holding the object.
        blend_out: .blend to write (the character file is never written).
        object_name: mesh object whose shape keys are solved for.
        settings: key filter and solve weights.
        key_take_out: where to keep the solved KeyTake (default: next to ``blend_out``).
        bridge_unsure: bridge the stretches the capture is unsure of into a new action (the add-on's
            ``bake.bridge``; the solved action is kept).

    Returns:
        ``{"output", "action", "key_take", "frames", "solve": retarget report, "bridged"}``; ``bridged`` is
        ``{"action", "stretches": [[first, last], ...], "head", "head_skipped", "skipped"}``
        (``bake.bridge.bridge_if_unsure``), or None when not asked.
    """
    from ..facemodel import load_face_model

    take = read_take(take_path)
    run = dict(blender=blender, timeout=timeout, python_paths=python_paths)
    with tempfile.TemporaryDirectory(prefix="facekey-solve-") as tmp:
        src, ck = _measure(character, object_name, tmp, run)
        kt, report = retarget_take(take, ck, load_face_model(), settings)
        kt.header["source_take"] = take.header.get("source") or os.fspath(take_path)
        kt.header["take_file"] = os.path.abspath(take_path)     # where the bake finds the take's confidence
        kt_path = os.fspath(key_take_out or os.path.splitext(os.fspath(blend_out))[0] + "_keys.npz")
        write_key_take(kt_path, kt)
        baked = _bake_keys(src, object_name, [kt_path], blend_out, start_frame, run, bridge_unsure)
    one = baked["baked"][0]
    return {"output": baked["output"], "action": one["action"], "key_take": os.path.abspath(kt_path),
            "frames": one["frames"], "solve": report, "bridged": one.get("bridged")}


def solve_bake_folder(takes_dir, character, blend_out, object_name: str, *, settings: SolveSettings | None = None,
                      start_frame: float = 1.0, key_dir=None, blender: str | None = None,
                      timeout: float | None = None, python_paths: list[str] | None = None,
                      bridge_unsure: bool = False) -> dict:
    """:func:`solve_bake` for every take in ``takes_dir`` (Take .npz, Live Link Face .csv): the character
    is measured once, each take solved, and all are baked in one Blender run, each into a new action
    named after its file (``FK_<stem>``).  A take that cannot be read or solved is listed, the others go on.

    Args:
        key_dir: folder for the solved KeyTakes (``<stem>_keys.npz``; default ``<blend_out stem>_keys``).
        Others as :func:`solve_bake`.

    Returns:
        ``{"output", "takes": {path: {"action", "frames", "key_take", "solve": report, "bridged"}},
        "failed": {path: {code, message, hint}}}``.

    Raises:
        FaceKeyError: no take in the folder, the character or object is unusable, or no take could be
        solved (the first take's error; nothing is written).
    """
    from ..facemodel import load_face_model

    paths = take_files(takes_dir)
    key_dir = os.fspath(key_dir or os.path.splitext(os.fspath(blend_out))[0] + "_keys")
    solved, failed = {}, {}
    run = dict(blender=blender, timeout=timeout, python_paths=python_paths)
    with tempfile.TemporaryDirectory(prefix="facekey-solve-") as tmp:
        src, ck = _measure(character, object_name, tmp, run)
        model = load_face_model()
        rig = build_rig(ck, model, settings)    # a character the solve cannot use stops the batch here
        for path in paths:
            try:
                kt, report = retarget_take(read_any_take(path), ck, model, settings, rig)
            except FaceKeyError as e:
                failed[path] = e.to_dict()
                continue
            kt.header["source_take"] = kt.header["take_file"] = path
            stem = os.path.splitext(os.path.basename(path))[0]
            solved[path] = (write_key_take(os.path.join(key_dir, f"{stem}_keys.npz"), kt), report)
        if not solved:
            first = failed[paths[0]]
            raise FaceKeyError(first["code"], f"No take in {takes_dir} could be solved; "
                               f"{os.path.basename(paths[0])}: {first['message']}", first["hint"])
        baked = _bake_keys(src, object_name, [kt_path for kt_path, _ in solved.values()], blend_out, start_frame,
                           run, bridge_unsure)
    takes = {path: {"action": b["action"], "frames": b["frames"], "key_take": b["key_take"], "solve": report,
                    "bridged": b.get("bridged")}
             for (path, (_, report)), b in zip(solved.items(), baked["baked"])}
    return {"output": baked["output"], "takes": takes, "failed": failed}
