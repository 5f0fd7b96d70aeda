"""Scenarios run inside Blender (bpy 5.0 module or a blender binary), one per fresh process.

Usage: ``python bpy_scenarios.py -- NAME PARAMS.json RESULT.json`` (or
``blender -b --python bpy_scenarios.py -- ...``).  Each scenario installs
the built add-on zip into ``BLENDER_USER_RESOURCES`` / ``BLENDER_USER_SCRIPTS``
(a temp dir set by the test), builds a small character, runs the add-on's
operators or jobs, and writes what it observed as JSON; pytest asserts.
This file is not collected by pytest (no ``test_`` prefix).
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import time

import bpy

KEYS = ["jawOpen", "eyeBlinkLeft", "EyeBlink_R", "mouthSmileLeft", "browInnerUp", "CustomKey"]


# ----------------------------------------------------------------------------- set-up helpers
def install(params) -> object:
    """Install + enable the add-on zip; return its package module."""
    if params.get("legacy"):
        bpy.ops.preferences.addon_install(filepath=params["zip"], overwrite=True)
        bpy.ops.preferences.addon_enable(module="facekey")
        return importlib.import_module("facekey")
    bpy.ops.extensions.package_install_files(filepath=params["zip"], repo="user_default", enable_on_install=True)
    return importlib.import_module("bl_ext.user_default.facekey")


def call_op(op, *args, **kw) -> list:
    """Run an operator; in background mode an ERROR report raises RuntimeError: return ["CANCELLED"] then."""
    try:
        return sorted(op(*args, **kw))
    except RuntimeError as e:
        print(f"operator reported: {e}")
        return ["CANCELLED"]


def sub(pkg, name: str):
    return importlib.import_module(f"{pkg.__name__}.{name}")


def make_character():
    """Mesh "Face" (6 keys, one slider range/value customised, an existing action), mesh "Plain" (no keys)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 24, 1.0
    me = bpy.data.meshes.new("Face")
    me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 0, 1), (1, 0, 1)], [], [(0, 1, 3, 2)])
    face = bpy.data.objects.new("Face", me)
    scene.collection.objects.link(face)
    face.shape_key_add(name="Basis")
    for i, n in enumerate(KEYS):
        kb = face.shape_key_add(name=n)
        kb.data[i % 4].co = (0.1 * i, -0.2, 0.3)
    kbs = me.shape_keys.key_blocks
    kbs["jawOpen"].slider_min, kbs["jawOpen"].slider_max = -0.5, 1.5
    kbs["browInnerUp"].value = 0.3
    key = me.shape_keys
    old = bpy.data.actions.new("OldAction")
    key.animation_data_create().action = old
    for f, v in ((1, 0.0), (10, 0.8), (20, 0.2)):
        kbs["jawOpen"].value = v
        kbs["jawOpen"].keyframe_insert("value", frame=f)
    kbs["jawOpen"].value = 0.0
    bpy.data.actions.new("Unrelated").use_fake_user = True
    me2 = bpy.data.meshes.new("Plain")
    me2.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    plain = bpy.data.objects.new("Plain", me2)
    scene.collection.objects.link(plain)
    for o in (face, plain):
        o.select_set(True)
    bpy.context.view_layer.objects.active = face
    return face, plain


def curves_of(pkg, action, datablock=None) -> list:
    import numpy as np
    fcurves = sub(pkg, "bake.fcurves").action_fcurves
    out = []
    for fc in fcurves(action, datablock):
        co = np.empty(2 * len(fc.keyframe_points), np.float32)
        fc.keyframe_points.foreach_get("co", co)
        interp = [kp.interpolation for kp in fc.keyframe_points]
        out.append({"path": fc.data_path, "index": fc.array_index, "co": co.tolist(), "interp": interp})
    return sorted(out, key=lambda c: (c["path"], c["index"]))


def snapshot(pkg) -> dict:
    """Everything a bake must not change: existing actions' keys, key blocks' data."""
    import numpy as np
    snap = {"actions": {a.name: curves_of(pkg, a) for a in bpy.data.actions}, "keys": {}}
    for obj in bpy.data.objects:
        key = obj.data.shape_keys if obj.type == "MESH" else None
        if key is None:
            continue
        blocks = []
        for kb in key.key_blocks:
            co = np.empty(3 * len(kb.data), np.float32)
            kb.data.foreach_get("co", co)
            blocks.append({"name": kb.name, "co": co.tolist(), "min": kb.slider_min, "max": kb.slider_max,
                           "value": kb.value, "mute": kb.mute, "relative": kb.relative_key.name,
                           "vgroup": kb.vertex_group})
        snap["keys"][obj.name] = blocks
    return snap


def state_dict(pkg) -> dict:
    s = sub(pkg, "state").STATE
    return {k: getattr(s, k) for k in ("status", "job", "done", "total", "message", "error_code",
                                       "error_message", "error_hint", "log_path", "report", "last_take")}


def set_backend(pkg, python: str) -> None:
    bpy.context.preferences.addons[pkg.__name__].preferences.python_path = python


def face_action_report(pkg) -> dict:
    face = bpy.data.objects["Face"]
    key = face.data.shape_keys
    action = key.animation_data.action
    return {"action": action.name, "curves": curves_of(pkg, action, key),
            "props": {k: action[k] for k in ("facekey_take", "facekey_start_frame", "facekey_scene_fps")}}


# ----------------------------------------------------------------------------- scenarios
def sc_install(params) -> dict:
    pkg = install(params)
    ops = [n for n in ("capture", "generate", "cancel", "setup_backend", "check_backend", "import_csv", "export_csv",
                       "open_log", "apply_take", "preview_frame", "clear_preview", "solve_character", "mesh_retarget",
                       "set_rest_frame")
           if hasattr(bpy.ops.facekey, n)]
    panels = ("FACEKEY_PT_main", "FACEKEY_PT_take", "FACEKEY_PT_retarget", "FACEKEY_PT_generate")
    res = {"module": pkg.__name__, "ops": ops, "panel": all(hasattr(bpy.types, n) for n in panels),
           "scene_prop": hasattr(bpy.context.scene, "facekey"), "version": list(bpy.app.version),
           "object_prop": "facekey_retarget_mode" in bpy.types.Object.bl_rna.properties,
           "undo": sorted(n for n in ops if "UNDO" in getattr(getattr(bpy.types, "FACEKEY_OT_" + n), "bl_options", ()))}
    addon_dir = os.path.dirname(pkg.__file__)
    res["wheel"] = os.path.basename(sub(pkg, "backend_setup").bundled_wheel(addon_dir))
    bpy.ops.preferences.addon_disable(module=pkg.__name__)
    res["panel_after_disable"] = any(hasattr(bpy.types, n) for n in panels)
    res["object_prop_after_disable"] = "facekey_retarget_mode" in bpy.types.Object.bl_rna.properties
    return res


def sc_two_facekeys(params) -> dict:
    """The extension enabled, then the legacy add-on (someone moving from 3.4 to 4.2 with both): the second
    is refused with the reason, the first keeps working and disables cleanly."""
    import addon_utils
    pkg = install(params)
    bpy.ops.preferences.addon_install(filepath=params["legacy_zip"], overwrite=True)
    try:
        bpy.ops.preferences.addon_enable(module="facekey")
        refused = ""
    except Exception as e:                                   # noqa: BLE001 - Blender reports the register error
        refused = str(e)
    res = {"refused": refused, "legacy_enabled": addon_utils.check("facekey")[1],
           "capture_module": bpy.types.FACEKEY_OT_capture.__module__, "extension": pkg.__name__}
    try:
        addon_utils.disable(pkg.__name__, default_set=True)
        res["disabled"] = not hasattr(bpy.types, "FACEKEY_OT_capture")
    except Exception as e:                                   # noqa: BLE001
        res["disabled"] = f"raised {e}"
    return res


