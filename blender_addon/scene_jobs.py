"""Jobs built from the panel and the scene: what Capture, Generate, Solve, Mesh-level retarget, Apply
and Preview do, as :mod:`.jobs` objects (not started) the operators run modally and headless runs
run blocking; plus the Live Link CSV import/export the panel offers.

Every builder checks what can fail before the backend starts (targets, footage, backend Python)
and raises a FaceKeyError with a hint; nothing in the scene changes before a job's result arrives.
"""
from __future__ import annotations

import os

import bpy

from .backend_setup import default_log_path, user_data_dir
from .bake.apply import bake_take, capture_counts, scene_fps
from .jobs import BackendJob, CaptureJob, JobSequence, LocalJob
from .protocol.clipfolder import clip_files
from .protocol.errors import FaceKeyError
from .protocol.filenames import file_stem
from .protocol.labels import MIRRORED
from .state import STATE

__all__ = ["make_capture_job", "make_generate_job", "make_solve_job", "make_mesh_retarget_job", "make_apply_job",
           "make_preview_job", "merge_target_reports", "import_csv", "export_csv", "takes_dir", "backend_python_of"]


def takes_dir() -> str:
    """Where takes are written: ``<blend dir>/facekey_takes`` for saved files, else the user data folder."""
    if bpy.data.filepath:
        path = os.path.join(os.path.dirname(bpy.path.abspath(bpy.data.filepath)), "facekey_takes")
    else:
        path = os.path.join(user_data_dir(), "takes")
    os.makedirs(path, exist_ok=True)
    return path


def _unique_take_path(source: str, ext: str = ".npz") -> str:
    stem = file_stem(os.path.splitext(os.path.basename(source.rstrip("/\\")))[0])
    base = os.path.join(takes_dir(), stem)
    path, n = base + ext, 1
    while os.path.exists(path):
        path, n = f"{base}_{n:03d}{ext}", n + 1
    return path


def _head_args(settings):
    if settings.head_mode == "NONE":
        return None, None
    if settings.head_object is None:
        raise FaceKeyError("bad_argument", "Head rotation is on but no head target object is set.",
                           "Pick the head target in the FaceKey panel, or set Head rotation to None.")
    return settings.head_object, (settings.head_bone if settings.head_mode == "BONE" else None)


def _capture_settings(settings) -> dict:
    """The panel's capture settings for the backend; the rest frame goes from a scene frame to a time in
    the footage (its first frame lands on Start frame; the bake places the take's times at the scene's
    rate, so the footage's own rate does not matter), the actor take to an absolute path, and a folder
    of images (an image sequence) is taken at the scene's frame rate, one image per scene frame."""
    out = {"smoothing": float(settings.smoothing), "hands": bool(settings.hands)}
    fps = scene_fps(settings.id_data)
    footage = bpy.path.abspath(settings.footage) if settings.footage else ""
    if os.path.isdir(footage) and clip_files(footage) is None:
        out["fps"] = fps
    if settings.use_rest_frame:
        frame = settings.rest_frame - settings.start_frame
        if frame < 0:
            raise FaceKeyError("bad_argument", f"Rest frame {settings.rest_frame} is before the footage, which starts "
                               f"at scene frame {settings.start_frame}.",
                               "Set Rest frame to a scene frame of the footage where the face is at rest, or turn it off.")
        out["rest_time"] = frame / fps
    if settings.actor_take:
        out["actor_take"] = bpy.path.abspath(settings.actor_take)
    return out


def _name_map(settings):
    from .protocol.namemap import load_name_map
    return load_name_map(settings.name_map, bpy.path.abspath(settings.map_path) if settings.name_map == "custom" else None)


def _bake_selected(context, take, source: str, take_path: str) -> dict:
    s = context.scene.facekey
    head, bone = _head_args(s)
    return bake_take(take, list(context.selected_objects), _name_map(s), scene=context.scene, source=source,
                     start_frame=s.start_frame, take_path=take_path, head_target=head, head_bone=bone)


