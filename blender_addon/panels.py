"""The FaceKey sidebar (3D View > Sidebar > FaceKey): the main panel (footage, targets, Capture, status) and
its sub-panels Take, Retarget onto active and Generate expression (closed until opened)."""
from __future__ import annotations

import bpy

from .state import STATE

__all__ = ["PANELS", "register", "unregister", "target_rows"]


def _panel_name_map(settings):
    """The scene's name map for display; the built-in auto map when a custom file cannot be read."""
    from .protocol.errors import FaceKeyError
    from .protocol.namemap import load_name_map
    try:
        return load_name_map(settings.name_map, bpy.path.abspath(settings.map_path)
                             if settings.name_map == "custom" else None)
    except FaceKeyError:
        return load_name_map("auto")


def target_rows(objects, name_map) -> list[tuple[object, str | None, str | None]]:
    """``(object, mode it gets, None)`` or ``(object, None, reason it is skipped)`` per object, without raising."""
    from .targets import target_mode
    return [(obj, *target_mode(obj, name_map)) for obj in objects]


def _draw_targets(layout, context, s) -> None:
    """One row per selected object: name, its retarget mode dropdown, and what it resolves to."""
    from .targets import MODE_LABELS
    box = layout.box()
    rows = target_rows(context.selected_objects, _panel_name_map(s))
    box.label(text=f"Targets: {sum(1 for _, mode, _ in rows if mode)}", icon="SHAPEKEY_DATA")
    for obj, mode, why in rows:
        row = box.row(align=True)
        row.label(text=obj.name, icon="INFO" if why else "OBJECT_DATA")
        if obj.type == "MESH":
            row.prop(obj, "facekey_retarget_mode", text="")
        if why:
            box.label(text=f"  skipped: {why}")
        elif obj.facekey_retarget_mode == "AUTO":
            row.label(text=f"-> {MODE_LABELS[mode]}")


class _FaceKeyPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "FaceKey"


class _SubPanel(_FaceKeyPanel):
    bl_parent_id = "FACEKEY_PT_main"


def _running() -> bool:
    return STATE.status == "running"


def _job_row(layout, context=None, align: bool = False):
    """A row for job buttons: greyed out while a job runs, and with ``context`` also without an active object."""
    row = layout.row(align=align)
    row.enabled = not _running() and (context is None or context.active_object is not None)
    return row


class FACEKEY_PT_main(_FaceKeyPanel, bpy.types.Panel):
    """Footage, targets and capture settings, the Capture button, and the status of the last job."""
    bl_label = "FaceKey"
    bl_idname = "FACEKEY_PT_main"

    def draw(self, context):
        s = context.scene.facekey
        layout = self.layout
        layout.prop(s, "footage")

        _draw_targets(layout, context, s)

        layout.prop(s, "name_map")
        if s.name_map == "custom":
            layout.prop(s, "map_path")
        col = layout.column(align=True)
        col.prop(s, "start_frame")
        col.prop(s, "smoothing")
        col.prop(s, "face_index")
        row = layout.row(align=True)
        row.prop(s, "use_rest_frame")
        sub = row.row(align=True)
        sub.enabled = s.use_rest_frame
        sub.prop(s, "rest_frame")
        row.operator("facekey.set_rest_frame", text="", icon="TIME")
        layout.prop(s, "actor_take")
        layout.prop(s, "hands")
        layout.prop(s, "head_mode")
        if s.head_mode != "NONE":
            layout.prop(s, "head_object")
            if s.head_mode == "BONE" and s.head_object is not None and s.head_object.type == "ARMATURE":
                layout.prop_search(s, "head_bone", s.head_object.pose, "bones")

        _job_row(layout, align=True).operator("facekey.capture", icon="REC")
        if _running():
            draw_progress(layout)
            layout.operator("facekey.cancel", icon="CANCEL")
        row = layout.row(align=True)
        row.operator("facekey.import_csv", icon="IMPORT")
        row.operator("facekey.export_csv", icon="EXPORT")

        if STATE.status in ("error", "cancelled"):
            err = layout.box()
            err.label(text=f"{STATE.error_code}: {STATE.error_message}", icon="ERROR")
            if STATE.error_hint:
                err.label(text=STATE.error_hint, icon="INFO")
            err.operator("facekey.open_log", icon="TEXT")
        elif STATE.status == "done":
            layout.label(text=STATE.message, icon="CHECKMARK")
            _draw_report(layout, s)