def sc_import_csv(params) -> dict:
    """Import a CSV through the operator onto Face (+ Plain, skipped), with head rotation on Face."""
    pkg = install(params)
    make_character()
    before = snapshot(pkg)
    s = bpy.context.scene.facekey
    s.start_frame = params.get("start_frame", 1)
    if params.get("head"):
        s.head_mode, s.head_object = "OBJECT", bpy.data.objects["Face"]
    rc = call_op(bpy.ops.facekey.import_csv, filepath=params["csv"])
    res = {"rc": rc, "state": state_dict(pkg), "before": before, "after": snapshot(pkg)}
    res.update(face_action_report(pkg))
    res["old_fake_user"] = bpy.data.actions["OldAction"].use_fake_user
    face = bpy.data.objects["Face"]
    res["values_now"] = {kb.name: kb.value for kb in face.data.shape_keys.key_blocks}
    if params.get("head"):
        head = face.animation_data.action
        res["head_action"] = head.name
        res["head_curves"] = curves_of(pkg, head, face)
        res["rotation_mode"] = face.rotation_mode
        frames = []
        for f in params.get("probe_frames", []):
            bpy.context.scene.frame_set(int(f), subframe=f - int(f))
            m = face.matrix_world.to_3x3()
            frames.append({"frame": f, "front": list(m @ __import__("mathutils").Vector((0, -1, 0))),
                           "up": list(m @ __import__("mathutils").Vector((0, 0, 1)))})
        res["probe"] = frames
    if params.get("export"):
        rc2 = call_op(bpy.ops.facekey.export_csv, filepath=params["export"])
        res["export_rc"] = rc2
        res["export_state"] = state_dict(pkg)
    if params.get("save"):
        bpy.ops.wm.save_as_mainfile(filepath=params["save"])
    return res


def sc_export_renamed(params) -> dict:
    """Import a CSV onto Face and delete the CSV (so the export reads the curves alone), rename its jawOpen
    key, export; then delete the eyeBlinkLeft curve and export."""
    import shutil
    pkg = install(params)
    make_character()
    copy = shutil.copy(params["csv"], params["renamed"] + ".source.csv")
    rc = call_op(bpy.ops.facekey.import_csv, filepath=copy)
    key = bpy.data.objects["Face"].data.shape_keys
    for path in {copy, key.animation_data.action.get("facekey_take", "")} - {""}:
        if os.path.isfile(path):
            os.remove(path)
    key.key_blocks["jawOpen"].name = "Jaw_Open"
    res = {"rc": rc, "renamed_rc": call_op(bpy.ops.facekey.export_csv, filepath=params["renamed"]),
           "renamed_state": state_dict(pkg)}
    action = key.animation_data.action
    fcurves = sub(pkg, "bake.fcurves").action_fcurves(action, key)
    blink = next(fc for fc in fcurves if fc.data_path == 'key_blocks["eyeBlinkLeft"].value')
    bags = [bag for layer in action.layers for strip in layer.strips for bag in strip.channelbags]
    next(bag for bag in bags if blink in list(bag.fcurves)).fcurves.remove(blink)
    res["deleted_rc"] = call_op(bpy.ops.facekey.export_csv, filepath=params["deleted"])
    res["deleted_state"] = state_dict(pkg)
    # eyeBlinkLeft renamed, then the key before it removed: its old place now holds eyeBlinkRight's key
    bpy.data.actions.remove(action)
    face = bpy.data.objects["Face"]
    call_op(bpy.ops.facekey.import_csv, filepath=params["csv"])
    key.key_blocks["eyeBlinkLeft"].name = "BlinkL"
    face.shape_key_remove(key.key_blocks["Jaw_Open"])
    res["shifted_rc"] = call_op(bpy.ops.facekey.export_csv, filepath=params["deleted"])
    res["shifted_state"] = state_dict(pkg)
    return res


def sc_capture(params) -> dict:
    """The Capture operator, headless (execute = blocking), through the real backend process."""
    pkg = install(params)
    make_character()
    before = snapshot(pkg)
    set_backend(pkg, params["python"])
    s = bpy.context.scene.facekey
    s.footage, s.smoothing, s.hands = params["footage"], params.get("smoothing", 1.0), params.get("hands", False)
    if params.get("only_plain"):
        bpy.data.objects["Face"].select_set(False)
    rc = call_op(bpy.ops.facekey.capture, "INVOKE_DEFAULT")
    res = {"rc": rc, "state": state_dict(pkg), "before": before, "after": snapshot(pkg), "panel": draw_panel()}
    if res["state"]["status"] == "done":
        res.update(face_action_report(pkg))
    return res


def sc_capture_folder(params) -> dict:
    """Capture with a folder of clips as the footage: first with Rest frame on (refused, nothing changed),
    then for real; records the order the job's parts start in, the backend workers they ran on and what
    the panel shows."""
    pkg = install(params)
    make_character()
    set_backend(pkg, params["python"])
    s = bpy.context.scene.facekey
    s.footage = params["footage"]
    before = snapshot(pkg)
    s.use_rest_frame = True
    res = {"rest": {"rc": call_op(bpy.ops.facekey.capture, "INVOKE_DEFAULT"), "state": state_dict(pkg),
                    "unchanged": snapshot(pkg) == before}}
    s.use_rest_frame = False
    jobs = sub(pkg, "jobs")
    seq_cls, worker_cls = jobs.JobSequence, jobs.SharedWorker
    started, clients = [], []
    start_next, client_for = seq_cls._start_next, worker_cls.client_for

    def logged(self):
        if self.parts:
            started.append(self.parts[0][0])
        start_next(self)

    def recorded(self, *args):
        client = client_for(self, *args)
        if client not in clients:
            clients.append(client)
        return client

    seq_cls._start_next, worker_cls.client_for = logged, recorded
    try:
        rc = call_op(bpy.ops.facekey.capture, "INVOKE_DEFAULT")
    finally:
        seq_cls._start_next, worker_cls.client_for = start_next, client_for
    res.update(rc=rc, state=state_dict(pkg), before=before, after=snapshot(pkg), started=started, panel=draw_panel(),
               workers=len(clients), worker_alive=any(c.alive for c in clients))
    return res


def sc_job_bugs(params) -> dict:
    """Jobs meeting a bug (not a FaceKeyError): reported as 'internal' with the traceback in the log, the
    job ended (nothing left busy); a part that never ends is cut off by run_blocking's timeout."""
    pkg = install(params)
    jobs, state = sub(pkg, "jobs"), sub(pkg, "state")
    out = {}
    st = state.JobState()
    st.log_path = params["log"]
    jobs.LocalJob(lambda: {}["missing"], label="broken bake", state=st).run_blocking()
    out["local"] = {"status": st.status, "code": st.error_code, "message": st.error_message, "hint": st.error_hint}

    def broken(part_state):
        raise KeyError("made wrong")

    def fine(part_state):
        return jobs.LocalJob(lambda: ("done", {"ok": True}), label="fine", state=part_state)

    st = state.JobState()
    st.log_path = params["log"]
    seq = jobs.JobSequence("two parts", lambda results, errors: (f"{len(results)} done", {
        "errors": {k: e.code for k, e in errors.items()}}), state=st)
    seq.add("broken", broken)
    seq.add("fine", fine)
    seq.run_blocking()
    out["sequence"] = {"status": st.status, "message": st.message, "report": st.report}

    class Hung:
        finished = False

        def __init__(self, part_state):
            self.state = part_state

        def start(self):
            self.state.begin("hung", "hung")

        def step(self):
            return False

        def cancel(self):
            self.finished = True

    st = state.JobState()
    seq = jobs.JobSequence("hung", lambda results, errors: ("", {}), state=st)
    seq.add("hung", Hung, required=True)
    t0 = time.monotonic()
    seq.run_blocking(timeout=0.5)
    out["hung"] = {"status": st.status, "code": st.error_code, "seconds": time.monotonic() - t0}
    out["log"] = open(params["log"], encoding="utf-8").read() if os.path.isfile(params["log"]) else ""
    return out


