"""Operators: thin shells over ``scene_jobs`` (the jobs built from the panel), ``jobs`` and ``backend_setup``.

One error boundary (``_guarded``): a FaceKeyError becomes the panel's error
+ hint and a short report; anything else is logged with its traceback and
shown as an ``internal`` error pointing at the log.  In background mode
(``blender -b``) invoke runs execute, which runs the same job blocking.
"""
from __future__ import annotations

import contextlib
import copy
import math
import os

import bpy
from bpy.props import StringProperty

from .backend_setup import SetupJob, bundled_wheel, default_env_dir, default_log_path
from .jobs import WARM, CheckJob, internal_error, keep_warm
from .preferences import get_prefs
from .protocol.errors import FaceKeyError
from .protocol.take import format_spans
from .scene_jobs import (backend_python_of, export_csv, import_csv, make_apply_job, make_capture_job,
                         make_generate_job, make_mesh_retarget_job, make_preview_job, make_solve_job)
from .state import STATE

__all__ = ["abandon_job", "register", "unregister"]

#: The running job (one at a time), for the Cancel button.
ACTIVE: dict = {"job": None}
#: Seconds between two checks of the kept backend's idle time.
IDLE_CHECK_S = 10.0
#: Seconds between two steps of the running job.
STEP_S = 0.1
#: The window timers of the operators' modal handlers (removed when the add-on is disabled).
WINDOW_TIMERS: set = set()


def drive_job() -> float | None:
    """App timer: step the running job (``ACTIVE``); None (unregister) once it has ended.

    Jobs are driven by this persistent ``bpy.app.timers`` callback, not by a window's modal handler:
    Blender drops a window's handlers without notice (Preferences closed during Set up backend, the
    add-on disabled), and a job only its modal handler stepped stayed "running" until restart.  The
    modal handler the operator adds only catches Esc and reports the end in its window."""
    job = ACTIVE["job"]
    if job is None:
        return None
    try:
        done = job.step()
    except Exception as e:  # noqa: BLE001 - a bug: the job is stopped and reported, FaceKey not left busy
        err = internal_error(e, _log_path())
        with contextlib.suppress(Exception):      # stopping the backend is best effort here
            job.cancel()
        STATE.fail(err)
        done = True
    if done:
        _end(job)
    with contextlib.suppress(Exception):          # a timer that raises is dropped by Blender: never here
        _redraw(bpy.context)
    return None if done else STEP_S


def _end(job) -> None:
    """``job`` is over: FaceKey is free, and the job keeps how it ended (``outcome``, a copy of the state)
    for its operator to report, whatever job runs by then."""
    ACTIVE["job"] = None
    with contextlib.suppress(AttributeError):    # a job class without attributes of its own
        job.outcome = copy.copy(STATE)


def start_job(job) -> None:
    """Make ``job`` the running one, start it and have :func:`drive_job` step it."""
    ACTIVE["job"] = job
    try:
        job.start()
    except Exception:
        ACTIVE["job"] = None
        raise
    if not bpy.app.timers.is_registered(drive_job):
        bpy.app.timers.register(drive_job, first_interval=STEP_S, persistent=True)


def abandon_job(why: str) -> None:
    """Stop the running job now (its own cancel keeps the scene as it was) and free FaceKey for the next
    one; the panel shows it as cancelled with ``why``."""
    job, ACTIVE["job"] = ACTIVE["job"], None
    if bpy.app.timers.is_registered(drive_job):
        bpy.app.timers.unregister(drive_job)
    if job is None:
        return
    with contextlib.suppress(Exception):          # best effort: the job may already be half torn down
        job.cancel()
    STATE.fail(FaceKeyError("cancelled", f"FaceKey's job was stopped: {why}.", "Run it again."))
    _end(job)


@bpy.app.handlers.persistent
def _file_loading(*_args) -> None:
    """A file is about to be opened: a job that would write into the closing scene stops (a set-up or a
    backend check goes on)."""
    if ACTIVE["job"] is not None and getattr(ACTIVE["job"], "touches_scene", True):
        abandon_job("another file was opened")


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
        err = internal_error(e, _log_path())
        STATE.fail(err)
        op.report({"ERROR"}, f"FaceKey internal error: {err.message} ({err.hint})")
    return None


def _report_done(op, job_name: str, state=STATE) -> set:
    """Report how a job ended (``state``: the UI's, or the job's own ``outcome``)."""
    if state.status == "done":
        op.report({"INFO"}, state.message)
        return {"FINISHED"}
    op.report({"WARNING"} if state.status == "cancelled" else {"ERROR"},
              f"{state.error_message} {state.error_hint}".strip() or f"{job_name} failed")
    return {"CANCELLED"}


