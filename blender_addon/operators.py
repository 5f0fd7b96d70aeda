"""Operators: thin shells over ``jobs``, ``bake`` and ``backend_setup``.

One error boundary (``_guarded``): a FaceKeyError becomes the panel's error
+ hint and a short report; anything else is logged with its traceback and
shown as an ``internal`` error pointing at the log.  In background mode
(``blender -b``) invoke runs execute, which runs the same job blocking.
"""
from __future__ import annotations

import os
import traceback

import bpy
from bpy.props import StringProperty

from .backend_setup import SetupJob, backend_python, bundled_wheel, default_env_dir, default_log_path, user_data_dir
from .bake.apply import bake_take
from .jobs import BackendJob, CaptureJob
from .protocol.errors import FaceKeyError
from .state import STATE

__all__ = ["make_capture_job", "make_solve_job", "make_mesh_retarget_job", "import_csv", "export_csv", "takes_dir", "register", "unregister"]

#: The running modal job (capture or setup), for the Cancel button.
ACTIVE: dict = {"job": None}


def _log_path() -> str:
    return STATE.log_path or default_log_path()


def _guarded(op, fn):
    """Run ``fn()``; on error update the panel state, report, and return None."""
    try:
        return fn()
    except FaceKeyError as e:
        STATE.fail(e)
        op.report({"ERROR"}, f"{e.message} {e.hint}".strip())
    except Exception as e:  # the one boundary for bugs: logged with traceback, shown as 'internal'
        path = _log_path()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a", encoding="utf-8") as log:
            log.write(traceback.format_exc())
        STATE.fail(FaceKeyError("internal", f"{type(e).__name__}: {e}", f"This is a bug; the traceback is in {path}."))
        op.report({"ERROR"}, f"FaceKey internal error: {e} (see {path})")
    return None


def takes_dir() -> str:
    """Where takes are written: ``<blend dir>/facekey_takes`` for saved files, else the user data folder."""
    if bpy.data.filepath:
        path = os.path.join(os.path.dirname(bpy.path.abspath(bpy.data.filepath)), "facekey_takes")
    else:
        path = os.path.join(user_data_dir(), "takes")
    os.makedirs(path, exist_ok=True)
    return path


def _unique_take_path(source: str, ext: str = ".npz") -> str:
    stem = os.path.splitext(os.path.basename(source.rstrip("/\\")))[0] or "take"
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


def _name_map(settings):
    from .protocol.namemap import load_name_map
    return load_name_map(settings.name_map, bpy.path.abspath(settings.map_path) if settings.name_map == "custom" else None)


def _bake_selected(context, take, source: str, take_path: str) -> dict:
    s = context.scene.facekey
    head, bone = _head_args(s)
    return bake_take(take, list(context.selected_objects), _name_map(s), scene=context.scene, source=source,
                     start_frame=s.start_frame, take_path=take_path, head_target=head, head_bone=bone)


def _backend_python(context) -> str:
    """The backend environment's Python from the add-on preferences (``backend_missing`` if none)."""
    from .preferences import get_prefs
    prefs = get_prefs(context)
    return backend_python(bpy.path.abspath(prefs.python_path), bpy.path.abspath(prefs.env_dir) or default_env_dir())


def _retarget_inputs(context, what: str):
    """(active mesh object, take path) for the retarget operators; coded errors when either is missing."""
    obj = context.active_object
    if obj is None or obj.type != "MESH":
        raise FaceKeyError("no_targets", f"{what} needs an active mesh object.",
                           "Click the character's face mesh so it is the active object.")
    s = context.scene.facekey
    take_path = bpy.path.abspath(s.solve_take) if s.solve_take else STATE.last_take
    if not take_path or not os.path.isfile(take_path):
        raise FaceKeyError("file_missing", f"Take not found: {take_path or '(none yet)'}",
                           "Capture or import a take first, or pick a take file in the Retarget onto active box.")
    return obj, take_path