def sc_job_driver(params) -> dict:
    """Jobs run under the add-on's app timer, not a window's modal handler: a handler Blender drops (its
    window closed) leaves the job running; Cancel ends it; a second job is refused while one runs; opening
    a file stops a job that writes into the scene (not a set-up); disabling the add-on stops any."""
    pkg = install(params)
    ops, state = sub(pkg, "operators"), sub(pkg, "state")
    cancelled = sub(pkg, "protocol.errors").FaceKeyError("cancelled", "stopped", "")

    class Job:
        touches_scene = True

        def __init__(self):
            self.cancels, self.steps, self.finished = 0, 0, False

        def start(self):
            state.STATE.begin("capture", "running")

        def step(self):
            self.steps += 1
            return self.finished

        def cancel(self):
            self.cancels += 1
            self.finished = True
            state.STATE.fail(cancelled)

    class Op:
        _timer = None

    out = {}
    job = Job()
    ops.start_job(job)
    out["timer"] = bpy.app.timers.is_registered(ops.drive_job)
    ops.FACEKEY_OT_setup_backend.cancel(Op(), bpy.context)      # Blender dropped the modal handler
    out["window_closed"] = {"running": ops.ACTIVE["job"] is job, "cancels": job.cancels,
                            "next": ops.drive_job(), "steps": job.steps}
    call_op(bpy.ops.facekey.cancel)
    out["cancel"] = {"next": ops.drive_job(), "active": ops.ACTIVE["job"] is not None, "status": state.STATE.status}
    job = Job()
    ops.start_job(job)
    rc = call_op(bpy.ops.facekey.capture)
    out["busy"] = {"rc": rc, "running": ops.ACTIVE["job"] is job, "cancels": job.cancels}
    blend = os.path.join(params["tmp"], "empty.blend")
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    bpy.ops.wm.open_mainfile(filepath=blend)
    out["file_opened"] = {"cancels": job.cancels, "active": ops.ACTIVE["job"] is not None,
                          "message": state.STATE.error_message}
    setup = Job()
    setup.touches_scene = False
    ops.start_job(setup)
    bpy.ops.wm.open_mainfile(filepath=blend)
    out["setup_kept"] = ops.ACTIVE["job"] is setup and setup.cancels == 0
    ops.abandon_job("test")
    import types
    reports = []
    old = Job()                                                 # an operator whose job ended...
    ops.start_job(old)
    old.finished = True
    state.STATE.finish("old job baked")
    ops.drive_job()
    newer = Job()                                               # ...before its handler saw it: a new one runs
    ops.start_job(newer)
    op = types.SimpleNamespace(_job=old, _timer=None, bl_label="Capture",
                               report=lambda kind, text: reports.append(text))
    rc = ops.FACEKEY_OT_capture.modal(op, bpy.context, types.SimpleNamespace(type="TIMER"))
    out["old_handler"] = {"rc": sorted(rc), "reports": reports, "newer_running": ops.ACTIVE["job"] is newer}
    real_redraw = ops._redraw
    ops._redraw = lambda context: 1 / 0                         # a redraw that fails (a window without a screen)
    newer.finished = True
    out["redraw_fails"] = {"next": ops.drive_job(), "active": ops.ACTIVE["job"] is not None}
    ops._redraw = real_redraw
    stray = Job()
    ops.start_job(stray)
    bpy.app.timers.unregister(ops.drive_job)                    # nothing steps it any more
    call_op(bpy.ops.facekey.cancel)
    out["cancel_unstepped"] = {"active": ops.ACTIVE["job"] is not None, "cancels": stray.cancels}
    setup = Job()
    ops.start_job(setup)
    ops.unregister()                                            # what disabling the add-on runs
    out["disabled"] = {"cancels": setup.cancels, "active": ops.ACTIVE["job"] is not None,
                       "timer": bpy.app.timers.is_registered(ops.drive_job),
                       "handler": ops._file_loading in bpy.app.handlers.load_pre}
    state.STATE.finish("baked", {"objects": {"Face": {}}})
    state.STATE.begin("check", "starting the backend")
    out["report_after_begin"] = state.STATE.report
    return out


def sc_warm_worker(params) -> dict:
    """Jobs kept warm, as the operators run them in an interactive session: two single jobs and a
    two-part sequence run on one backend worker, left running between them; the idle timer keeps it
    while it is fresh and closes it once it has rested the preference's time; a cancel closes it."""
    pkg = install(params)
    set_backend(pkg, params["python"])
    jobs, ops, state = sub(pkg, "jobs"), sub(pkg, "operators"), sub(pkg, "state")
    prefs = bpy.context.preferences.addons[pkg.__name__].preferences
    warm = jobs.WARM
    res = {"timer": bpy.app.timers.is_registered(ops.close_idle_backend), "default_keep_s": prefs.keep_backend_s}

    def ping(part_state):
        return jobs.BackendJob(params["python"], params["log"], "ping", {}, lambda payload: ("pong", {}),
                               label="ping", state=part_state)

    def pid():
        return warm.client._proc.pid if warm.client is not None and warm.client.alive else None

    pids, statuses = [], []
    for _ in range(2):
        st = state.JobState()
        jobs.keep_warm(ping(st)).run_blocking()
        statuses.append(st.status)
        pids.append(pid())
    st = state.JobState()
    seq = jobs.JobSequence("two pings", lambda results, errors: (f"{len(results)} pings", {}), state=st)
    seq.add("a", ping)
    seq.add("b", ping)
    jobs.keep_warm(seq).run_blocking()
    statuses.append(st.status)
    pids.append(pid())
    res.update(pids=pids, statuses=statuses)
    res["fresh_kept"] = ops.close_idle_backend() == ops.IDLE_CHECK_S and pid() == pids[0]
    proc = warm.client._proc
    prefs.keep_backend_s = 0
    ops.close_idle_backend()
    res["idle_closed"] = warm.client is None and proc.wait(timeout=10) is not None
    st = state.JobState()
    job = jobs.keep_warm(ping(st))
    job.start()
    res["restarted"] = pid() is not None and pid() != pids[0]
    job.cancel()
    res["cancel"] = {"status": st.status, "closed": warm.client is None}
    jobs.keep_warm(ping(state.JobState())).run_blocking()
    up = pid() is not None
    try:                                                          # Set up backend replaces the environment
        ops.FACEKEY_OT_setup_backend.make_job(None, bpy.context)
    except sub(pkg, "protocol.errors").FaceKeyError as e:         # background mode: online access is off
        res["setup_refused"] = e.message
    res["setup_closes"] = up and warm.client is None
    res["starts_logged"] = open(params["log"], errors="replace").read().count("=== FaceKey backend start")
    return res


def sc_generate(params) -> dict:
    """"Generate" onto Face (ARKit keys, name map) through the real backend: first with a Motion3DGAN
    weights path that does not exist (the backend's coded error, nothing changed), then with the panel's
    label, seed and weights, then with the weights fields empty (the bundled generators)."""
    pkg = install(params)
    make_character()
    set_backend(pkg, params["python"])
    s = bpy.context.scene.facekey
    s.gen_label, s.gen_seed, s.start_frame = params["label"], params["seed"], params.get("start_frame", 1)
    s.gan_weights, s.s2d_weights = params["gan"] + "_missing", params["s2d"]
    before = snapshot(pkg)
    res = {"missing": {"rc": call_op(bpy.ops.facekey.generate, "INVOKE_DEFAULT"), "state": state_dict(pkg),
                       "unchanged": snapshot(pkg) == before}}
    s.gan_weights = params["gan"]
    rc = call_op(bpy.ops.facekey.generate, "INVOKE_DEFAULT")
    res.update(rc=rc, state=state_dict(pkg), before=before, after=snapshot(pkg), panel=draw_panel())
    if res["state"]["status"] == "done":
        res.update(face_action_report(pkg))
    s.gan_weights = s.s2d_weights = ""
    s.gen_seed += 1
    res["bundled"] = {"rc": call_op(bpy.ops.facekey.generate, "INVOKE_DEFAULT"), "state": state_dict(pkg)}
    if res["bundled"]["state"]["status"] == "done":
        take = importlib.import_module(pkg.__name__ + ".protocol.take").read_take(res["bundled"]["state"]["last_take"])
        res["bundled"].update(face_action_report(pkg), generator=take.header["generator"])
    return res