def _redraw(context) -> None:
    wm = context.window_manager
    for window in (wm.windows if wm is not None else ()):
        for area in (window.screen.areas if window.screen is not None else ()):
            if area.type in ("VIEW_3D", "PREFERENCES"):
                area.tag_redraw()


class _ModalJob:
    """Shared modal shell: :func:`start_job` runs the job; the modal handler catches Esc and reports."""

    _timer = None
    _job = None

    def _start_modal(self, context, job):
        try:
            start_job(job)
        except Exception as e:  # noqa: BLE001 - a bug while starting: reported, and FaceKey is not left busy
            STATE.fail(internal_error(e, _log_path()))
            return _report_done(self, self.bl_label)
        self._job = job
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.2, window=context.window)
        WINDOW_TIMERS.add(self._timer)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        """Esc cancels this operator's job; once it is no longer the running one, report how it ended."""
        if event.type not in ("TIMER", "ESC"):
            return {"PASS_THROUGH"}
        mine = ACTIVE["job"] is self._job
        if event.type == "ESC" and mine:
            self._job.cancel()                  # drive_job takes the end at its next step
        if mine:
            return {"PASS_THROUGH"}
        _remove_timer(context.window_manager, self._timer)
        return _report_done(self, self.bl_label, getattr(self._job, "outcome", STATE))

    def cancel(self, context):
        """Blender removed the modal handler (its window closed, a file was opened): the job goes on under
        :func:`drive_job` (a file load stops a scene job through its own handler)."""
        _remove_timer(context.window_manager, self._timer)


def _remove_timer(wm, timer) -> None:
    WINDOW_TIMERS.discard(timer)
    with contextlib.suppress(Exception):          # the window and its timer may be gone already
        wm.event_timer_remove(timer)


class _BackendJobOperator(_ModalJob):
    """A job operator: ``make_job(context)`` builds it; in the UI it runs modal, in
    ``blender -b`` (no events, no timers) ``invoke`` runs ``execute``, which blocks."""

    def make_job(self, context):
        raise NotImplementedError

    def run_to_end(self, job) -> None:
        _guarded(self, job.run_blocking)

    def _busy(self) -> bool:
        """Whether another job runs (reported)."""
        if ACTIVE["job"] is not None:
            self.report({"WARNING"}, "FaceKey is busy with another job: wait for it or press Cancel.")
            return True
        return False

    def execute(self, context):
        if self._busy():
            return {"CANCELLED"}
        job = _guarded(self, lambda: self.make_job(context))
        if job is None:
            return {"CANCELLED"}
        self.run_to_end(job)
        return _report_done(self, self.bl_label)

    def invoke(self, context, event):
        if self._busy():
            return {"CANCELLED"}
        if bpy.app.background:
            return self.execute(context)
        job = _guarded(self, lambda: self.make_job(context))
        if job is None:
            return {"CANCELLED"}
        return self._start_modal(context, keep_warm(job) if get_prefs(context).keep_backend_s > 0 else job)


class FACEKEY_OT_capture(_BackendJobOperator, bpy.types.Operator):
    """Capture the footage with the backend and apply it to each selected object by its retarget mode"""
    bl_idname = "facekey.capture"
    bl_label = "Capture"
    bl_options = {"UNDO"}     # one undo step; not REGISTER: Repeat Last would run the job blocking

    def make_job(self, context):
        return make_capture_job(context)


class FACEKEY_OT_generate(_BackendJobOperator, bpy.types.Operator):
    """Generate the chosen labelled expression and apply it to each selected object by its retarget mode"""
    bl_idname = "facekey.generate"
    bl_label = "Generate"
    bl_options = {"UNDO"}     # one undo step; not REGISTER: Repeat Last would run the job blocking

    def make_job(self, context):
        return make_generate_job(context)


class FACEKEY_OT_solve_character(_BackendJobOperator, bpy.types.Operator):
    """Solve the take for the active character's own shape keys (any names) and bake them as a new action"""
    bl_idname = "facekey.solve_character"
    bl_label = "Solve onto character"
    bl_options = {"UNDO"}     # one undo step; not REGISTER: Repeat Last would run the job blocking

    def make_job(self, context):
        return make_solve_job(context)