def make_capture_job(context, client_kwargs: dict | None = None) -> CaptureJob:
    """A capture job for the scene's FaceKey settings and the selected objects (not started).

    Checks everything that can fail before the backend starts: targets
    (``no_targets``/``no_shape_keys``), name map, head target, backend Python
    (``backend_missing``), footage (``file_missing``).
    """
    from .targets import resolve_targets
    s = context.scene.facekey
    footage = bpy.path.abspath(s.footage)
    if not s.footage or not os.path.exists(footage):
        raise FaceKeyError("file_missing", f"Footage not found: {footage or '(none)'}",
                           "Pick a video file, an image folder or a photo in the FaceKey panel.")
    objects = list(context.selected_objects)
    resolve_targets(objects, _name_map(s))
    _head_args(s)
    python = _backend_python(context)
    names = [o.name for o in objects]
    scene_name = context.scene.name

    def bake(take, take_path):
        scene = bpy.data.scenes[scene_name]
        head, bone = _head_args(scene.facekey)
        objs = [bpy.data.objects[n] for n in names if n in bpy.data.objects]
        return bake_take(take, objs, _name_map(scene.facekey), scene=scene, source=footage,
                         start_frame=scene.facekey.start_frame, take_path=take_path, head_target=head, head_bone=bone)

    settings = {"smoothing": float(s.smoothing)}
    return CaptureJob(python, default_log_path(), footage, _unique_take_path(footage), settings,
                      None if s.face_index < 0 else int(s.face_index), bake, client_kwargs=client_kwargs)


def _globs(text: str) -> list[str]:
    return [g.strip() for g in text.split(",") if g.strip()]


def make_solve_job(context, client_kwargs: dict | None = None) -> BackendJob:
    """Character solve onto the active object's own shape keys (any names), not started.

    Measures the object's keys here (each key alone, values restored), lets the
    backend solve a Take for them (``retarget_solve``), and bakes the result as
    a new action on the main thread.  Checks the object (``no_targets`` /
    ``no_shape_keys``), the take (``file_missing``) and the backend first.
    """
    from .bake.apply import action_name_for, scene_fps
    from .bake.shape_keys import bake_key_take
    from .protocol.keytake import read_key_take, write_character_keys
    from .retarget.measure import character_keys_from_object
    s = context.scene.facekey
    obj, take_path = _retarget_inputs(context, "Character solve")
    key = obj.data.shape_keys
    if key is None or len(key.key_blocks) < 2:
        raise FaceKeyError("no_shape_keys", f"'{obj.name}' has no shape keys to solve for.",
                           "Pick a mesh with shape keys, or use mesh-level retarget for meshes without them.")
    python = _backend_python(context)
    character = write_character_keys(_unique_take_path(f"{obj.name}_character"),
                                     character_keys_from_object(obj, source=bpy.data.filepath))
    name, scene_name, start = obj.name, context.scene.name, s.start_frame

    def finish(payload: dict) -> tuple[str, dict]:
        kt = read_key_take(payload["key_take"])
        scene = bpy.data.scenes[scene_name]
        action = bake_key_take(bpy.data.objects[name], kt, action_name_for(take_path), start, scene_fps(scene),
                               payload["key_take"])
        solve = payload["report"]
        report = {"objects": {name: {"action": action.name, "mapped": {k: k for k in kt.key_names},
                                     "unmapped_units": list(solve["unmapped_units"]),
                                     "unused_keys": sorted(solve["skipped_keys"])}},
                  "skipped": {}, "frames": int(kt.valid.sum()), "solve": solve}
        return f"solved {len(kt.key_names)} keys of {name} over {report['frames']} frames", report

    args = {"take": take_path, "character": character, "output": _unique_take_path(f"{obj.name}_keys"),
            "keys": _globs(s.solve_keys), "exclude": _globs(s.solve_exclude)}
    return BackendJob(python, default_log_path(), "retarget_solve", args, finish, label="solve",
                      client_kwargs=client_kwargs)