def backend_python_of(context) -> str:
    """The backend environment's Python from the add-on preferences (``backend_missing`` if none)."""
    from .preferences import configured_backend_python, get_prefs
    return configured_backend_python(get_prefs(context))


def _take_path(context) -> str:
    """The take to apply / retarget / preview: the panel's Take field, else the last captured or imported take."""
    s = context.scene.facekey
    take_path = bpy.path.abspath(s.solve_take) if s.solve_take else STATE.last_take
    if not take_path or not os.path.isfile(take_path):
        raise FaceKeyError("file_missing", f"Take not found: {take_path or '(none yet)'}",
                           "Capture or import a take first, or pick a take file in the Take field.")
    return take_path


def _retarget_inputs(context, what: str, obj=None, take_path: str | None = None):
    """(mesh object, take path) for the retarget operators: ``obj`` or the active object, ``take_path`` or
    :func:`_take_path`; coded errors when either is missing."""
    obj = obj if obj is not None else context.active_object
    if obj is None or obj.type != "MESH":
        raise FaceKeyError("no_targets", f"{what} needs an active mesh object.",
                           "Click the character's face mesh so it is the active object.")
    return obj, take_path or _take_path(context)


def _globs(text: str) -> list[str]:
    return [g.strip() for g in text.split(",") if g.strip()]


def _preview_file(stem: str, ext: str = ".npz") -> str:
    """A scratch file for one-frame previews (overwritten by the next preview); ``stem`` (from an object
    name, which may hold '/' or be long) goes through ``protocol.filenames.file_stem``."""
    folder = os.path.join(user_data_dir(), "preview")
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, file_stem(stem) + ext)


def _with_frames(args: dict, frames: list[int] | None) -> dict:
    """``args`` plus the worker's ``frames`` restriction when ``frames`` is given."""
    if frames is not None:
        args["frames"] = list(frames)
    return args


def _solve_job(context, obj, take_path: str, on_key_take, *, frames: list[int] | None = None,
               file_path=None, state=STATE, client_kwargs: dict | None = None) -> BackendJob:
    """The worker op ``retarget_solve`` for ``obj``'s own keys (measured here, values restored), not started.

    ``on_key_take(key_take, payload) -> (message, report)`` runs on the main thread with the solved
    ``KeyTake`` (only ``frames`` when given); ``file_path(stem, ext)`` names the hand-off files
    (default: new files in the takes folder).  Checks the object (``no_shape_keys``) and the backend first.
    """
    from .protocol.keytake import read_key_take, write_character_keys
    from .retarget.measure import character_keys_from_object
    file_path = file_path or _unique_take_path
    key = obj.data.shape_keys
    if key is None or len(key.key_blocks) < 2:
        raise FaceKeyError("no_shape_keys", f"'{obj.name}' has no shape keys to solve for.",
                           "Pick a mesh with shape keys, or use mesh-level retarget for meshes without them.")
    s = context.scene.facekey
    python = backend_python_of(context)
    character = write_character_keys(file_path(f"{obj.name}_character", ".npz"),
                                     character_keys_from_object(obj, source=bpy.data.filepath))
    args = _with_frames({"take": take_path, "character": character, "output": file_path(f"{obj.name}_keys", ".npz"),
                         "keys": _globs(s.solve_keys), "exclude": _globs(s.solve_exclude)}, frames)
    return BackendJob(python, default_log_path(), "retarget_solve", args,
                      lambda payload: on_key_take(read_key_take(payload["key_take"]), payload), label="solve",
                      state=state, client_kwargs=client_kwargs)