def sc_capture_settings(params) -> dict:
    """What the Capture operator sends the backend from the panel: the rest frame goes from scene to footage frames."""
    pkg = install(params)
    ops = sub(pkg, "scene_jobs")
    errors = importlib.import_module(pkg.__name__ + ".protocol.errors")
    s = bpy.context.scene.facekey
    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = 24, 1.0
    out = {"default": ops._capture_settings(s), "panel": draw_panel()}
    s.start_frame, s.use_rest_frame, s.rest_frame = 101, True, 130
    out["rest"] = ops._capture_settings(s)
    s.use_rest_frame, s.actor_take = False, "//takes/actor.npz"
    out["actor"] = ops._capture_settings(s)
    out["blend_dir"] = bpy.path.abspath("//")
    s.use_rest_frame, s.actor_take = False, ""
    bpy.context.scene.frame_set(117)
    out["set_rest_rc"] = call_op(bpy.ops.facekey.set_rest_frame)
    out["after_set"] = ops._capture_settings(s)
    s.hands = True
    out["hands"] = ops._capture_settings(s)
    s.hands = False
    seq = os.path.join(params["tmp"], "frames")
    os.makedirs(seq, exist_ok=True)
    for k in range(2):
        open(os.path.join(seq, f"f{k}.png"), "wb").close()
    s.footage, bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = seq, 24, 1.001
    out["sequence"] = ops._capture_settings(s)
    s.footage = ""
    s.use_rest_frame = True
    s.rest_frame = 100
    try:
        ops._capture_settings(s)
    except errors.FaceKeyError as e:
        out["before_footage"] = {"code": e.code, "message": e.message, "hint": e.hint}
    return out


def sc_cancel(params) -> dict:
    """Start a capture job (as the modal operator does), cancel once it is busy, time the backend's exit."""
    pkg = install(params)
    make_character()
    before = snapshot(pkg)
    set_backend(pkg, params["python"])
    s = bpy.context.scene.facekey
    s.footage = params["footage"]
    job = sub(pkg, "scene_jobs").make_capture_job(bpy.context)
    job.start()
    busy_since = None
    t_end = time.monotonic() + 120
    while time.monotonic() < t_end and not job.step():
        st = sub(pkg, "state").STATE
        if st.done >= params.get("busy_frames", 5):
            busy_since = time.monotonic()
            break
        time.sleep(0.02)
    res = {"busy": busy_since is not None, "progress_seen": [sub(pkg, "state").STATE.done, sub(pkg, "state").STATE.total]}
    t0 = time.monotonic()
    if params.get("kill"):
        os.kill(job.client._proc.pid, 9)
        while not job.step() and time.monotonic() - t0 < 10:
            time.sleep(0.02)
    else:
        job.cancel()
    while job.client.alive and time.monotonic() - t0 < 10:
        time.sleep(0.01)
    res["exit_latency_s"] = time.monotonic() - t0
    res["alive"] = job.client.alive
    res["state"] = state_dict(pkg)
    res["before"], res["after"] = before, snapshot(pkg)
    return res


def sc_errors(params) -> dict:
    """no_shape_keys (only Plain selected), backend_missing (python path does not exist)."""
    pkg = install(params)
    out = {}
    make_character()
    set_backend(pkg, params["python"])
    bpy.context.scene.facekey.footage = params["footage"]
    bpy.data.objects["Face"].select_set(False)
    bpy.data.objects["Plain"].facekey_retarget_mode = "NAMEMAP"   # AUTO would pick mesh-level for a keyless mesh
    rc = call_op(bpy.ops.facekey.capture)
    out["no_shape_keys"] = {"rc": rc, "state": state_dict(pkg)}
    bpy.data.objects["Face"].select_set(True)
    set_backend(pkg, "/nonexistent/facekey/bin/python")
    before = snapshot(pkg)
    rc = call_op(bpy.ops.facekey.capture)
    out["backend_missing"] = {"rc": rc, "state": state_dict(pkg), "unchanged": before == snapshot(pkg)}
    targets = sub(pkg, "targets")
    nm = importlib.import_module(pkg.__name__ + ".protocol.namemap").load_name_map("auto")
    try:
        targets.resolve_targets([], nm)
    except importlib.import_module(pkg.__name__ + ".protocol.errors").FaceKeyError as e:
        out["no_targets"] = e.code
    return out


def sc_setup_job(params) -> dict:
    """The Set up backend job: venv with this Python + pip install of the bundled wheel (no deps, offline)."""
    pkg = install(params)
    bs = sub(pkg, "backend_setup")
    env_dir = params["env_dir"]
    job = bs.SetupJob(env_dir, bs.bundled_wheel(os.path.dirname(pkg.__file__)), params["log"],
                      extras="", pip_args=["--no-deps", "--no-index"], python=params["python"])
    messages = []
    job.start()
    while not job.step():
        messages.append(sub(pkg, "state").STATE.message)
        time.sleep(0.05)
    return {"state": state_dict(pkg), "messages": sorted(set(messages)),
            "python": bs.env_python(env_dir), "exists": os.path.isfile(bs.env_python(env_dir)),
            "resolved": bs.backend_python("", env_dir)}


def sc_setup_checks(params) -> dict:
    """Set up backend's guards, without pip: a wheel for another Python is refused before anything is
    made; the commands run without PYTHONPATH & co.; an environment whose set-up never finished is not
    taken for a backend; the version test itself."""
    import subprocess as sp
    import zipfile as zf
    pkg = install(params)
    bs = sub(pkg, "backend_setup")
    wheel = os.path.join(params["tmp"], "facekey-0.1.0-py3-none-any.whl")
    with zf.ZipFile(wheel, "w") as z:
        z.writestr("facekey-0.1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: facekey\n"
                   "Requires-Python: >=3.99\n")
    env_dir = os.path.join(params["tmp"], "env")
    st = sub(pkg, "state").JobState()
    job = bs.SetupJob(env_dir, wheel, params["log"], python=params["python"], state=st)
    job.start()
    job.join(60)
    out = {"refused": {"status": st.status, "code": st.error_code, "message": st.error_message,
                       "hint": st.error_hint, "env_made": os.path.exists(env_dir)}}
    damaged = os.path.join(params["tmp"], "damaged.whl")
    with open(damaged, "wb") as f:
        f.write(b"PK\x03\x04 not really a zip")
    outcomes = []
    for bad in (damaged, None):
        st2 = sub(pkg, "state").JobState()
        j = bs.SetupJob(os.path.join(params["tmp"], "env2"), bad or wheel, params["log"], python=params["python"],
                        state=st2)
        if bad is None:
            j._run = lambda: None                              # a thread that ends without a word
        j.start()
        j._thread.join(30)
        outcomes.append([j.step(), st2.status, st2.error_code])
    out["stuck"] = outcomes
    os.environ["PYTHONPATH"], os.environ["PYTHONHOME"] = "/elsewhere", "/elsewhere"
    env = job._env()
    out["env"] = {"PYTHONPATH" in env, "PYTHONHOME" in env, env.get("PYTHONNOUSERSITE")} == {False, "1"}
    del os.environ["PYTHONPATH"], os.environ["PYTHONHOME"]
    sp.run([params["python"], "-m", "venv", "--without-pip", env_dir], check=True)       # a half-made set-up
    try:
        bs.backend_python("", env_dir)
        out["half"] = None
    except Exception as e:                                                           # noqa: BLE001
        out["half"] = [getattr(e, "code", ""), getattr(e, "message", str(e))]
    import types
    prefs_cls = type(sub(pkg, "preferences").get_prefs())

    def prefs_lines(**values) -> list:
        log: list = []
        me = types.SimpleNamespace(**{"env_dir": "", "python_path": "", "keep_backend_s": 300, **values})
        me.layout = RecordingLayout(log)
        prefs_cls.draw(me, bpy.context)
        return [text for kind, text in log if kind == "label"]
    out["prefs_half"] = prefs_lines(env_dir=env_dir)
    open(os.path.join(env_dir, bs.READY_MARKER), "w").close()
    out["prefs_ready"] = prefs_lines(env_dir=env_dir)
    out["prefs_python"] = prefs_lines(env_dir=env_dir, python_path=params["python"])
    out["fits"] = [bs.python_fits(v, spec) for v, spec in (((3, 11, 7), ">=3.11,<3.12"), ((3, 10, 13), ">=3.11,<3.12"),
                                                           ((3, 12, 0), ">=3.11,<3.12"), ((3, 11, 9), "==3.11.*"),
                                                           ((3, 11, 2), "!=3.11.2"), ((3, 11, 0), ""))]
    return out


def sc_check_backend(params) -> dict:
    """The Check backend button (blocking in background mode), and its job as the UI runs it: started,
    then stepped by the modal timer until the hello."""
    pkg = install(params)
    set_backend(pkg, params["python"])
    rc = call_op(bpy.ops.facekey.check_backend)
    res = {"rc": rc, "state": state_dict(pkg)}
    st = sub(pkg, "state").JobState()
    job = sub(pkg, "jobs").CheckJob(params["python"], params["log"], state=st)
    job.start()
    res["after_start"] = {"finished": job.finished, "status": st.status}
    steps = 0
    while not job.step():
        steps += 1
        time.sleep(0.05)
    res["job"] = {"status": st.status, "message": st.message, "steps": steps, "alive": job.client.alive}
    return res