class FACEKEY_PT_take(_SubPanel, bpy.types.Panel):
    """The take to apply (the Take field, or the last take), the one-frame preview, and jumps to the frames
    the active object's take is unsure of and bridges over them."""
    bl_label = "Take"
    bl_idname = "FACEKEY_PT_take"

    def draw(self, context):
        s = context.scene.facekey
        layout = self.layout
        layout.prop(s, "solve_take")
        _job_row(layout).operator("facekey.apply_take", icon="PLAY")
        row = _job_row(layout, context, align=True)
        row.operator("facekey.preview_frame", icon="HIDE_OFF")
        row.operator("facekey.clear_preview", icon="TRASH")
        from .bake.bridge import BRIDGED_PROP
        from .bake.readback import key_action, unsure_stretches
        stretches = unsure_stretches(context.active_object)
        action = key_action(context.active_object)[1]
        bridged = ", bridged" if action is not None and BRIDGED_PROP in action else ""
        row = layout.row(align=True)
        row.label(text=f"Unsure frames: {len(stretches)} stretch(es){bridged}" if stretches else "Unsure frames")
        row.operator("facekey.unsure_frame", text="", icon="TRIA_LEFT").previous = True
        row.operator("facekey.unsure_frame", text="", icon="TRIA_RIGHT").previous = False
        row = layout.row(align=True)
        row.operator("facekey.bridge_unsure", text="Bridge all", icon="IPO_LINEAR").scope = "ALL"
        row.operator("facekey.bridge_unsure", text="Bridge at playhead").scope = "PLAYHEAD"


class FACEKEY_PT_retarget(_SubPanel, bpy.types.Panel):
    """Character solve and mesh-level retarget onto the active object."""
    bl_label = "Retarget onto active"
    bl_idname = "FACEKEY_PT_retarget"

    def draw(self, context):
        s = context.scene.facekey
        layout = self.layout
        layout.prop(s, "solve_keys")
        layout.prop(s, "solve_exclude")
        _job_row(layout, context).operator("facekey.solve_character", icon="SHAPEKEY_DATA")
        layout.prop(s, "mesh_output")
        layout.prop(s, "serep_weights")
        _job_row(layout, context).operator("facekey.mesh_retarget", icon="MOD_MESHDEFORM")


class FACEKEY_PT_generate(_SubPanel, bpy.types.Panel):
    """A labelled expression clip from the trained generators, applied to the selected objects."""
    bl_label = "Generate expression"
    bl_idname = "FACEKEY_PT_generate"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        s = context.scene.facekey
        layout = self.layout
        row = layout.row(align=True)
        row.prop(s, "gen_label", text="")
        row.prop(s, "gen_seed")
        row.prop(s, "gen_mirror", toggle=True)
        layout.prop(s, "gan_weights")
        layout.prop(s, "s2d_weights")
        _job_row(layout).operator("facekey.generate", icon="SHADERFX")


def draw_progress(layout) -> None:
    text = f"{STATE.message} ({STATE.done}/{STATE.total})" if STATE.total else STATE.message
    if hasattr(layout, "progress"):  # Blender 4.0+
        layout.progress(factor=STATE.fraction, type="BAR", text=text)
    else:
        layout.label(text=f"{100 * STATE.fraction:.0f}%  {text}")