def make_solve_job(context, client_kwargs: dict | None = None, *, obj=None, take_path: str | None = None,
                   state=STATE) -> BackendJob:
    """Character solve onto a mesh's own shape keys (any names), not started.

    ``obj`` (default: the active object) is measured here (each key alone,
    values restored), the backend solves a Take for its keys (``retarget_solve``),
    and the result is baked as a new action on the main thread.  Checks the
    object (``no_targets`` / ``no_shape_keys``), the take (``file_missing``) and
    the backend first.
    """
    from .bake.apply import action_name_for
    from .bake.shape_keys import bake_key_take, bake_source_confidence
    obj, take_path = _retarget_inputs(context, "Character solve", obj, take_path)
    name, scene_name, start = obj.name, context.scene.name, context.scene.facekey.start_frame

    def finish(kt, payload: dict) -> tuple[str, dict]:
        scene = bpy.data.scenes[scene_name]
        action = bake_key_take(bpy.data.objects[name], kt, action_name_for(take_path), start, scene_fps(scene),
                               payload["key_take"])
        bake_source_confidence(bpy.data.objects[name], action, take_path, start, scene_fps(scene))
        solve = payload["report"]
        report = {"objects": {name: {"action": action.name, "mapped": {k: k for k in kt.key_names},
                                     "unmapped_units": list(solve["unmapped_units"]),
                                     "unused_keys": sorted(solve["skipped_keys"])}},
                  "skipped": {}, "frames": int(kt.valid.sum()), "solve": solve}
        return f"solved {len(kt.key_names)} keys of {name} over {report['frames']} frames", report

    return _solve_job(context, obj, take_path, finish, state=state, client_kwargs=client_kwargs)


def _serep_path(settings) -> str | None:
    """The panel's SEREP weights (file or folder), absolute; None when empty (blendshape transfer)."""
    return bpy.path.abspath(settings.serep_weights) if settings.serep_weights.strip() else None


def _mesh_job(context, obj, take_path: str, on_frames, *, frames: list[int] | None = None, at_rate: bool = False,
              file_path=None, state=STATE, client_kwargs: dict | None = None) -> BackendJob:
    """The worker op ``mesh_retarget`` for ``obj``'s own vertices, not started.

    Sends the mesh's LOCAL vertices (assumed metres, Z up, face toward -Y; ``axes="blender"``)
    and the panel's SEREP weights when set.  ``on_frames(payload, rest) -> (message, report)`` runs on
    the main thread (``payload["pc2"]``: the cache, object-local, one sample per take frame, per
    ``frames``, or with ``at_rate`` one per 1 / fps of the take's clock; ``rest``: (N, 3) float64 the
    vertices sent).  The mesh data is never changed.
    """
    import numpy as np
    file_path = file_path or _unique_take_path
    s = context.scene.facekey
    python = backend_python_of(context)
    rest = np.empty(len(obj.data.vertices) * 3, np.float64)
    obj.data.vertices.foreach_get("co", rest)
    rest = rest.reshape(-1, 3)
    vertices = file_path(f"{obj.name}_rest", ".npz")
    np.savez(vertices, vertices=rest)
    args = _with_frames({"take": take_path, "vertices": vertices, "serep": _serep_path(s),
                         "output": file_path(f"{obj.name}_{os.path.basename(take_path)}", ".pc2"),
                         "start_frame": float(s.start_frame), "axes": "blender", "at_rate": at_rate}, frames)
    return BackendJob(python, default_log_path(), "mesh_retarget", args, lambda payload: on_frames(payload, rest),
                      label="mesh retarget", state=state, client_kwargs=client_kwargs)


