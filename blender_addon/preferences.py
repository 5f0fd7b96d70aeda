"""Add-on preferences (backend location), the per-scene FaceKey settings and the per-object retarget mode."""
from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from .protocol.labels import LABELS
from .state import STATE
from .targets import MODE_ITEMS

__all__ = ["FaceKeyPreferences", "FaceKeySceneSettings", "get_prefs", "configured_backend_python", "register",
           "unregister"]

ADDON = __package__


def configured_backend_python(prefs) -> str:
    """The backend Python the preferences ``prefs`` name: their Backend Python, else their environment
    folder's (``backend_setup.backend_python``; ``backend_missing`` if there is none)."""
    from .backend_setup import backend_python
    return backend_python(bpy.path.abspath(prefs.python_path), bpy.path.abspath(prefs.env_dir))


class FaceKeyPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON

    env_dir: StringProperty(
        name="Backend environment", subtype="DIR_PATH", default="",
        description="Folder of the backend virtual environment (empty: FaceKey's user data folder / facekey_backend)")
    python_path: StringProperty(
        name="Backend Python", subtype="FILE_PATH", default="",
        description="Python of an existing FaceKey backend environment, used as is (overrides the folder above)")
    keep_backend_s: IntProperty(
        name="Keep backend running (s)", default=300, min=0, soft_max=3600,
        description="Seconds the backend stays up after a job, so the next Capture, Solve or Preview starts at "
                    "once instead of after a ~3 s start (0 = close it after every job)")

    def draw(self, context):
        from .backend_setup import default_env_dir
        from .panels import draw_progress
        from .protocol.errors import FaceKeyError
        layout = self.layout
        layout.prop(self, "env_dir")
        if not self.env_dir:
            layout.label(text=f"Default: {default_env_dir()}")
        layout.prop(self, "python_path")
        if self.python_path:
            layout.label(text="Backend Python is used while it is set: Set up backend would make an unused "
                              "environment.", icon="INFO")
        layout.prop(self, "keep_backend_s")
        try:
            ready = configured_backend_python(self)
            layout.label(text=f"Backend: ready ({ready})", icon="CHECKMARK")
        except FaceKeyError as e:
            layout.label(text=f"Backend: {e.message}", icon="ERROR")
        row = layout.row()
        row.enabled = STATE.status != "running"
        row.operator("facekey.setup_backend", icon="CONSOLE")
        row.operator("facekey.check_backend", icon="CHECKMARK")
        if STATE.job in ("setup", "check"):
            if STATE.status == "running":
                draw_progress(layout)
                layout.operator("facekey.cancel", icon="CANCEL")
            else:
                layout.label(text=f"{STATE.status}: {STATE.message}")
            if STATE.error_hint:
                layout.label(text=STATE.error_hint, icon="INFO")


HEAD_MODES = [("NONE", "None", "Do not animate head rotation"),
              ("OBJECT", "Object", "Rotate an object (e.g. the head mesh or its parent)"),
              ("BONE", "Bone", "Rotate a pose bone of an armature")]
NAME_MAPS = [("auto", "Auto", "ARKit camelCase, Live Link PascalCase, _L/_R and Left/Right spellings"),
             ("arkit", "ARKit", "ARKit camelCase names"),
             ("livelink", "Live Link", "Live Link Face PascalCase names"),
             ("custom", "Custom file", "A JSON file {\"eyeBlinkLeft\": \"Blink_L\", ...}")]


#: The generators' expression labels (CoMA's sequence names) as an enum: identifier = the label itself.
EXPRESSION_LABELS = [(label, label.replace("_", " ").capitalize(), f"Generate a '{label}' clip, neutral to apex")
                     for label in LABELS]

MESH_OUTPUTS = [("MESH_CACHE", "Mesh Cache", "Write a .pc2 point cache and add a Mesh Cache modifier"),
                ("SHAPE_KEYS", "Shape keys", "Add per-take corrective shape keys and bake their values as an action")]