class FACEKEY_OT_mesh_retarget(_BackendJobOperator, bpy.types.Operator):
    """Move the active mesh (any topology, no shape keys needed) with the take: a Mesh Cache modifier or corrective shape keys"""
    bl_idname = "facekey.mesh_retarget"
    bl_label = "Mesh-level retarget"
    bl_options = {"UNDO"}     # one undo step; not REGISTER: Repeat Last would run the job blocking

    def make_job(self, context):
        return make_mesh_retarget_job(context)


class FACEKEY_OT_apply_take(_BackendJobOperator, bpy.types.Operator):
    """Apply the take (Take field, or the last take) to every selected object by its retarget mode"""
    bl_idname = "facekey.apply_take"
    bl_label = "Apply take to selected"
    bl_options = {"UNDO"}     # one undo step; not REGISTER: Repeat Last would run the job blocking

    def make_job(self, context):
        return make_apply_job(context)


class FACEKEY_OT_preview_frame(_BackendJobOperator, bpy.types.Operator):
    """Show the take's frame at the current scene frame on a copy of the active object (the object is not changed)"""
    bl_idname = "facekey.preview_frame"
    bl_label = "Preview frame"
    bl_options = {"UNDO"}     # one undo step; not REGISTER: Repeat Last would run the job blocking

    def make_job(self, context):
        return make_preview_job(context)


class FACEKEY_OT_clear_preview(bpy.types.Operator):
    """Delete the preview copies FaceKey made (objects, meshes and the FaceKey Preview collection)"""
    bl_idname = "facekey.clear_preview"
    bl_label = "Clear preview"
    bl_options = {"REGISTER", "UNDO"}    # Ctrl+Z takes back what it added, as one step

    def execute(self, context):
        from .preview import clear_preview
        removed = clear_preview()
        self.report({"INFO"}, f"removed {removed} preview object(s)")
        return {"FINISHED"}


class FACEKEY_OT_set_rest_frame(bpy.types.Operator):
    """Use the current scene frame as the rest frame: the actor's face is at rest here"""
    bl_idname = "facekey.set_rest_frame"
    bl_label = "Use current frame"
    bl_options = {"REGISTER", "UNDO"}    # Ctrl+Z takes back what it added, as one step

    def execute(self, context):
        s = context.scene.facekey
        s.rest_frame, s.use_rest_frame = context.scene.frame_current, True
        return {"FINISHED"}


class FACEKEY_OT_unsure_frame(bpy.types.Operator):
    """Jump to the next (or previous) stretch of frames the capture is unsure of on the active object's
    take: its facekey_confidence curve below 0.5"""
    bl_idname = "facekey.unsure_frame"
    bl_label = "Unsure frame"

    previous: bpy.props.BoolProperty(name="Previous", description="Jump back instead of forward", default=False)

    @classmethod
    def poll(cls, context):
        from .bake.readback import confidence_curve
        return confidence_curve(context.active_object) is not None

    def execute(self, context):
        from .bake.readback import unsure_stretches
        scene, obj = context.scene, context.active_object
        stretches = unsure_stretches(obj)
        now = scene.frame_current + scene.frame_subframe
        if self.previous:
            found = [s for s in stretches if s[0] < now - 1e-3][-1:]
        else:
            found = [s for s in stretches if s[0] > now + 1e-3][:1]
        if not found:
            where = "before" if self.previous else "after"
            self.report({"INFO"}, f"No frame the capture is unsure of {where} frame {now:g} on '{obj.name}' "
                                  f"({len(stretches)} unsure stretch(es) in all)")
            return {"CANCELLED"}
        first, last, lowest = found[0]
        whole = math.floor(first)       # keys may sit between frames (take and scene fps differ): land on the key
        scene.frame_set(whole, subframe=first - whole)
        self.report({"INFO"}, f"Unsure from frame {first:.0f} to {last:.0f} (lowest confidence {lowest:.2f})")
        return {"FINISHED"}