def make_mesh_retarget_job(context, client_kwargs: dict | None = None, *, obj=None, take_path: str | None = None,
                           state=STATE) -> BackendJob:
    """Mesh-level retarget onto a mesh (any topology, no shape keys needed), not started.

    ``obj`` (default: the active object): its LOCAL coordinates are assumed
    metres with Z up and the face toward -Y (Blender's front view); the backend
    converts them to its head frame and writes the cache back in them
    (``axes="blender"``).  The rest shape sent is the mesh's own vertices (not
    the evaluated mesh).  Output per ``mesh_output``: MESH_CACHE adds a Mesh
    Cache modifier at the scene setting's start frame; SHAPE_KEYS adds
    corrective keys ``FK_<take>_cNN`` and bakes their coefficients as a new
    action.  The mesh data's vertices are never changed.  The panel's SEREP
    weights are used when set.
    """
    from .bake.apply import action_name_for
    from .bake.shape_keys import bake_corrective_keys
    from .protocol.take import read_take
    from .protocol.pc2 import read_pc2
    from .retarget.corrective import add_corrective_keys, compress_displacements
    from .retarget.mesh_cache import add_mesh_cache
    obj, take_path = _retarget_inputs(context, "Mesh-level retarget", obj, take_path)
    s = context.scene.facekey
    name, scene_name, start, output = obj.name, context.scene.name, s.start_frame, s.mesh_output

    def finish(payload: dict, rest) -> tuple[str, dict]:
        target = bpy.data.objects[name]
        mesh = {"pc2": payload["pc2"], "output": output, "max_displacement_mm": payload["max_displacement_mm"]}
        if output == "MESH_CACHE":       # sampled on the take's clock at its rate, played at that rate
            scale = read_take(take_path).fps / scene_fps(bpy.data.scenes[scene_name])
            mod = add_mesh_cache(target, payload["pc2"], start, payload["points"], frame_scale=scale)
            mesh["modifier"] = mod.name
            return f"mesh cache on {name}: {payload['samples']} frames", {"mesh": mesh, "skipped": {}}
        take = read_take(take_path)
        comp = compress_displacements(read_pc2(payload["pc2"])[0] - rest[None], take.valid)
        action_name = action_name_for(take_path)
        keys = add_corrective_keys(target, action_name, comp.keys)
        action = bake_corrective_keys(target, keys, comp.coefficients, take, action_name, start,
                                      scene_fps(bpy.data.scenes[scene_name]), payload["pc2"], take_path)
        mesh.update(comp.report(), action=action.name, key_names=keys)
        return (f"{len(keys)} corrective keys on {name} ({comp.max_error_mm:.2f} mm max error)",
                {"mesh": mesh, "skipped": {}, "frames": int(take.valid.sum())})

    return _mesh_job(context, obj, take_path, finish, at_rate=output == "MESH_CACHE", state=state,
                     client_kwargs=client_kwargs)


# ----------------------------------------------------------------------------- one take, every target by its mode
def _target_object(name: str):
    obj = bpy.data.objects.get(name)
    if obj is None:
        raise FaceKeyError("object_missing", f"Object '{name}' no longer exists.",
                           "Select the targets and apply the take again.")
    return obj


def _namemap_part(name: str, scene_name: str, take_path: str, source: str, state) -> LocalJob:
    """Name-map bake of one object (``bake_take``, without head rotation) as a job part."""
    from .protocol.take import read_take

    def run() -> tuple[str, dict]:
        scene = bpy.data.scenes[scene_name]
        report = bake_take(read_take(take_path), [_target_object(name)], _name_map(scene.facekey), scene=scene,
                           source=source, start_frame=scene.facekey.start_frame, take_path=take_path)
        return f"baked {report['frames']} frames onto {name}", report

    return LocalJob(run, label="name map", state=state)


def _head_part(scene_name: str, take_path: str, source: str, state) -> LocalJob:
    """The take's head rotation onto the panel's head target (object or bone) as a job part."""
    from .bake.apply import action_name_for
    from .bake.head import bake_head_rotation
    from .protocol.take import read_take

    def run() -> tuple[str, dict]:
        scene = bpy.data.scenes[scene_name]
        head, bone = _head_args(scene.facekey)
        action = bake_head_rotation(head, read_take(take_path), action_name_for(source) + "_head",
                                    scene.facekey.start_frame, scene_fps(scene), bone, take_path)
        return f"head rotation on {head.name}", {"head": action.name}

    return LocalJob(run, label="head rotation", state=state)