def sc_realdata_csv(params) -> dict:
    """Open a character .blend, Import CSV onto one object, evaluate its curves at every key, Export CSV."""
    pkg = install(params)
    bpy.ops.wm.open_mainfile(filepath=params["blend"])
    for o in bpy.context.view_layer.objects:
        o.select_set(o.name == params["object"])
    obj = bpy.data.objects[params["object"]]
    bpy.context.view_layer.objects.active = obj
    before = snapshot(pkg)
    rc = call_op(bpy.ops.facekey.import_csv, filepath=params["csv"])
    imported = state_dict(pkg)                   # the import's report (the export, a new job, clears it)
    key = obj.data.shape_keys
    action = key.animation_data.action
    evaluated = {}
    for fc in sub(pkg, "bake.fcurves").action_fcurves(action, key):
        frames = [kp.co[0] for kp in fc.keyframe_points]
        evaluated[fc.data_path] = {"frames": frames, "values": [fc.evaluate(f) for f in frames]}
    rc2 = call_op(bpy.ops.facekey.export_csv, filepath=params["export"])
    return {"rc": rc, "export_rc": rc2, "state": imported, "export_state": state_dict(pkg), "evaluated": evaluated,
            "num_keys": len(key.key_blocks) - 1, "before": before, "after": snapshot(pkg),
            "fps": bpy.context.scene.render.fps / bpy.context.scene.render.fps_base}


def sc_solve(params) -> dict:
    """Character solve onto a head whose keys are not the 52 ARKit units: Solve operator
    (headless = blocking) through the real backend; report the new action's curves."""
    pkg = install(params)
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 24, 1.0
    head = build_mesh(pkg, "Head", params["head_npz"], with_keys=True)
    old = bpy.data.actions.new("OldAction")
    old.use_fake_user = True
    head.select_set(True)
    bpy.context.view_layer.objects.active = head
    set_backend(pkg, params["python"])
    s = scene.facekey
    s.solve_take = params["take"]
    before = snapshot(pkg)
    rc = call_op(bpy.ops.facekey.solve_character, "INVOKE_DEFAULT")
    res = {"rc": rc, "state": state_dict(pkg), "before": before, "after": snapshot(pkg)}
    key = head.data.shape_keys
    if key.animation_data and key.animation_data.action:
        res["action"] = key.animation_data.action.name
        res["curves"] = curves_of(pkg, key.animation_data.action, key)
    return res


def sc_mesh_retarget(params) -> dict:
    """Mesh-level retarget onto a mesh without shape keys (Blender axes: Z up, face toward -Y) through
    the real backend, output ``params["output"]``; report the evaluated geometry at every frame."""
    import numpy as np
    pkg = install(params)
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 24, 1.0
    head = build_mesh(pkg, "Head", params["head_npz"])
    head.select_set(True)
    bpy.context.view_layer.objects.active = head
    set_backend(pkg, params["python"])
    s = scene.facekey
    s.solve_take, s.mesh_output, s.start_frame = params["take"], params["output"], 1
    s.serep_weights = params.get("serep", "")

    def rest():
        co = np.empty(3 * len(head.data.vertices), np.float32)
        head.data.vertices.foreach_get("co", co)
        return co.reshape(-1, 3)

    before = rest()
    rc = call_op(bpy.ops.facekey.mesh_retarget, "INVOKE_DEFAULT")
    res = {"rc": rc, "state": state_dict(pkg), "mesh_changed_m": float(np.abs(rest() - before).max()),
           "modifiers": [m.type for m in head.modifiers]}
    if rc != ["FINISHED"]:
        return res
    cache = sub(pkg, "protocol.pc2").read_pc2(res["state"]["report"]["mesh"]["pc2"])[0]
    evaluated = []
    for i in range(len(cache)):
        scene.frame_set(1 + i)
        ev = head.evaluated_get(bpy.context.evaluated_depsgraph_get())
        co = np.empty(3 * len(ev.data.vertices), np.float32)
        ev.data.vertices.foreach_get("co", co)
        evaluated.append(co.reshape(-1, 3))
    evaluated = np.stack(evaluated)
    res["chin_z"] = evaluated[:, params["chin"], 2].tolist()
    res["max_error_vs_cache_mm"] = float(np.abs(evaluated - cache).max() * 1000)
    key = head.data.shape_keys
    if key is not None:
        res["keys"] = [(kb.name, kb.slider_min) for kb in key.key_blocks]
        res["action"] = key.animation_data.action.name if key.animation_data and key.animation_data.action else None
    return res


def _bake_dipped_take(pkg, junk_jaw: bool, head: str = ""):
    """:func:`make_character`, then bake onto Face (made active) a 40-frame 20 fps take (24 fps scene: keys
    at scene frames 1 + 1.2 i) whose measured confidence dips on frames 11-14 (0.1-0.3) and 30-32 (0.4);
    with ``junk_jaw`` its jawOpen is a smooth wave, 1.0 (junk) on those frames, and its head yaw a ramp
    to 0.4 rad, 1.2 rad (junk) there; ``head``: the name of an Empty made to receive the head rotation too.
    Returns (scene, Face)."""
    import dataclasses

    import numpy as np
    make_character()
    scene, face = bpy.context.scene, bpy.data.objects["Face"]
    if head:
        scene.collection.objects.link(bpy.data.objects.new(head, None))
    take = sub(pkg, "protocol.take").Take.empty(40, 20.0, confidence="measured by the test")
    conf = np.ones(40, np.float32)
    conf[11:15], conf[30:33] = np.linspace(0.1, 0.3, 4), 0.4
    weights = take.weights.copy()
    yaw = np.linspace(0.0, 0.4, 40)
    if junk_jaw:
        jaw = sub(pkg, "protocol.arkit").INDEX["jawOpen"]
        weights[:, jaw] = 0.5 + 0.3 * np.sin(np.arange(40) / 6.0)
        weights[11:15, jaw] = weights[30:33, jaw] = 1.0
        yaw[11:15] = yaw[30:33] = 1.2
    zeros = np.zeros(40)
    take = dataclasses.replace(take, confidence=conf, weights=weights,
                               head_rotation=sub(pkg, "protocol.rotations").ypr_to_quat(yaw, zeros, zeros)
                               .astype(np.float32))
    names = sub(pkg, "protocol.namemap").load_name_map("arkit", None)
    sub(pkg, "bake.apply").bake_take(take, [face], names, scene=scene, source="unsure.mp4",
                                     take_path="/takes/unsure.npz", head_target=bpy.data.objects.get(head))
    bpy.context.view_layer.objects.active = face
    return scene, face


def sc_unsure_frames(params) -> dict:
    """Bake a 20 fps take whose confidence dips on frames 11-14 and 30-32 onto Face (24 fps scene: keys at
    scene frames 1 + 1.2 i), then walk the Take panel's Unsure frame buttons: next, next, next (none
    left), previous, previous (none left), recording the scene frame with its subframe; and the poll
    with no confidence curve on the active object."""
    pkg = install(params)
    scene, face = _bake_dipped_take(pkg, junk_jaw=False)
    scene.frame_set(1)
    steps = []
    for previous in (False, False, False, True, True):
        rc = call_op(bpy.ops.facekey.unsure_frame, previous=previous)
        steps.append([rc, round(scene.frame_current + scene.frame_subframe, 3)])
    panel_face = draw_panel()
    bpy.context.view_layer.objects.active = bpy.data.objects["Plain"]
    return {"steps": steps, "poll_without_curve": bpy.ops.facekey.unsure_frame.poll(),
            "stretches": sub(pkg, "bake.readback").unsure_stretches(face), "panel": draw_panel(),
            "panel_face": panel_face}