def make_mesh_retarget_job(context, client_kwargs: dict | None = None) -> BackendJob:
    """Mesh-level retarget onto the active mesh (any topology, no shape keys needed), not started.

    Assumes the object's LOCAL coordinates are metres with Z up and the face
    toward -Y (Blender's front view); the backend converts them to its head
    frame and writes the cache back in them (``axes="blender"``).  The rest
    shape sent is the mesh's own vertices (not the evaluated mesh).  Output
    per ``mesh_output``: MESH_CACHE adds a Mesh Cache modifier at the scene
    setting's start frame; SHAPE_KEYS adds corrective keys ``FK_<take>_cNN``
    and bakes their coefficients as a new action.  The mesh data's vertices
    are never changed.
    """
    import numpy as np

    from .bake.apply import action_name_for, scene_fps
    from .bake.shape_keys import bake_corrective_keys
    from .protocol.take import read_take
    from .protocol.pc2 import read_pc2
    from .retarget.corrective import add_corrective_keys, compress_displacements
    from .retarget.mesh_cache import add_mesh_cache
    s = context.scene.facekey
    obj, take_path = _retarget_inputs(context, "Mesh-level retarget")
    python = _backend_python(context)
    rest = np.empty(len(obj.data.vertices) * 3, np.float64)
    obj.data.vertices.foreach_get("co", rest)
    rest = rest.reshape(-1, 3)
    vertices = _unique_take_path(f"{obj.name}_rest")
    np.savez(vertices, vertices=rest)
    pc2 = _unique_take_path(f"{obj.name}_{os.path.basename(take_path)}", ".pc2")
    name, scene_name, start, output = obj.name, context.scene.name, s.start_frame, s.mesh_output

    def finish(payload: dict) -> tuple[str, dict]:
        target = bpy.data.objects[name]
        mesh = {"pc2": payload["pc2"], "output": output, "max_displacement_mm": payload["max_displacement_mm"]}
        if output == "MESH_CACHE":
            mod = add_mesh_cache(target, payload["pc2"], start, payload["points"])
            mesh["modifier"] = mod.name
            return f"mesh cache on {name}: {payload['samples']} frames", {"mesh": mesh, "skipped": {}}
        take = read_take(take_path)
        comp = compress_displacements(read_pc2(payload["pc2"])[0] - rest[None], take.valid)
        action_name = action_name_for(take_path)
        keys = add_corrective_keys(target, action_name, comp.keys)
        action = bake_corrective_keys(target, keys, comp.coefficients, take, action_name, start,
                                      scene_fps(bpy.data.scenes[scene_name]), payload["pc2"])
        mesh.update(comp.report(), action=action.name, key_names=keys)
        return (f"{len(keys)} corrective keys on {name} ({comp.max_error_mm:.2f} mm max error)",
                {"mesh": mesh, "skipped": {}, "frames": int(take.valid.sum())})

    args = {"take": take_path, "vertices": vertices, "output": pc2, "serep": None, "start_frame": float(start),
            "axes": "blender"}
    return BackendJob(python, default_log_path(), "mesh_retarget", args, finish, label="mesh retarget",
                      client_kwargs=client_kwargs)


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


def _report_done(op, job_name: str) -> set:
    if STATE.status == "done":
        op.report({"INFO"}, STATE.message)
        return {"FINISHED"}
    op.report({"WARNING"} if STATE.status == "cancelled" else {"ERROR"},
              f"{STATE.error_message} {STATE.error_hint}".strip() or f"{job_name} failed")
    return {"CANCELLED"}


def _redraw(context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "PREFERENCES"):
                area.tag_redraw()


class _ModalJob:
    """Shared modal shell: a timer drives ``job.step()``; Esc cancels."""

    _timer = None

    def _start_modal(self, context, job):
        ACTIVE["job"] = job
        job.start()
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        job = ACTIVE["job"]
        if event.type == "ESC" and job is not None:
            job.cancel()
        if event.type in ("TIMER", "ESC"):
            _redraw(context)
            if job is None or job.step():
                context.window_manager.event_timer_remove(self._timer)
                ACTIVE["job"] = None
                return _report_done(self, self.bl_label)
        return {"PASS_THROUGH"}


class _BackendJobOperator(_ModalJob):
    """A job operator: ``make_job(context)`` builds it; in the UI it runs modal, in
    ``blender -b`` (no events, no timers) ``invoke`` runs ``execute``, which blocks."""

    def make_job(self, context):
        raise NotImplementedError

    def run_to_end(self, job) -> None:
        _guarded(self, job.run_blocking)

    def execute(self, context):
        job = _guarded(self, lambda: self.make_job(context))
        if job is None:
            return {"CANCELLED"}
        self.run_to_end(job)
        return _report_done(self, self.bl_label)

    def invoke(self, context, event):
        if bpy.app.background or ACTIVE["job"] is not None:
            return self.execute(context) if ACTIVE["job"] is None else {"CANCELLED"}
        job = _guarded(self, lambda: self.make_job(context))
        return {"CANCELLED"} if job is None else self._start_modal(context, job)


class FACEKEY_OT_capture(_BackendJobOperator, bpy.types.Operator):
    """Capture the footage with the backend and bake it onto the selected objects"""
    bl_idname = "facekey.capture"
    bl_label = "Capture"

    def make_job(self, context):
        return make_capture_job(context)