def _add_target_parts(seq: JobSequence, plan: list[tuple[str, str]], scene_name: str, take_path: str, source: str,
                      client_kwargs: dict | None, *, head: bool = True, prefix: str = "") -> None:
    """Queue one part per planned ``(object name, mode)``: name-map bakes first, then the head rotation
    (when ``head`` and the panel sets a head target), then the character solves and mesh-level retargets.
    Part names are the object names (and ``head rotation``) after ``prefix`` (a clip's, in a folder capture)."""
    def backend_part(name: str, make):
        def part(state):
            # built when its turn comes, under the job timer, whose context is the first window's: the
            # part reads (and measures in) the job's own scene, in a view layer holding the object
            scene, obj = bpy.data.scenes[scene_name], _target_object(name)
            layer = next((v for v in scene.view_layers if v.objects.get(obj.name) is not None), scene.view_layers[0])
            with bpy.context.temp_override(scene=scene, view_layer=layer):
                return make(bpy.context, client_kwargs, obj=obj, take_path=take_path, state=state)
        return part

    for name, mode in plan:
        if mode == "NAMEMAP":
            seq.add(prefix + name, lambda state, n=name: _namemap_part(n, scene_name, take_path, source, state))
    if head and bpy.data.scenes[scene_name].facekey.head_mode != "NONE":
        seq.add(prefix + "head rotation", lambda state: _head_part(scene_name, take_path, source, state))
    for name, mode in plan:
        if mode != "NAMEMAP":
            seq.add(prefix + name, backend_part(name, make_solve_job if mode == "SOLVE" else make_mesh_retarget_job))


def merge_target_reports(results: dict, errors: dict, modes: dict[str, str], skipped: dict[str, str]) -> dict:
    """One report for a take applied to several targets (what the panel and tests read).

    ``{"modes": {name: mode}, "objects": {name: shape-key bake info}, "meshes": {name: mesh-level info},
    "solves": {name: solve report}, "skipped": {name: reason}, "errors": {name: {code, message, hint}},
    "frames": valid frame count, "head": action name or None}``, plus ``"generated"`` (the worker's
    ``generate`` result) for a generated take; a failed target is listed in
    ``errors`` and, with its message, in ``skipped``; ``"face_covered_frames"`` when the capture
    looked for hands over the face; ``"low_confidence_frames"`` for a capture (frames the backend
    is unsure of, see ``bake.shape_keys.bake_confidence``).
    """
    out = {"modes": dict(modes), "objects": {}, "meshes": {}, "solves": {}, "skipped": dict(skipped), "errors": {},
           "frames": 0, "head": None}
    for name, rep in results.items():
        out["objects"].update(rep.get("objects", {}))
        out["skipped"].update(rep.get("skipped", {}))
        if "mesh" in rep:
            out["meshes"][name] = rep["mesh"]
        if "solve" in rep:
            out["solves"][name] = rep["solve"]
        out["head"] = rep.get("head") or out["head"]
        out["frames"] = max(out["frames"], int(rep.get("frames", 0)))
        for key in ("unmapped_from_backend", "generated", "face_covered_frames", "low_confidence_frames"):
            if key in rep:
                out[key] = rep[key]
    for name, err in errors.items():
        out["errors"][name] = err.to_dict()
        out["skipped"][name] = f"failed [{err.code}]: {err.message}"
    return out


def _apply_summary(plan: list[tuple[str, str]], skipped: dict[str, str]):
    """``summarize`` for a :class:`JobSequence` over ``plan``: a merged report, or the first target's
    error when no target received the take."""
    names = [n for n, _ in plan]

    def summarize(results: dict, errors: dict) -> tuple[str, dict]:
        report = merge_target_reports(results, errors, dict(plan), skipped)
        done = [n for n in names if n in results]
        if not done:
            name = next(n for n in names if n in errors)
            err, more = errors[name], len(names) - 1
            raise FaceKeyError(err.code, f"No target received the take. {name}: {err.message}"
                               + (f" (and {more} more failed)" if more else ""), err.hint)
        failed = len(names) - len(done)
        return (f"applied the take to {len(done)} of {len(names)} target(s)"
                + (f"; {failed} failed (see below)" if failed else ""), report)

    return summarize