def sc_bridge_unsure(params) -> dict:
    """Bake a 20 fps take (24 fps scene: keys at scene frames 1 + 1.2 i) whose jawOpen is a smooth wave except
    on the two stretches the capture is unsure of (frames 11-14 and 30-32, where it is junk: 1.0), edit one
    trusted key by hand, then bridge: the stretch at the playhead when the playhead is in none, the one it
    is in (frame 37, the second stretch), then all of them, twice.  Report every action's keys and the
    evaluated jawOpen on a scene frame inside the first stretch."""
    pkg = install(params)
    scene, face = _bake_dipped_take(pkg, junk_jaw=True)
    key = face.data.shape_keys
    fcurves = sub(pkg, "bake.fcurves")

    def curve_keys(action, path):
        fc = next(fc for fc in fcurves.action_fcurves(action, key) if fc.data_path == path)
        return fcurves.get_keys(fc).tolist()

    jaw_path, conf_path = 'key_blocks["jawOpen"].value', sub(pkg, "bake.shape_keys").CONFIDENCE_PATH
    captured = key.animation_data.action
    fc = next(fc for fc in fcurves.action_fcurves(captured, key) if fc.data_path == jaw_path)
    fc.keyframe_points[5].co.y = 0.95                     # the animator's own edit on a trusted frame
    fc.update()
    before = {"jaw": curve_keys(captured, jaw_path), "conf": curve_keys(captured, conf_path)}
    res = {"captured": captured.name, "actions_before": sorted(a.name for a in bpy.data.actions), "steps": []}
    for frame, scope in ((5, "PLAYHEAD"), (37, "PLAYHEAD"), (1, "ALL"), (1, "ALL")):
        scene.frame_set(frame)
        rc = call_op(bpy.ops.facekey.bridge_unsure, scope=scope)
        action = key.animation_data.action
        res["steps"].append({"rc": rc, "assigned": action.name, "bridged": action.get("facekey_bridged"),
                             "jaw": curve_keys(action, jaw_path), "conf": curve_keys(action, conf_path)})
    scene.frame_set(16)                                   # scene frame 16: take frame 12.5, inside 11-14
    res["evaluated_jaw_at_16"] = key.key_blocks["jawOpen"].value
    res["captured_after"] = {"jaw": curve_keys(captured, jaw_path), "conf": curve_keys(captured, conf_path),
                             "fake_user": captured.use_fake_user}
    res["captured_before"] = before
    res["actions_after"] = sorted(a.name for a in bpy.data.actions)
    try:
        sub(pkg, "bake.bridge").bridge_unsure(face, 5.0)
    except sub(pkg, "protocol.errors").FaceKeyError as e:
        res["error_outside"] = [e.code, e.message, e.hint]
    res["panel_face"] = draw_panel()
    bpy.context.view_layer.objects.active = bpy.data.objects["Plain"]
    res["poll_without_curve"] = bpy.ops.facekey.bridge_unsure.poll()
    res["panel"] = draw_panel()
    return res


def sc_bridge_head(params) -> dict:
    """The bridge scenario's take baked onto Face and, as head rotation, onto the Empty "HeadCtl" (the
    panel's head target, Euler XYZ); Bridge all with the panel's head target set, then once more with it set
    to another object (nothing of that take on it).  Report the head actions' yaw keys (rotation_euler[2])."""
    pkg = install(params)
    scene, face = _bake_dipped_take(pkg, junk_jaw=True, head="HeadCtl")
    ctl = bpy.data.objects["HeadCtl"]
    fcurves = sub(pkg, "bake.fcurves")
    captured = ctl.animation_data.action

    def yaw_keys(action):
        fc = next(fc for fc in fcurves.action_fcurves(action, ctl)
                  if fc.data_path == "rotation_euler" and fc.array_index == 2)
        return fcurves.get_keys(fc).tolist()

    before = yaw_keys(captured)
    s = scene.facekey
    s.head_mode, s.head_object = "OBJECT", ctl
    rc = call_op(bpy.ops.facekey.bridge_unsure, scope="ALL")
    res = {"rc": rc, "captured": captured.name, "head_assigned": ctl.animation_data.action.name,
           "before": before, "after": yaw_keys(ctl.animation_data.action),
           "captured_after": yaw_keys(captured), "fake_user": captured.use_fake_user,
           "message": sub(pkg, "state").STATE.message,
           "key_assigned": face.data.shape_keys.animation_data.action.name}
    other = bpy.data.objects.new("Other", None)
    bpy.context.scene.collection.objects.link(other)
    s.head_object = other
    face.data.shape_keys.animation_data.action = bpy.data.actions[res["key_assigned"].replace(" bridged", "")]
    res["other_rc"] = call_op(bpy.ops.facekey.bridge_unsure, scope="ALL")
    res["other_message"] = sub(pkg, "state").STATE.message
    res["other_has_action"] = other.animation_data is not None
    res["head_after_other"] = ctl.animation_data.action.name
    return res


def sc_bridge_edges(params) -> dict:
    """Bridge a 24 fps take on a 24 fps scene (keys at scene frames 1 + i) whose capture is unsure of frames
    0-2 (the start), 10-12, 15-16 and 27-29 (the end), jawOpen junk (1.0) there, with the jawOpen keys of
    frames 13-14 deleted (as a Decimate would): report the bridged jawOpen keys.  Then the errors, each on a
    fresh bake, nothing written: NLA tweak mode, a take sure of every frame, one unsure of every frame."""
    import dataclasses

    import numpy as np
    pkg = install(params)
    make_character()
    scene, face = bpy.context.scene, bpy.data.objects["Face"]
    key = face.data.shape_keys
    Take = sub(pkg, "protocol.take").Take
    bridge, fcurves = sub(pkg, "bake.bridge"), sub(pkg, "bake.fcurves")
    names = sub(pkg, "protocol.namemap").load_name_map("arkit", None)
    jaw = sub(pkg, "protocol.arkit").INDEX["jawOpen"]
    FaceKeyError = sub(pkg, "protocol.errors").FaceKeyError

    def bake(conf, stem):
        take = Take.empty(len(conf), 24.0, confidence="measured by the test")
        weights = take.weights.copy()
        weights[:, jaw] = 0.4 + 0.3 * np.sin(np.arange(len(conf)) / 4.0)
        weights[np.asarray(conf) < 0.5, jaw] = 1.0
        sub(pkg, "bake.apply").bake_take(dataclasses.replace(take, confidence=np.asarray(conf, np.float32),
                                                             weights=weights),
                                         [face], names, scene=scene, source=f"{stem}.mp4")
        return key.animation_data.action

    def jaw_curve(action):
        return next(fc for fc in fcurves.action_fcurves(action, key) if fc.data_path == 'key_blocks["jawOpen"].value')

    def attempt(**kw):
        names_before = sorted(a.name for a in bpy.data.actions)
        try:
            bridge.bridge_unsure(face, **kw)
            return {"error": None}
        except FaceKeyError as e:
            return {"error": [e.code, e.message, e.hint],
                    "actions_unchanged": sorted(a.name for a in bpy.data.actions) == names_before}

    conf = np.ones(30)
    conf[[0, 1, 2, 10, 11, 12, 15, 16, 27, 28, 29]] = 0.2
    captured = bake(conf, "edges")
    fc = jaw_curve(captured)
    for i in (14, 13):
        fc.keyframe_points.remove(fc.keyframe_points[i])
    res = {"captured": fcurves.get_keys(jaw_curve(captured)).tolist()}
    action, spans, head_action, head_note = bridge.bridge_unsure(face)
    assert head_action is None and head_note is None
    res.update(bridged=fcurves.get_keys(jaw_curve(action)).tolist(), spans=spans, name=action.name)
    interp = np.empty(len(jaw_curve(action).keyframe_points), np.int32)
    jaw_curve(action).keyframe_points.foreach_get("interpolation", interp)
    res["interpolation"] = interp.tolist()
    res["again"] = attempt()
    res["again_at_playhead"] = attempt(at_frame=12.0)

    tweaked = bake(conf, "tweak")
    track = key.animation_data.nla_tracks.new()
    track.strips.new("take", 1, tweaked)
    key.animation_data.action = None
    track.strips[0].select = True
    key.animation_data.use_tweak_mode = True
    res["tweak_mode"] = {"entered": bool(key.animation_data.use_tweak_mode), **attempt()}
    key.animation_data.use_tweak_mode = False
    bake(np.ones(30), "sure")
    res["sure"] = attempt()
    res["sure_if_unsure"] = bridge.bridge_if_unsure(face)
    bake(np.full(30, 0.1), "lost")
    res["unsure"] = attempt()
    return res