class FACEKEY_OT_solve_character(_BackendJobOperator, bpy.types.Operator):
    """Solve the take for the active character's own shape keys (any names) and bake them as a new action"""
    bl_idname = "facekey.solve_character"
    bl_label = "Solve onto character"

    def make_job(self, context):
        return make_solve_job(context)


class FACEKEY_OT_mesh_retarget(_BackendJobOperator, bpy.types.Operator):
    """Move the active mesh (any topology, no shape keys needed) with the take: a Mesh Cache modifier or corrective shape keys"""
    bl_idname = "facekey.mesh_retarget"
    bl_label = "Mesh-level retarget"

    def make_job(self, context):
        return make_mesh_retarget_job(context)


class FACEKEY_OT_setup_backend(_BackendJobOperator, bpy.types.Operator):
    """Create the backend environment with Blender's Python and install FaceKey's backend into it"""
    bl_idname = "facekey.setup_backend"
    bl_label = "Set up backend"

    def make_job(self, context):
        from .preferences import get_prefs
        prefs = get_prefs(context)
        return SetupJob(bpy.path.abspath(prefs.env_dir) or default_env_dir(), bundled_wheel(), default_log_path())

    def run_to_end(self, job) -> None:
        job.start()
        job.join()


class FACEKEY_OT_cancel(bpy.types.Operator):
    """Cancel the running FaceKey job (the scene is left unchanged)"""
    bl_idname = "facekey.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        if ACTIVE["job"] is not None:
            ACTIVE["job"].cancel()
        return {"FINISHED"}


def check_backend(context, client_kwargs: dict | None = None) -> dict:
    """Start the backend, return its hello (version, device), shut it down."""
    from .protocol.client import BackendClient
    python = _backend_python(context)
    STATE.begin("check", "starting the backend")
    STATE.log_path = default_log_path()
    client = BackendClient(python, STATE.log_path, **(client_kwargs or {}))
    try:
        hello = client.start()
    finally:
        client.close()
    STATE.finish(f"backend {hello.get('version', '?')} on {hello.get('device', '?')} (protocol {hello.get('protocol')})")
    return hello


class FACEKEY_OT_check_backend(bpy.types.Operator):
    """Start the backend once and show its version and device"""
    bl_idname = "facekey.check_backend"
    bl_label = "Check backend"

    def execute(self, context):
        hello = _guarded(self, lambda: check_backend(context))
        return {"CANCELLED"} if hello is None else _report_done(self, "Check backend")


class FACEKEY_OT_import_csv(bpy.types.Operator):
    """Import a Live Link Face CSV and bake it onto the selected objects"""
    bl_idname = "facekey.import_csv"
    bl_label = "Import CSV"

    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.csv", options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        STATE.begin("import_csv", f"importing {os.path.basename(self.filepath)}")
        report = _guarded(self, lambda: import_csv(context, bpy.path.abspath(self.filepath)))
        if report is None:
            return {"CANCELLED"}
        STATE.finish(f"baked {report['frames']} frames onto {len(report['objects'])} object(s)", report)
        return _report_done(self, "Import CSV")


class FACEKEY_OT_export_csv(bpy.types.Operator):
    """Export the active object's FaceKey animation as a Live Link Face CSV"""
    bl_idname = "facekey.export_csv"
    bl_label = "Export CSV"

    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.csv", options={"HIDDEN"})

    def invoke(self, context, event):
        if not self.filepath:
            self.filepath = "facekey_take.csv"
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        STATE.begin("export_csv", "exporting CSV")
        path = _guarded(self, lambda: export_csv(context, bpy.path.abspath(self.filepath)))
        if path is None:
            return {"CANCELLED"}
        STATE.finish(f"wrote {path}")
        return _report_done(self, "Export CSV")


class FACEKEY_OT_open_log(bpy.types.Operator):
    """Open the backend log file"""
    bl_idname = "facekey.open_log"
    bl_label = "Open log"

    def execute(self, context):
        path = _log_path()
        if not os.path.isfile(path):
            self.report({"WARNING"}, f"No log yet at {path}")
            return {"CANCELLED"}
        bpy.ops.wm.path_open(filepath=path)
        return {"FINISHED"}


_CLASSES = (FACEKEY_OT_capture, FACEKEY_OT_solve_character, FACEKEY_OT_mesh_retarget, FACEKEY_OT_setup_backend, FACEKEY_OT_cancel, FACEKEY_OT_check_backend,
            FACEKEY_OT_import_csv, FACEKEY_OT_export_csv, FACEKEY_OT_open_log)

register, unregister = bpy.utils.register_classes_factory(_CLASSES)