def _draw_mesh(layout, name: str, mesh: dict) -> None:
    prefix = f"{name}: " if name else ""
    if "keys" in mesh:
        layout.label(text=f"{prefix}{mesh['keys']} corrective keys, {100 * mesh['variance']:.1f}% of the motion, "
                          f"max error {mesh['max_error_mm']:.2f} mm")
    else:
        layout.label(text=f"{prefix}Mesh Cache, up to {mesh['max_displacement_mm']:.1f} mm of motion")


def _draw_report(layout, s, report: dict | None = None) -> None:
    """The finished job's report; a folder capture's (``"takes"``) as one block per clip."""
    report = STATE.report if report is None else report
    for clip, take in report.get("takes", {}).items():
        box = layout.box()
        if "error" in take:
            box.label(text=f"{clip}: not captured, {take['error']['code']}: {take['error']['message']}", icon="ERROR")
            if take["error"].get("hint"):
                box.label(text=f"  {take['error']['hint']}")
            continue
        box.label(text=f"{clip}: {take['frames']} frames, {take['message']}", icon="FILE_MOVIE")
        _draw_report(box, s, take)
    if "face_covered_frames" in report:
        layout.label(text=f"A hand covers the face on {report['face_covered_frames']} frame(s): not read as expression",
                     icon="VIEW_PAN")
    if report.get("low_confidence_frames"):
        layout.label(text=f"Unsure of {report['low_confidence_frames']} frame(s): Take > Unsure frames jumps to "
                          "them", icon="ERROR")
    meshes = report.get("meshes") or ({"": report["mesh"]} if "mesh" in report else {})
    for name, mesh in meshes.items():
        _draw_mesh(layout, name, mesh)
    generated = report.get("generated")
    if generated:
        top = sorted(generated["apex"].items(), key=lambda kv: -kv[1])[:3]
        layout.label(text=f"Generated {generated['label']} (seed {generated['seed']}, {generated['frames']} frames): "
                          + (", ".join(f"{k} {v:.2f}" for k, v in top) or "no unit above 0.05"), icon="SHADERFX")
    preview = report.get("preview")
    if preview:
        layout.label(text=f"Preview: take frame {preview['take_frame']} on {preview['object']}", icon="HIDE_OFF")
    objects = report.get("objects", {})
    if objects:
        layout.prop(s, "show_details", toggle=True)
    if objects and s.show_details:
        _draw_objects(layout, objects)
    solves = report.get("solves") or ({"": report["solve"]} if "solve" in report else {})
    for name, solve in solves.items():
        layout.label(text=f"{name + ': ' if name else ''}Motion left unreproduced: {100 * solve['take_residual']:.0f}%")
    errors = report.get("errors", {})
    for name, why in report.get("skipped", {}).items():
        layout.label(text=f"{name}: skipped, {why}", icon="ERROR" if name in errors else "INFO")
        if errors.get(name, {}).get("hint"):
            layout.label(text=f"  {errors[name]['hint']}")


def _draw_objects(layout, objects: dict) -> None:
    for name, info in objects.items():
        box = layout.box()
        box.label(text=f"{name}: {info['action']}, {len(info['mapped'])} keys animated")
        if info["unmapped_units"]:
            box.label(text=f"Units without a key: {', '.join(info['unmapped_units'][:6])}"
                      + (" ..." if len(info["unmapped_units"]) > 6 else ""))
        if info["unused_keys"]:
            box.label(text=f"Keys not animated: {', '.join(info['unused_keys'][:6])}"
                      + (" ..." if len(info["unused_keys"]) > 6 else ""))
        for line in info.get("warnings", []):
            box.label(text=line, icon="ERROR")


#: Parents before children (the registration order Blender needs).
PANELS = (FACEKEY_PT_main, FACEKEY_PT_take, FACEKEY_PT_retarget, FACEKEY_PT_generate)
_CLASSES = PANELS

register, unregister = bpy.utils.register_classes_factory(_CLASSES)