class FaceKeySceneSettings(bpy.types.PropertyGroup):
    footage: StringProperty(name="Footage", subtype="FILE_PATH",
                            description="Video file, image folder or photo; or a folder of video clips, "
                                        "captured into one take (and one new action) per clip")
    name_map: EnumProperty(name="Name map", items=NAME_MAPS, default="auto")
    map_path: StringProperty(name="Map file", subtype="FILE_PATH")
    start_frame: IntProperty(name="Start frame", default=1, description="Scene frame of the footage's first frame")
    smoothing: FloatProperty(name="Smoothing", default=1.0, min=0.0, soft_max=10.0,
                             description="Temporal smoothness strength (0 = off)")
    face_index: IntProperty(name="Face index", default=-1, min=-1,
                            description="Which face to follow (-1 = the largest)")
    use_rest_frame: BoolProperty(name="Rest frame", default=False,
                                 description="Calibrate the actor's neutral on a frame where the face is at rest, "
                                             "so expressions are measured from the actor's own rest face")
    rest_frame: IntProperty(name="Frame", default=1,
                            description="Scene frame where the actor's face is at rest (the footage starts at "
                                        "Start frame)")
    actor_take: StringProperty(name="Actor", subtype="FILE_PATH", default="",
                               description="A take of the same actor (best captured with a rest frame): reuse its "
                                           "face so every take shares one neutral (empty = solve it from this footage)")
    hands: BoolProperty(name="Hands over face", default=False,
                        description="Look for hands over the face: what a hand covers is not read as expression "
                                    "(tracking takes about 3x longer)")
    head_mode: EnumProperty(name="Head rotation", items=HEAD_MODES, default="NONE")
    head_object: PointerProperty(name="Head target", type=bpy.types.Object)
    head_bone: StringProperty(name="Bone", description="Pose bone of the head target armature")
    show_details: BoolProperty(name="Details", default=False)
    solve_take: StringProperty(name="Take", subtype="FILE_PATH",
                               description="Take file to apply, preview or retarget (empty = the last take)")
    solve_keys: StringProperty(name="Keys", default="",
                               description="Comma-separated glob patterns of the keys to drive (empty = all)")
    solve_exclude: StringProperty(name="Exclude", default="",
                                  description="Comma-separated glob patterns of keys never driven (e.g. Fcl_ALL_*, Fcl_HA_*)")
    mesh_output: EnumProperty(name="Output", items=MESH_OUTPUTS, default="MESH_CACHE",
                              description="How Mesh-level retarget stores the motion on the active mesh")
    serep_weights: StringProperty(name="SEREP weights", subtype="FILE_PATH", default="",
                                  description="Trained SEREP weights for mesh-level retarget: serep.safetensors or "
                                              "its folder (config.json beside it); empty = blendshape transfer")
    gen_label: EnumProperty(name="Expression", items=EXPRESSION_LABELS, default="high_smile",
                            description="Which labelled expression to generate")
    gen_seed: IntProperty(name="Seed", default=0, min=0,
                          description="Generator noise: the same seed gives the same clip, another seed another one")
    gen_mirror: BoolProperty(name="Mirror", default=False,
                             description="Swap the face's sides (e.g. Mouth side to the subject's right)")
    gan_weights: StringProperty(name="Motion3DGAN weights", subtype="FILE_PATH", default="",
                                description="Your own trained Motion3DGAN: its weights folder or .safetensors "
                                            "(python -m training.motion3dgan.train); empty = the bundled one")
    s2d_weights: StringProperty(name="S2D weights", subtype="FILE_PATH", default="",
                                description="Your own trained Sparse-to-Dense decoder: its weights folder or "
                                            ".safetensors (python -m training.s2d.train); empty = the bundled one")


def get_prefs(context=None):
    """This add-on's preferences."""
    return (context or bpy.context).preferences.addons[ADDON].preferences


_CLASSES = (FaceKeyPreferences, FaceKeySceneSettings)


def register() -> None:
    for c in _CLASSES:
        bpy.utils.register_class(c)
    bpy.types.Scene.facekey = PointerProperty(type=FaceKeySceneSettings)
    bpy.types.Object.facekey_retarget_mode = EnumProperty(
        name="Retarget mode", items=MODE_ITEMS, default="AUTO",
        description="How FaceKey applies a take to this object")


def unregister() -> None:
    del bpy.types.Object.facekey_retarget_mode
    del bpy.types.Scene.facekey
    for c in reversed(_CLASSES):
        bpy.utils.unregister_class(c)
