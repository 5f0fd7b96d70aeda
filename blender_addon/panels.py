"""The FaceKey sidebar panel (3D View > Sidebar > FaceKey)."""
from __future__ import annotations

import bpy

from .state import STATE

__all__ = ["register", "unregister", "target_summary"]


def target_summary(objects) -> tuple[list[str], dict[str, str]]:
    """(names of usable targets, {skipped name: reason}) for the panel, without raising."""
    usable, skipped = [], {}
    for obj in objects:
        key = obj.data.shape_keys if obj.type == "MESH" else None
        if obj.type != "MESH":
            skipped[obj.name] = f"not a mesh ({obj.type.lower()})"
        elif key is None or len(key.key_blocks) < 2:
            skipped[obj.name] = "has no shape keys"
        else:
            usable.append(obj.name)
    return usable, skipped


class FACEKEY_PT_main(bpy.types.Panel):
    bl_label = "FaceKey"
    bl_idname = "FACEKEY_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "FaceKey"

    def draw(self, context):
        s = context.scene.facekey
        layout = self.layout
        layout.prop(s, "footage")

        box = layout.box()
        usable, skipped = target_summary(context.selected_objects)
        box.label(text=f"Targets: {len(usable)}", icon="SHAPEKEY_DATA")
        for name in usable:
            box.label(text=name)
        for name, why in skipped.items():
            box.label(text=f"{name}: skipped, {why}", icon="INFO")

        layout.prop(s, "name_map")
        if s.name_map == "custom":
            layout.prop(s, "map_path")
        col = layout.column(align=True)
        col.prop(s, "start_frame")
        col.prop(s, "smoothing")
        col.prop(s, "face_index")
        layout.prop(s, "head_mode")
        if s.head_mode != "NONE":
            layout.prop(s, "head_object")
            if s.head_mode == "BONE" and s.head_object is not None and s.head_object.type == "ARMATURE":
                layout.prop_search(s, "head_bone", s.head_object.pose, "bones")

        running = STATE.status == "running"
        row = layout.row(align=True)
        row.enabled = not running
        row.operator("facekey.capture", icon="REC")
        if running:
            _draw_progress(layout)
            layout.operator("facekey.cancel", icon="CANCEL")
        row = layout.row(align=True)
        row.operator("facekey.import_csv", icon="IMPORT")
        row.operator("facekey.export_csv", icon="EXPORT")

        solve = layout.box()
        solve.label(text="Retarget onto active", icon="MOD_MESHDEFORM")
        solve.prop(s, "solve_take")
        solve.prop(s, "solve_keys")
        solve.prop(s, "solve_exclude")
        row = solve.row()
        row.enabled = not running and context.active_object is not None
        row.operator("facekey.solve_character", icon="SHAPEKEY_DATA")
        solve.prop(s, "mesh_output")
        row = solve.row()
        row.enabled = not running and context.active_object is not None
        row.operator("facekey.mesh_retarget", icon="MOD_MESHDEFORM")

        if STATE.status in ("error", "cancelled"):
            err = layout.box()
            err.label(text=f"{STATE.error_code}: {STATE.error_message}", icon="ERROR")
            if STATE.error_hint:
                err.label(text=STATE.error_hint, icon="INFO")
            err.operator("facekey.open_log", icon="TEXT")
        elif STATE.status == "done":
            layout.label(text=STATE.message, icon="CHECKMARK")
            _draw_report(layout, s)


def _draw_progress(layout) -> None:
    text = f"{STATE.message} ({STATE.done}/{STATE.total})" if STATE.total else STATE.message
    if hasattr(layout, "progress"):  # Blender 4.0+
        layout.progress(factor=STATE.fraction, type="BAR", text=text)
    else:
        layout.label(text=f"{100 * STATE.fraction:.0f}%  {text}")


def _draw_report(layout, s) -> None:
    mesh = STATE.report.get("mesh")
    if mesh and "keys" in mesh:
        layout.label(text=f"{mesh['keys']} corrective keys, {100 * mesh['variance']:.1f}% of the motion, "
                          f"max error {mesh['max_error_mm']:.2f} mm")
    objects = STATE.report.get("objects", {})
    if not objects:
        return
    layout.prop(s, "show_details", toggle=True)
    if not s.show_details:
        return
    for name, info in objects.items():
        box = layout.box()
        box.label(text=f"{name}: {info['action']}, {len(info['mapped'])} keys animated")
        if info["unmapped_units"]:
            box.label(text=f"Units without a key: {', '.join(info['unmapped_units'][:6])}"
                      + (" ..." if len(info["unmapped_units"]) > 6 else ""))
        if info["unused_keys"]:
            box.label(text=f"Keys not animated: {', '.join(info['unused_keys'][:6])}"
                      + (" ..." if len(info["unused_keys"]) > 6 else ""))
    solve = STATE.report.get("solve")
    if solve:
        layout.label(text=f"Motion left unreproduced: {100 * solve['take_residual']:.0f}%")
    for name, why in STATE.report.get("skipped", {}).items():
        layout.label(text=f"{name}: skipped, {why}", icon="INFO")


_CLASSES = (FACEKEY_PT_main,)

register, unregister = bpy.utils.register_classes_factory(_CLASSES)