class FACEKEY_OT_bridge_unsure(bpy.types.Operator):
    """Replace the shape-key keys the capture is unsure of (and the head rotation, on the panel's head target)
    by a straight line between the trusted keys on either side, as a new action (the captured one is kept)"""
    bl_idname = "facekey.bridge_unsure"
    bl_label = "Bridge unsure frames"
    bl_options = {"REGISTER", "UNDO"}

    scope: bpy.props.EnumProperty(
        name="Scope", default="ALL",
        items=(("ALL", "All stretches", "Every stretch of frames the capture is unsure of"),
               ("PLAYHEAD", "Stretch at the playhead", "Only the unsure stretch the current frame is in")))

    @classmethod
    def poll(cls, context):
        from .bake.readback import confidence_curve
        return ACTIVE["job"] is None and confidence_curve(context.active_object) is not None

    def execute(self, context):
        from .bake.bridge import bridge_unsure
        scene, obj, s = context.scene, context.active_object, context.scene.facekey
        at = scene.frame_current + scene.frame_subframe if self.scope == "PLAYHEAD" else None
        head = s.head_object if s.head_mode != "NONE" else None     # the panel's head rotation target
        STATE.begin("bridge_unsure", "bridging unsure frames")
        done = _guarded(self, lambda: bridge_unsure(obj, at, head))
        if done is None:
            return {"CANCELLED"}
        action, spans, head_action, head_note = done
        also = (f" and the head rotation into '{head_action.name}'" if head_action is not None
                else f" (head rotation left as it is: {head_note})" if head_note else "")
        STATE.finish(f"Bridged {len(spans)} unsure stretch(es) of '{obj.name}' (frames {format_spans(spans)}) "
                     f"into the new action '{action.name}'{also}; the captured actions are kept")
        return _report_done(self, self.bl_label)


class FACEKEY_OT_setup_backend(_BackendJobOperator, bpy.types.Operator):
    """Create the backend environment with Blender's Python and install FaceKey's backend into it"""
    bl_idname = "facekey.setup_backend"
    bl_label = "Set up backend"

    def make_job(self, context):
        STATE.job = "setup"     # a refusal below shows in Preferences, where the button is
        WARM.close()    # a kept worker would go on running the backend this setup replaces
        if getattr(bpy.app, "online_access", True) is False:       # Blender 4.2+: the user's network switch
            raise FaceKeyError("backend_missing", "Set up backend installs the backend's packages (torch, MediaPipe, "
                               "OpenCV) from the package index, and Blender's 'Allow Online Access' is off.",
                               "Turn it on in Preferences > System > Network, or set 'Backend Python' to an "
                               "environment where you installed facekey[backend] yourself.")
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
        if ACTIVE["job"] is not None and not bpy.app.timers.is_registered(drive_job):
            abandon_job("cancelled")            # nothing steps it any more: free FaceKey now
        elif ACTIVE["job"] is not None:
            ACTIVE["job"].cancel()              # drive_job takes the end at its next step
        return {"FINISHED"}


class FACEKEY_OT_check_backend(_BackendJobOperator, bpy.types.Operator):
    """Start the backend once and show its version and device"""
    bl_idname = "facekey.check_backend"
    bl_label = "Check backend"

    def make_job(self, context):
        STATE.job = "check"     # "not set up" shows in Preferences, where the button is
        return CheckJob(backend_python_of(context), default_log_path())


class FACEKEY_OT_import_csv(bpy.types.Operator):
    """Import a Live Link Face CSV and bake it onto the selected objects"""
    bl_idname = "facekey.import_csv"
    bl_label = "Import CSV"
    bl_options = {"REGISTER", "UNDO"}    # Ctrl+Z takes back what it added, as one step

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


_CLASSES = (FACEKEY_OT_capture, FACEKEY_OT_generate, FACEKEY_OT_solve_character, FACEKEY_OT_mesh_retarget,
            FACEKEY_OT_apply_take,
            FACEKEY_OT_preview_frame, FACEKEY_OT_clear_preview, FACEKEY_OT_set_rest_frame, FACEKEY_OT_unsure_frame,
            FACEKEY_OT_bridge_unsure,
            FACEKEY_OT_setup_backend,
            FACEKEY_OT_cancel,
            FACEKEY_OT_check_backend, FACEKEY_OT_import_csv, FACEKEY_OT_export_csv, FACEKEY_OT_open_log)

_register_classes, _unregister_classes = bpy.utils.register_classes_factory(_CLASSES)


def close_idle_backend() -> float:
    """Timer: close the backend kept between jobs (``jobs.WARM``) once no job runs and it has rested
    the preference's time; returns the seconds to the next check."""
    if ACTIVE["job"] is None:
        WARM.close_if_idle(get_prefs().keep_backend_s)
    return IDLE_CHECK_S


def register() -> None:
    _register_classes()
    bpy.app.timers.register(close_idle_backend, first_interval=IDLE_CHECK_S, persistent=True)
    bpy.app.handlers.load_pre.append(_file_loading)


def unregister() -> None:
    if bpy.app.timers.is_registered(close_idle_backend):
        bpy.app.timers.unregister(close_idle_backend)
    if _file_loading in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_file_loading)
    abandon_job("the add-on was disabled")
    for timer in list(WINDOW_TIMERS):           # Blender frees a dropped modal operator without its cancel
        _remove_timer(bpy.context.window_manager, timer)
    WARM.close()
    _unregister_classes()