def _plan(context) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(``[(name, mode)]`` of the selected objects, ``{name: reason}`` skipped); see ``targets.plan_targets``."""
    from .targets import plan_targets
    plan, skipped = plan_targets(context.selected_objects, _name_map(context.scene.facekey))
    return [(o.name, mode) for o, mode in plan], skipped


def make_capture_job(context, client_kwargs: dict | None = None) -> JobSequence:
    """A capture of the footage, then the take applied to every selected object by its retarget mode
    (see :func:`make_apply_job`), as one job (not started).

    Footage that is a folder of clips (``protocol.clipfolder``: videos, no images) captures every
    clip into its own take, each applied to the targets before the next clip is captured, so every
    object gets one new action per clip (see :func:`_takes_summary`); a clip that fails is listed
    and the others go on.  Checks everything that can fail before the backend starts: targets
    (``no_targets``/``no_shape_keys``), name map, head target, backend Python
    (``backend_missing``), footage (``file_missing``; a rest frame with a folder of clips is
    ``bad_argument``).  A failed capture of single footage ends the job; a failed target is
    reported under its name.
    """

    s = context.scene.facekey
    footage = bpy.path.abspath(s.footage)
    if not s.footage or not os.path.exists(footage):
        raise FaceKeyError("file_missing", f"Footage not found: {footage or '(none)'}",
                           "Pick a video file, an image folder or a photo in the FaceKey panel.")
    clips = clip_files(footage)
    if clips and s.use_rest_frame:
        raise FaceKeyError("bad_argument", f"Rest frame names a frame of one clip, and {footage} is a folder of "
                           f"{len(clips)} clips.",
                           "Capture the actor's calibration clip alone with Rest frame on, then set Actor to its "
                           "take and capture the folder with Rest frame off.")
    plan, skipped = _plan(context)
    _head_args(s)
    python = backend_python_of(context)
    scene_name = context.scene.name
    settings = _capture_settings(s)
    face_index = None if s.face_index < 0 else int(s.face_index)
    sources = clips or [footage]
    prefixes = [f"{_clip_name(c)}: " if clips else "" for c in sources]
    seq = JobSequence("capture", _takes_summary(prefixes, plan, skipped) if clips else _apply_summary(plan, skipped))
    for k, (source, prefix) in enumerate(zip(sources, prefixes)):
        def queue_targets(take, take_path, source=source, prefix=prefix) -> dict:
            _add_target_parts(seq, plan, scene_name, take_path, source, client_kwargs, prefix=prefix)
            return {"objects": {}, "skipped": {}, "frames": int(take.valid.sum()), **capture_counts(take)}

        args = (python, default_log_path(), source, _unique_take_path(source), settings, face_index, queue_targets)
        name = f"{prefix}{_CAPTURE_PART} {k + 1} of {len(sources)}" if clips else _CAPTURE_PART
        seq.add(name, lambda state, args=args: CaptureJob(*args, state=state, client_kwargs=client_kwargs),
                required=not clips)
    return seq


#: Name of a capture's part in its JobSequence (a folder capture's: "<clip>: capture <k> of <n>").
_CAPTURE_PART = "capture"


def _clip_name(path: str) -> str:
    """A clip's file name, the name its parts and report entries go under in a folder capture."""
    return os.path.basename(path)