class RecordingLayout:
    """Stands in for a ``UILayout`` (there is no UI in background mode): records what a panel draws, reads
    every property it shows and checks every operator it names exists."""

    def __init__(self, log: list):
        self.log, self.enabled = log, True

    def label(self, text="", icon="NONE"):
        self.log.append(["label", text])

    def prop(self, data, prop, **kw):
        getattr(data, prop)
        self.log.append(["prop", prop])

    def prop_search(self, data, prop, *args, **kw):
        self.log.append(["prop", prop])

    def operator(self, idname, **kw):
        import types
        assert hasattr(bpy.ops.facekey, idname.split(".")[1]), idname
        self.log.append(["operator", idname])
        return types.SimpleNamespace()          # the operator's properties, as the panel sets them

    def progress(self, **kw):
        self.log.append(["progress", kw.get("text", "")])

    def box(self):
        return RecordingLayout(self.log)

    def row(self, **kw):
        return RecordingLayout(self.log)

    column = row


def draw_panel() -> list:
    """What the FaceKey sidebar draws now, the main panel then each sub-panel (opened):
    [[kind, text or name], ...], each sub-panel announced by ["panel", its label]."""
    import types
    log: list = []
    for name in ("FACEKEY_PT_main", "FACEKEY_PT_take", "FACEKEY_PT_retarget", "FACEKEY_PT_generate"):
        panel = getattr(bpy.types, name)
        if name != "FACEKEY_PT_main":
            assert panel.bl_parent_id == "FACEKEY_PT_main", name
            log.append(["panel", panel.bl_label])
        panel.draw(types.SimpleNamespace(layout=RecordingLayout(log)), bpy.context)
    return log


def build_mesh(pkg, name: str, head_npz: str, with_keys: bool = False):
    """A mesh object from ``head_npz`` (vertices in Blender axes, triangles; with ``with_keys``: the
    head-frame npz of ``head_builder`` with ``unit_deltas`` and ``names``), linked to the scene."""
    import numpy as np
    with np.load(head_npz) as z:
        if with_keys:
            return sub(pkg, "head_builder").build_head_object(name, z["vertices"], z["triangles"], z["unit_deltas"],
                                             [str(n) for n in z["names"]])
        mesh = bpy.data.meshes.new(name)
        mesh.from_pydata(z["vertices"].tolist(), [], z["triangles"].tolist())
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj



def object_state(pkg, obj) -> dict:
    """What a preview must leave byte-identical on ``obj``: mesh vertices, key blocks (data, values, ranges),
    animation data of the object and its keys, modifiers, transform, and every action's curves."""
    import hashlib

    import numpy as np

    def digest(coll) -> str:
        co = np.empty(3 * len(coll), np.float32)
        coll.foreach_get("co", co)
        return hashlib.sha256(co.tobytes()).hexdigest()

    key = obj.data.shape_keys
    action = lambda idb: idb.animation_data.action.name if idb is not None and idb.animation_data and idb.animation_data.action else None  # noqa: E731
    return {"mesh": obj.data.name, "vertices": digest(obj.data.vertices),
            "keys": [(kb.name, digest(kb.data), kb.value, kb.slider_min, kb.slider_max, kb.mute)
                     for kb in key.key_blocks] if key else None,
            "object_action": action(obj), "key_action": action(key), "modifiers": [m.name for m in obj.modifiers],
            "matrix": [list(r) for r in obj.matrix_world],
            "actions": {a.name: curves_of(pkg, a) for a in bpy.data.actions}}


def data_names() -> dict:
    return {"objects": sorted(o.name for o in bpy.data.objects), "meshes": sorted(m.name for m in bpy.data.meshes),
            "collections": sorted(c.name for c in bpy.data.collections),
            "shape_keys": len(bpy.data.shape_keys), "actions": sorted(a.name for a in bpy.data.actions)}


def sc_apply_take(params) -> dict:
    """"Apply take to selected" onto Face (ARKit keys, AUTO), Head (no keys, MESH) and Plain (a triangle,
    AUTO -> mesh-level, which must fail alone) through the real backend."""
    import numpy as np
    pkg = install(params)
    face, plain = make_character()
    head = build_mesh(pkg, "Head", params["head_npz"])
    head.facekey_retarget_mode = "MESH"
    head.select_set(True)
    set_backend(pkg, params["python"])
    s = bpy.context.scene.facekey
    s.solve_take, s.start_frame, s.mesh_output = params["take"], 1, "MESH_CACHE"
    nm = importlib.import_module(pkg.__name__ + ".protocol.namemap").load_name_map("auto")
    rows = [(o.name, mode, why) for o, mode, why in sub(pkg, "panels").target_rows(bpy.context.selected_objects, nm)]
    panel_before = draw_panel()
    rest = np.empty(3 * len(head.data.vertices), np.float32)
    head.data.vertices.foreach_get("co", rest)
    before = snapshot(pkg)
    rc = call_op(bpy.ops.facekey.apply_take, "INVOKE_DEFAULT")
    res = {"rc": rc, "state": state_dict(pkg), "rows": rows, "before": before, "after": snapshot(pkg),
           "head_modifiers": [(m.type, m.filepath, m.frame_start) for m in head.modifiers if m.type == "MESH_CACHE"],
           "plain_modifiers": [m.type for m in plain.modifiers], "panel_before": panel_before,
           "panel_after": draw_panel()}
    now = np.empty_like(rest)
    head.data.vertices.foreach_get("co", now)
    res["head_mesh_changed_m"] = float(np.abs(now - rest).max())
    if face.data.shape_keys.animation_data.action.name != "OldAction":
        res.update(face_action_report(pkg))
    return res


def _link_library_face(path: str):
    """Save a mesh with ARKit keys into ``path``, then link its object into the open file (linked data)."""
    main = bpy.data.filepath
    me = bpy.data.meshes.new("LibFace")
    me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 0, 1)], [], [(0, 1, 2)])
    ob = bpy.data.objects.new("LibFace", me)
    ob.shape_key_add(name="Basis")
    ob.shape_key_add(name="jawOpen").data[0].co = (0, 0, 0.1)
    bpy.data.libraries.write(path, {ob}, fake_user=True)
    bpy.data.objects.remove(ob)
    bpy.data.meshes.remove(me)
    with bpy.data.libraries.load(path, link=True) as (src, dst):
        dst.objects = ["LibFace"]
    bpy.context.scene.collection.objects.link(dst.objects[0])
    assert not main or bpy.data.filepath == main
    return dst.objects[0]


def sc_bake_guards(params) -> dict:
    """bake_take on what it must not break: an armature whose other bone is animated (head bone target),
    the same take baked twice, shape keys in NLA tweak mode, linked shape keys, two objects on one mesh,
    a previous action played at influence 0.2 / Add."""
    import math

    import numpy as np
    pkg = install(params)
    face, _ = make_character()
    scene = bpy.context.scene
    take_mod = importlib.import_module(pkg.__name__ + ".protocol.take")
    nm = importlib.import_module(pkg.__name__ + ".protocol.namemap").load_name_map("auto")
    bake_take = sub(pkg, "bake.apply").bake_take
    take = take_mod.Take.empty(20, 24.0)
    take.weights[:, 17] = np.linspace(0, 1, 20)                       # jawOpen
    take.head_rotation[:] = [math.cos(0.1), 0.0, math.sin(0.1), 0.0]  # 0.2 rad about the head's up axis
    arm_data = bpy.data.armatures.new("Rig")
    arm = bpy.data.objects.new("Rig", arm_data)
    scene.collection.objects.link(arm)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    for name, y in (("Spine", 0.0), ("Head", 1.0)):
        b = arm_data.edit_bones.new(name)
        b.head, b.tail = (0, 0, y), (0, 0, y + 1)
    bpy.ops.object.mode_set(mode="OBJECT")
    spine = arm.pose.bones["Spine"]
    for f, x in ((1, 0.0), (20, 1.0)):
        spine.rotation_quaternion = (math.cos(x / 2), math.sin(x / 2), 0, 0)
        spine.keyframe_insert("rotation_quaternion", frame=f)
    user_action = arm.animation_data.action.name
    arm.animation_data.action_influence = 0.5       # no NLA: Blender plays the action whole all the same
    face.data.shape_keys.animation_data.action_influence = 0.2
    face.data.shape_keys.animation_data.action_blend_type = "ADD"
    twin = bpy.data.objects.new("Twin", face.data)
    scene.collection.objects.link(twin)
    tweak = face.copy()
    tweak.name, tweak.data = "Tweaked", face.data.copy()
    scene.collection.objects.link(tweak)
    tad = tweak.data.shape_keys.animation_data
    track = tad.nla_tracks.new()
    track.strips.new("old", 1, tad.action)
    tad.action = None
    track.strips[0].select = True
    tad.nla_tracks.active = track
    tad.use_tweak_mode = True
    linked = _link_library_face(params["library"])

    def spine_angle(frame):
        scene.frame_set(frame)
        return 2 * math.acos(max(-1.0, min(1.0, arm.pose.bones["Spine"].rotation_quaternion[0])))

    def head_quat(frame):
        scene.frame_set(frame)
        return list(arm.pose.bones["Head"].rotation_quaternion)

    res = {"tweak_mode": tad.use_tweak_mode, "linked": linked.data.shape_keys.library is not None,
           "spine_deg_before": [math.degrees(spine_angle(f)) for f in (1, 10, 20)]}
    fkey = face.data.shape_keys
    fkey.key_blocks["mouthSmileLeft"].mute = True
    drv = fkey.key_blocks["browInnerUp"].driver_add("value")
    drv.driver.expression = "0.25"
    flat = face.copy()
    flat.name, flat.data = "Absolute", face.data.copy()
    flat.data.shape_keys.use_relative = False
    scene.collection.objects.link(flat)
    scene.frame_set(1)
    actions_before = sorted(a.name for a in bpy.data.actions)
    first = bake_take(take, [face, twin, tweak, linked, flat], nm, scene=scene, source="t.npz", head_target=arm,
                      head_bone="Head")
    res["first"] = {"objects": sorted(first["objects"]), "skipped": first["skipped"], "head": first["head"],
                    "warnings": first["objects"]["Face"]["warnings"]}
    flat.facekey_retarget_mode = "AUTO"
    res["absolute_mode"] = list(sub(pkg, "targets").target_mode(flat, nm))
    res["spine_deg_after"] = [math.degrees(spine_angle(f)) for f in (1, 10, 20)]
    res["head_after_first"] = head_quat(10)
    kad = face.data.shape_keys.animation_data
    res["influence"], res["blend"] = kad.action_influence, kad.action_blend_type
    second = bake_take(take, [face], nm, scene=scene, source="t.npz", head_target=arm, head_bone="Head")
    res["head_after_second"] = head_quat(10)
    res["spine_deg_after_second"] = [math.degrees(spine_angle(f)) for f in (1, 10, 20)]
    res["second_head"] = second["head"]
    res["user_action_kept"] = bpy.data.actions[user_action].use_fake_user
    res["new_actions"] = sorted(set(a.name for a in bpy.data.actions) - set(actions_before))
    res["tweak_still"] = tad.use_tweak_mode
    return res


def sc_preview(params) -> dict:
    """"Preview frame" at each scene frame of ``params["frames"]`` on a target built per ``params["kind"]``
    (namemap: Face of make_character; solve: a keyed head with an action; mesh: a keyless head), then
    "Clear preview"; report the copy and whether the target stayed byte-identical."""
    import numpy as np
    pkg = install(params)
    kind = params["kind"]
    if kind == "namemap":
        target, _ = make_character()
    else:
        bpy.ops.wm.read_homefile(use_empty=True)
        target = build_mesh(pkg, params.get("name", "Head"), params["head_npz"], with_keys=kind == "solve")
        if kind == "solve":
            kb = target.data.shape_keys.key_blocks["Mouth_Open"]
            target.data.shape_keys.animation_data_create().action = bpy.data.actions.new("OldAction")
            for f, v in ((1, 0.0), (30, 0.7)):
                kb.value = v
                kb.keyframe_insert("value", frame=f)
            kb.value = 0.0
    target.facekey_retarget_mode = params.get("mode", "AUTO")
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 24, 1.0
    target.location = (0.5, 0.0, 0.0)
    bpy.context.view_layer.update()
    for o in bpy.context.view_layer.objects:
        o.select_set(o == target)
    bpy.context.view_layer.objects.active = target
    if params.get("python"):
        set_backend(pkg, params["python"])
    s = scene.facekey
    s.solve_take, s.start_frame = params["take"], params.get("start_frame", 1)
    names_before = data_names()
    previews = []
    for frame in params["frames"]:
        scene.frame_set(frame)          # evaluated as the user sees it (animated key values written back)
        before = object_state(pkg, target)
        rc = call_op(bpy.ops.facekey.preview_frame, "INVOKE_DEFAULT")
        after = object_state(pkg, target)
        out = {"frame": frame, "rc": rc, "state": state_dict(pkg), "changed": [k for k in before if after[k] != before[k]],
               "preview_objects": sorted(o.name for o in bpy.data.objects if o.name.endswith(".FaceKeyPreview"))}
        copy = bpy.data.objects.get(target.name + ".FaceKeyPreview")
        if copy is not None:
            key = copy.data.shape_keys
            co = np.empty(3 * len(copy.data.vertices), np.float32)
            copy.data.vertices.foreach_get("co", co)
            xs = [(target.matrix_world @ __import__("mathutils").Vector(c)).x for c in target.bound_box]
            out.update(values={kb.name: kb.value for kb in key.key_blocks} if key else None,
                       vertices=co.reshape(-1, 3).tolist() if kind == "mesh" else None,
                       same_mesh=copy.data == target.data, mesh_name=copy.data.name,
                       collections=[c.name for c in copy.users_collection],
                       offset_x=copy.matrix_world.translation.x - target.matrix_world.translation.x,
                       width=max(xs) - min(xs), object_anim=copy.animation_data is not None,
                       key_anim=key is not None and key.animation_data is not None,
                       modifiers=[m.type for m in copy.modifiers], panel=draw_panel())
        previews.append(out)
    before = object_state(pkg, target)
    rc = call_op(bpy.ops.facekey.clear_preview)
    after = object_state(pkg, target)
    res = {"previews": previews, "clear_rc": rc, "names_before": names_before, "names_after_clear": data_names(),
           "changed_by_clear": [k for k in before if after[k] != before[k]]}
    if kind == "mesh":
        rest = np.empty(3 * len(target.data.vertices), np.float32)
        target.data.vertices.foreach_get("co", rest)
        res["rest"] = rest.reshape(-1, 3).tolist()
    return res


def sc_preview_copies(params) -> dict:
    """Name-map preview of Face, then what a user does with the copy: duplicate it (Shift+D) and rename
    another to keep those poses, preview with the live copy itself active, preview Face again, clear."""
    pkg = install(params)
    face, _ = make_character()
    scene = bpy.context.scene
    scene.facekey.solve_take = params["take"]
    view = bpy.context.view_layer

    def preview(obj) -> list:
        for o in view.objects:
            o.select_set(o == obj)
        view.objects.active = obj
        return call_op(bpy.ops.facekey.preview_frame, "INVOKE_DEFAULT")

    res = {"first": preview(face)}
    copy = bpy.data.objects["Face.FaceKeyPreview"]
    for o in view.objects:
        o.select_set(o == copy)
    view.objects.active = copy
    bpy.ops.object.duplicate()
    res["duplicate"] = view.objects.active.name
    kept = copy.copy()
    kept.data = copy.data.copy()
    scene.collection.objects.link(kept)
    kept.name = kept.data.name = "Face_open_pose"
    res["on_copy"] = preview(copy)
    res["on_copy_state"] = state_dict(pkg)
    res["after_on_copy"] = sorted(o.name for o in bpy.data.objects)
    res["again"] = preview(face)
    res["after_again"] = sorted(o.name for o in bpy.data.objects)
    res["clear"] = call_op(bpy.ops.facekey.clear_preview)
    res["after_clear"] = sorted(o.name for o in bpy.data.objects)
    res["meshes_after_clear"] = sorted(m.name for m in bpy.data.meshes)
    return res


SCENARIOS = {n[3:]: f for n, f in dict(globals()).items() if n.startswith("sc_")}


def main() -> None:
    argv = sys.argv[sys.argv.index("--") + 1:]
    name, params_path, result_path = argv
    with open(params_path, encoding="utf-8") as f:
        params = json.load(f)
    result = SCENARIOS[name](params)
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(result, f)


main()