def _takes_summary(prefixes: list[str], plan: list[tuple[str, str]], skipped: dict[str, str]):
    """``summarize`` for a folder of clips: ``{"takes": {clip: report}, "frames": valid frames of all
    takes}``, each clip's report that of :func:`_apply_summary` (plus ``"message"``) or, for a clip
    that failed, ``{"error": {code, message, hint}}``; the job's error when no clip reached a target."""
    single = _apply_summary(plan, skipped)

    def owner(name: str) -> str:
        # the longest matching prefix, so a clip named "a.mp4: b.mp4" does not pass for "a.mp4"
        return max((p for p in prefixes if name.startswith(p)), key=len, default="")

    def summarize(results: dict, errors: dict) -> tuple[str, dict]:
        takes, applied = {}, 0
        last_error = None
        for prefix in prefixes:
            def mine(d):
                return {k[len(prefix):]: v for k, v in d.items() if owner(k) == prefix}
            clip_errors = mine(errors)
            capture_error = next((e for name, e in clip_errors.items() if name.startswith(_CAPTURE_PART)), None)
            if capture_error is not None:
                takes[prefix[:-2]], last_error = {"error": capture_error.to_dict()}, capture_error
                continue
            try:
                message, report = single(mine(results), clip_errors)
            except FaceKeyError as e:
                takes[prefix[:-2]], last_error = {"error": e.to_dict()}, e
                continue
            takes[prefix[:-2]] = dict(report, message=message)
            applied += 1
        if not applied:
            raise FaceKeyError(last_error.code, f"No clip of the folder reached a target. Last: {last_error.message}",
                               last_error.hint)
        failed = len(prefixes) - applied
        return (f"captured and applied {applied} of {len(prefixes)} clips" + (f"; {failed} failed (see below)"
                                                                               if failed else ""),
                {"takes": takes, "frames": sum(t.get("frames", 0) for t in takes.values())})

    return summarize


def _generator_weights(path: str) -> str | None:
    """A Generate weights field, absolute; None when empty (the backend's bundled generators)."""
    return bpy.path.abspath(path) if path.strip() else None


def make_generate_job(context, client_kwargs: dict | None = None) -> JobSequence:
    """A labelled expression clip from the generators (worker op ``generate``), then the take applied to
    every selected object by its retarget mode (see :func:`make_apply_job`), as one job (not started).

    The clip is written to the takes folder as ``<label>_<seed>[_mirrored].npz`` at the scene's frame
    rate, so it bakes as action ``FK_<label>_<seed>...`` from Start frame; its head is still, so no head
    rotation is keyed.  Empty weights fields use the backend's bundled generators.  Checks the targets
    and the backend first; a weights path that does not exist is the backend's ``weights_missing``.
    """
    s = context.scene.facekey
    gan, s2d = _generator_weights(s.gan_weights), _generator_weights(s.s2d_weights)
    plan, skipped = _plan(context)
    python = backend_python_of(context)
    scene_name = context.scene.name
    stem = f"{s.gen_label}_{s.gen_seed}" + (MIRRORED if s.gen_mirror else "")
    args = {"label": s.gen_label, "gan": gan, "s2d": s2d, "seed": int(s.gen_seed), "mirror": bool(s.gen_mirror),
            "fps": float(scene_fps(context.scene)), "output": _unique_take_path(stem)}
    seq = JobSequence("generate", _apply_summary(plan, skipped))

    def make(state) -> BackendJob:
        def queue_targets(payload: dict) -> tuple[str, dict]:
            state.last_take = payload["take"]
            _add_target_parts(seq, plan, scene_name, payload["take"], payload["take"], client_kwargs, head=False)
            apex = ", ".join(f"{k} {v:.2f}" for k, v in sorted(payload["apex"].items(), key=lambda kv: -kv[1])[:4])
            return (f"generated {payload['label']} (seed {payload['seed']}): {apex or 'no unit above 0.05'}",
                    {"objects": {}, "skipped": {}, "frames": int(payload["frames"]), "generated": payload})

        return BackendJob(python, default_log_path(), "generate", args, queue_targets, label="generate", state=state,
                          client_kwargs=client_kwargs)

    seq.add("generate", make, required=True)
    return seq


def make_apply_job(context, client_kwargs: dict | None = None) -> JobSequence:
    """Apply the take (Take field or last take) to every selected object by its retarget mode, not started.

    NAMEMAP objects get a name-map bake, SOLVE a character solve, MESH a
    mesh-level retarget (``mesh_output``), one after another; one object's
    error is reported under its name and the others still run.  Checks the
    take, the targets (``no_targets`` / ``no_shape_keys``) and the head target first.
    """
    from .protocol.take import read_take
    take_path = _take_path(context)
    read_take(take_path)
    plan, skipped = _plan(context)
    _head_args(context.scene.facekey)
    seq = JobSequence("apply take", _apply_summary(plan, skipped))
    _add_target_parts(seq, plan, context.scene.name, take_path, take_path, client_kwargs)
    return seq


# ----------------------------------------------------------------------------- one-frame preview
def make_preview_job(context, client_kwargs: dict | None = None):
    """Preview ONE take frame on a copy of the active object, by its retarget mode, not started.

    The scene's current frame is mapped to the nearest valid take frame (via the
    start frame; clamped into the take).  NAMEMAP reads that frame's weights
    here; SOLVE and MESH ask the backend for that frame only (``frames=[k]``).
    The result is shown on ``<name>.FaceKeyPreview`` (see :mod:`preview`), made
    when the result arrives; the object itself is never changed.
    """
    from .preview import check_not_preview, show_key_values, show_positions, take_frame_at
    from .protocol.pc2 import read_pc2
    from .protocol.take import read_take
    from .targets import resolve_mode, resolve_targets
    obj, take_path = _retarget_inputs(context, "Preview")
    check_not_preview(obj)
    s, scene = context.scene.facekey, context.scene
    mode = resolve_mode(obj, _name_map(s))
    take = read_take(take_path)
    k = take_frame_at(take, scene.frame_current, s.start_frame, scene_fps(scene))
    info = {"source": obj.name, "mode": mode, "take_frame": k, "scene_frame": int(scene.frame_current),
            "take": take_path}
    name, scene_name = obj.name, scene.name

    def done(what: str, preview: dict) -> tuple[str, dict]:
        preview.update(info)
        return f"preview of {name} at take frame {k} ({what}): {preview['object']}", {"preview": preview}

    if mode == "NAMEMAP":
        (_, resolution), = resolve_targets([obj], _name_map(s))[0]
        values = {key: float(take.weights[k, unit]) for unit, key in resolution.mapping.items()}
        return LocalJob(lambda: done("name map", show_key_values(_target_object(name), scene_name, values)),
                        label="preview")
    if mode == "SOLVE":
        return _solve_job(context, obj, take_path,
                          lambda kt, payload: done("character solve", show_key_values(
                              _target_object(name), scene_name, dict(zip(kt.key_names, kt.values[0].tolist())))),
                          frames=[k], file_path=_preview_file, client_kwargs=client_kwargs)
    return _mesh_job(context, obj, take_path,
                     lambda payload, rest: done("mesh-level", show_positions(
                         _target_object(name), scene_name, read_pc2(payload["pc2"])[0][0])),
                     frames=[k], file_path=_preview_file, client_kwargs=client_kwargs)


def import_csv(context, path: str) -> dict:
    """Live Link Face CSV -> Take file (in :func:`takes_dir`) -> bake onto the selected objects."""
    from .protocol.livelink import read_livelink_csv
    from .protocol.take import write_take
    take = read_livelink_csv(path)
    take_path = write_take(_unique_take_path(path), take)
    STATE.last_take = take_path
    return _bake_selected(context, take, path, take_path)


def export_csv(context, path: str) -> str:
    """The active object's FaceKey shape-key action -> Live Link Face CSV at ``path``."""
    from .bake.readback import take_from_action
    from .protocol.livelink import write_livelink_csv
    return write_livelink_csv(path, take_from_action(context.active_object))
