"""Headless entry: bake a Take into a .blend, build the demo head scene, or render a baked take.

Run it either way (the same code runs in both)::

    blender -b --factory-startup --python <addon>/headless.py -- bake --open IN.blend \
        --take T.npz --objects Head,Teeth -o OUT.blend [--report R.json]
    python <addon>/headless.py -- bake ...            # Python with the bpy module
    blender -b -c facekey bake ...                    # Blender 4.2+ with the extension enabled

Commands:
  bake   --take T --objects A,B -o OUT [--open IN] [--name-map auto|arkit|livelink|custom]
         [--map-path P] [--start-frame F] [--head-object O [--head-bone B]] [--report R.json]
         [--bridge-unsure]  (each object's unsure stretches, and the head rotation baked with them,
         bridged into new actions, its report entry's ``bridged``; see ``bake.bridge``)
  batch  --takes DIR, then the options of bake: every take in DIR (Take .npz, Live Link Face
         .csv) baked into its own new action ``FK_<file stem>``, one OUT for the folder
  demo   --head-npz H --take T -o OUT [--preview PNG] [--report R.json]
         (H: vertices (N,3), triangles (F,3), unit_deltas (52,N,3) metres, names (52,))
  render --take T --objects A --out-dir D [--open IN | --import-glb IN.glb] [--every N] [--size PX]
         [--name-map ...] [--turn]  bake T onto A (in memory, nothing saved) and render every N-th take
         row from the front (camera on -Y framing the part of A its shape keys move, as A is seen; Workbench) to
         D/row_<row>.png, with --turn as the head turned by T's head rotation (the camera orbits the
         face); the report lists ``rows``, ``files`` and the ``units`` A has a key for

The report (JSON) is the bake report, or ``{"error": {code, message, hint}}``;
the exit code is 0 on success, 2 on a FaceKeyError.  A batch goes on past a
take that cannot be read or baked: its report lists each take's bake report
under ``takes`` and each failed take's error under ``failed``, OUT is saved
with the takes that did bake, and the exit code is 3 when any take failed
(2, and nothing saved, when none baked).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

if __name__ == "__main__" and not __package__:
    # Run as a script: import this folder as the package ``facekey`` and hand over.
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.dirname(_here))
    import importlib
    _pkg = importlib.import_module(os.path.basename(_here))
    _argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    sys.exit(importlib.import_module(_pkg.__name__ + ".headless").main(_argv))

from .protocol.errors import FaceKeyError  # noqa: E402

__all__ = ["main", "bake_command", "batch_command", "demo_command", "render_command", "EXIT_SOME_TAKES_FAILED"]

#: Exit code of a batch that saved its output but could not bake every take.
EXIT_SOME_TAKES_FAILED = 3


def _target_arguments(b: argparse.ArgumentParser) -> None:
    """The options ``bake`` and ``batch`` share: input/output .blend, targets, name map, timing."""
    b.add_argument("--open", dest="blend_in", default=None)
    b.add_argument("--objects", required=True, help="comma-separated object names")
    b.add_argument("-o", "--output", required=True)
    b.add_argument("--name-map", default="auto", choices=["auto", "arkit", "livelink", "custom"])
    b.add_argument("--map-path", default=None)
    b.add_argument("--start-frame", type=float, default=1.0)
    b.add_argument("--head-object", default=None)
    b.add_argument("--head-bone", default=None)
    b.add_argument("--report", default=None)
    b.add_argument("--bridge-unsure", action="store_true",
                   help="bridge the stretches the capture is unsure of into a new action per object")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="facekey-headless")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bake", help="bake a Take onto objects of a .blend")
    b.add_argument("--take", required=True)
    _target_arguments(b)
    t = sub.add_parser("batch", help="bake every take of a folder onto objects of a .blend, a new action each")
    t.add_argument("--takes", required=True, help="folder of Take .npz and Live Link Face .csv files")
    _target_arguments(t)
    d = sub.add_parser("demo", help="build a head with ARKit shape keys and bake a Take onto it")
    d.add_argument("--head-npz", required=True)
    d.add_argument("--take", required=True)
    d.add_argument("-o", "--output", required=True)
    d.add_argument("--preview", default=None)
    d.add_argument("--report", default=None)
    r = sub.add_parser("render", help="bake a Take onto an object and render its rows from the front")
    r.add_argument("--take", required=True)
    r.add_argument("--open", dest="blend_in", default=None)
    r.add_argument("--import-glb", dest="glb_in", default=None, help="a glTF binary imported into an empty scene")
    r.add_argument("--objects", required=True, help="the object to bake and frame (one name)")
    r.add_argument("--out-dir", required=True)
    r.add_argument("--every", type=int, default=1, help="render every N-th take row")
    r.add_argument("--size", type=int, default=480, help="square image side, pixels")
    r.add_argument("--name-map", default="auto", choices=["auto", "arkit", "livelink", "custom"])
    r.add_argument("--map-path", default=None)
    r.add_argument("--turn", action="store_true", help="show the head turned by the take's head rotation")
    r.add_argument("--report", default=None)
    return p


def find_object(name: str):
    """The object called ``name``, or ``object_missing`` listing the objects present."""
    import bpy
    obj = bpy.data.objects.get(name)
    if obj is None:
        raise FaceKeyError("object_missing", f"No object named '{name}' in the .blend.",
                           f"Objects present: {', '.join(sorted(o.name for o in bpy.data.objects)[:30])}.")
    return obj


def save_blend(path: str) -> None:
    """Save the open file as ``path`` (folders created)."""
    import bpy
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(path), check_existing=False)


def load_scene(blend_in: str | None, glb_in: str | None) -> None:
    """Open a .blend, or import a glTF binary into an empty scene (one of the two)."""
    import bpy
    if blend_in and glb_in:
        raise FaceKeyError("bad_argument", "Pass either --open or --import-glb, not both.",
                           "Name the one character file to load.")
    path = blend_in or glb_in
    if not os.path.isfile(path):
        raise FaceKeyError("file_missing", f"Character file not found: {path}", "Check the path.")
    if blend_in:
        bpy.ops.wm.open_mainfile(filepath=os.path.abspath(blend_in))
    else:
        bpy.ops.wm.read_homefile(use_empty=True)
        bpy.ops.import_scene.gltf(filepath=os.path.abspath(glb_in))


def _open_targets(args):
    """Open ``args.blend_in`` or import ``args.glb_in`` (render only) if given; return ``(objects, head target
    or None, name map)``."""
    from .protocol.namemap import load_name_map
    if args.blend_in or getattr(args, "glb_in", None):
        load_scene(args.blend_in, getattr(args, "glb_in", None))
    names = [n.strip() for n in args.objects.split(",") if n.strip()]
    objects = [find_object(n) for n in names]
    head_name = getattr(args, "head_object", None)     # render has none: its turn is the camera's
    head = find_object(head_name) if head_name else None
    return objects, head, load_name_map(args.name_map, args.map_path)


def bake_command(args) -> dict:
    """Open ``args.blend_in`` (if given), bake ``args.take`` onto ``args.objects`` (bridging unsure stretches
    with ``args.bridge_unsure``), save ``args.output``."""
    import bpy

    from .bake.apply import bake_take
    from .protocol.take import read_take
    objects, head, name_map = _open_targets(args)
    take = read_take(args.take)
    report = bake_take(take, objects, name_map, scene=bpy.context.scene,
                       source=take.header.get("source") or args.take, start_frame=args.start_frame,
                       take_path=os.path.abspath(args.take), head_target=head, head_bone=args.head_bone)
    if args.bridge_unsure:
        _bridge(report, head)
    save_blend(args.output)
    report["output"] = os.path.abspath(args.output)
    return report


def _bridge(report: dict, head) -> None:
    """``--bridge-unsure``: bridge each baked object's unsure stretches (``bake.bridge.bridge_if_unsure``),
    and with them the head rotation baked onto ``head`` (the object or armature, or None), and record
    ``bridged`` (``bake.bridge.bridge_if_unsure``'s dict) in each object's entry of a bake report."""
    from .bake.bridge import bridge_if_unsure
    for name, info in report["objects"].items():
        info["bridged"] = bridge_if_unsure(find_object(name), head)


def batch_command(args) -> dict:
    """Bake every take in the folder ``args.takes`` onto ``args.objects``, each into new actions named
    after its file (``FK_<stem>``, ``FK_<stem>_head``; with ``args.bridge_unsure`` also ``FK_<stem> bridged``
    where the capture was unsure), and save ``args.output`` once.

    A take that cannot be read or baked is recorded under ``failed`` and the
    batch goes on; targets that are missing stop it before anything is baked.

    Returns:
        ``{"takes": {path: bake report}, "failed": {path: {code, message, hint}}, "output": path}``.

    Raises:
        FaceKeyError: when the folder holds no take, a target is missing, or no take baked
        (the first take's error; nothing is saved).
    """
    import bpy

    from .bake.apply import bake_take
    from .protocol.takefolder import read_any_take, take_files
    paths = take_files(args.takes)
    objects, head, name_map = _open_targets(args)
    report = {"takes": {}, "failed": {}}
    for i, path in enumerate(paths):
        print(f"FaceKey batch: take {i + 1}/{len(paths)}: {os.path.basename(path)}", flush=True)
        try:
            baked = bake_take(read_any_take(path), objects, name_map, scene=bpy.context.scene, source=path,
                              start_frame=args.start_frame, take_path=path, head_target=head,
                              head_bone=args.head_bone)
        except FaceKeyError as e:
            report["failed"][path] = e.to_dict()
            continue
        if args.bridge_unsure:
            _bridge(baked, head)
        report["takes"][path] = baked
    if not report["takes"]:
        first = report["failed"][paths[0]]
        raise FaceKeyError(first["code"], f"No take in {args.takes} could be baked; "
                           f"{os.path.basename(paths[0])}: {first['message']}", first["hint"])
    save_blend(args.output)
    report["output"] = os.path.abspath(args.output)
    return report


def demo_command(args) -> dict:
    """Empty scene + head mesh "FaceKeyHead" (52 ARKit keys) + camera + light; bake the take; save."""
    import bpy
    import numpy as np

    from .bake.apply import bake_take, scene_fps
    from .head_builder import build_head_object
    from .protocol.namemap import load_name_map
    from .protocol.take import read_take
    if not os.path.isfile(args.head_npz):
        raise FaceKeyError("file_missing", f"Head model not found: {args.head_npz}", "Run `facekey demo` again.")
    with np.load(args.head_npz, allow_pickle=False) as z:
        verts, tris, deltas, names = z["vertices"], z["triangles"], z["unit_deltas"], [str(n) for n in z["names"]]
    take = read_take(args.take)
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = max(1, round(take.fps)), 1.0
    head = build_head_object("FaceKeyHead", verts, tris, deltas, names)
    report = bake_take(take, [head], load_name_map("arkit"), scene=scene,
                       source=take.header.get("source") or args.take, start_frame=1,
                       take_path=os.path.abspath(args.take), head_target=head)
    scene.frame_start = 1
    scene.frame_end = max(1, int(np.ceil(1 + take.timestamps[-1] * scene_fps(scene))))
    _add_camera_and_light(scene, np.asarray(verts, np.float64))
    if args.preview:
        scene.render.engine = "BLENDER_WORKBENCH"
        scene.render.resolution_x, scene.render.resolution_y = 480, 480
        scene.render.filepath = os.path.abspath(args.preview)
        strongest = int(np.argmax(np.where(take.valid, take.weights.sum(axis=1), -1.0)))   # most expressive frame
        frame = 1 + take.timestamps[strongest] * scene_fps(scene)
        scene.frame_set(int(frame), subframe=float(frame - int(frame)))
        bpy.ops.render.render(write_still=True)
        report["preview"] = os.path.abspath(args.preview)
        report["preview_frame"] = float(frame)
        scene.frame_set(scene.frame_start)
    save_blend(args.output)
    report["output"] = os.path.abspath(args.output)
    return report


def render_command(args) -> dict:
    """Bake ``args.take`` onto the one object of ``args.objects`` (the open file is not saved) and render
    every ``args.every``-th take row with a front camera framing the object's face as it rests before the
    bake (:func:`_front_camera`; Workbench, square ``args.size`` pixels) to ``args.out_dir/row_<row>.png``;
    with ``args.turn`` the camera orbits the face by the inverse of the take's head rotation
    (:func:`_orbit_camera`), so the rows show the head turned.

    Returns:
        ``{"object", "action", "head": the camera orbit's action or None, "units": [ARKit name the object has
        a key for, ...], "rows": [take row, ...], "files": [png path, ...], "fps": take fps}``.
    """
    import bpy

    from .bake.apply import bake_take, scene_fps
    from .bake.shape_keys import take_frames
    from .protocol.take import read_take
    from .targets import resolve_targets
    if args.every < 1 or args.size < 16:
        raise FaceKeyError("bad_argument", f"--every must be >= 1 and --size >= 16 (got {args.every}, {args.size}).",
                           "Pass a positive row step and an image side of at least 16 pixels.")
    objects, _, name_map = _open_targets(args)
    if len(objects) != 1:
        raise FaceKeyError("bad_argument", f"render frames one object, got {len(objects)}: {args.objects}",
                           "Name the one mesh to render with --objects.")
    obj = objects[0]
    take = read_take(args.take)
    resolve_targets([obj], name_map)     # a mesh with keys the map matches, or a coded error before any change
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = max(1, round(take.fps)), 1.0
    cam, centre = _front_camera(scene, obj)
    take_path = os.path.abspath(args.take)
    baked = bake_take(take, [obj], name_map, scene=scene, source=take.header.get("source") or args.take,
                      start_frame=1.0, take_path=take_path)
    orbit = _orbit_camera(scene, cam, centre, take, take_path) if args.turn else None
    _plain_render_settings(scene, args.size)
    os.makedirs(args.out_dir, exist_ok=True)
    rows, files = list(range(0, len(take.timestamps), args.every)), []
    at = take_frames(take, 1.0, scene_fps(scene), every_frame=True)
    for row in rows:
        frame = float(at[row])
        scene.frame_set(int(frame), subframe=float(frame - int(frame)))
        scene.render.filepath = os.path.join(os.path.abspath(args.out_dir), f"row_{row:05d}.png")
        bpy.ops.render.render(write_still=True)
        files.append(scene.render.filepath)
    done = baked["objects"][obj.name]
    return {"object": obj.name, "action": done["action"], "head": orbit, "units": list(done["mapped"]),
            "rows": rows, "files": files, "fps": float(take.fps)}


#: The plain grey matcap of Blender 4+ and of Blender 3 (the first found is used).
PLAIN_MATCAPS = ("basic_grey.exr", "basic_1.exr")


def _plain_render_settings(scene, size: int) -> None:
    """Workbench, ``size`` x ``size`` RGB PNG, nothing of the file's own output set-up in the way
    (compositor, sequencer strips, transparent film, X-ray), lit by a plain grey matcap (light from the
    view, so the two sides of a frontal face are lit alike; the default studio light is not symmetric)."""
    import bpy
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.use_compositing = scene.render.use_sequencer = False
    scene.render.film_transparent = False
    shading = scene.display.shading
    matcaps = {light.name for light in bpy.context.preferences.studio_lights if light.type == "MATCAP"}
    plain = next((m for m in PLAIN_MATCAPS if m in matcaps), None)
    if plain:    # lit from the view: both sides of a frontal face alike
        shading.light, shading.studio_light = "MATCAP", plain
    else:
        shading.light = "STUDIO"
    shading.show_xray = False


def _front_camera(scene, obj):
    """A 50 mm camera on -Y (Blender's front view) looking along +Y at the face of ``obj`` as it rests now:
    the box around :func:`_face_points`, far enough for the larger of
    the box's height and width times :data:`FRAME_MARGIN` to fill the square frame; clip range from that
    distance.
    Returns ``(camera object, the box's centre as a Vector)``."""
    import math

    from mathutils import Vector
    world = _face_points(obj)
    lo, hi = world.min(0), world.max(0)
    cam = _camera_looking_along_y(scene, "FaceKeyRenderCamera")
    half_fov = math.atan(cam.data.sensor_width / (2.0 * cam.data.lens))
    reach = 0.5 * float(max(hi[2] - lo[2], hi[0] - lo[0])) * FRAME_MARGIN / math.tan(half_fov)
    cam.data.clip_start = reach * 0.01
    cam.data.clip_end = reach * 10.0 + float(hi[1] - lo[1])
    centre = Vector(((lo + hi) / 2.0).tolist())
    cam.location = Vector((centre.x, float(lo[1]) - reach, centre.z))
    return cam, centre


#: The square frame's side over the larger side of the box the shape keys move.  That box stops short of
#: the forehead and chin outline on a face mask whose keys leave them still (our head's: 0.16 m of its
#: 0.18 m height), and the tracker needs them in view: our head opening its jaw, captured as a clip, reads
#: a jawOpen that correlates 0.57 with the true one at 1.15, 0.86 at 1.4.
FRAME_MARGIN = 1.4

#: A vertex is part of the face when one of the shape keys moves it by more than this share of the
#: largest displacement of any of them (an exporter's float noise in a key that moves nothing stays
#: below it).
KEYED_SHARE = 0.01


def _face_points(obj):
    """(M, 3) float64 world positions of the vertices of mesh ``obj`` that its shape keys move, each against
    its relative key (the face, on a mesh that also holds a body, teeth or hair; every key counts, not only
    those a name map matches, so a rig keyed for a few units is still framed on its whole face), or,
    where they move none, of every vertex that belongs to a polygon (loose vertices left out).

    Positions are those of the mesh as it is seen (:func:`~.retarget.measure.evaluated_world`: armature
    pose and modifiers applied, those that make new geometry switched off for the measurement; a skinned
    glTF import keeps its vertices in bind space, metres away from the head), or the mesh's own vertex
    positions where a modifier still changes the vertex count."""
    import numpy as np

    from .retarget.measure import evaluated_world, vertex_for_vertex
    me = obj.data
    n = len(me.vertices)
    try:
        with vertex_for_vertex(obj):
            world = evaluated_world(obj, n)
    except FaceKeyError:     # a modifier that still changes the vertex count: the unmodified vertices
        co = np.empty(n * 3)
        me.vertices.foreach_get("co", co)
        m = np.array(obj.matrix_world)
        world = co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]
    moved = np.zeros(n)
    blocks = me.shape_keys.key_blocks if me.shape_keys is not None else ()
    for kb in blocks:
        if kb.relative_key is not None and kb.relative_key != kb:
            k, base = np.empty(n * 3), np.empty(n * 3)
            kb.data.foreach_get("co", k)
            kb.relative_key.data.foreach_get("co", base)
            moved = np.maximum(moved, np.linalg.norm((k - base).reshape(-1, 3), axis=1))
    if moved.max(initial=0.0) > 0.0:
        return world[moved > KEYED_SHARE * moved.max()]
    used = np.empty(len(me.loops), np.int64)
    me.loops.foreach_get("vertex_index", used)
    return world[np.unique(used)] if len(used) else world


def _orbit_camera(scene, cam, centre, take, take_path: str) -> str:
    """Show the head turned by ``take``'s head rotation without moving it: ``cam`` is parented to a new
    empty at ``centre`` (the framed face's centre) keyed with the inverse rotation at the take's frames, so
    the camera orbits the face.  Relative to the camera the face turns by the take's rotation about its
    centre, and with light from the view (the render's matcap) the image is the turned head's; the object,
    its parents and its armature are untouched (whatever else is in view turns with the head in the
    image).  Returns the empty's action name."""
    import dataclasses

    import bpy
    import numpy as np

    from .bake.apply import scene_fps
    from .bake.head import bake_head_rotation
    pivot = bpy.data.objects.new("FaceKeyTurnPivot", None)
    scene.collection.objects.link(pivot)
    pivot.location = centre
    pivot.rotation_mode = "QUATERNION"
    cam.parent = pivot
    cam.location = cam.location - centre
    inverse = (take.head_rotation * np.array([1.0, -1.0, -1.0, -1.0])).astype(take.head_rotation.dtype)
    turned = dataclasses.replace(take, head_rotation=inverse)
    return bake_head_rotation(pivot, turned, "FK_turn", 1.0, scene_fps(scene), None, take_path).name


def _camera_looking_along_y(scene, name: str):
    """A new 50 mm camera object ``name`` in ``scene``, turned to look along +Y (Blender's front view), made
    the scene camera; its location is the caller's."""
    import math

    import bpy
    cam = bpy.data.objects.new(name, bpy.data.cameras.new(name))
    cam.data.lens = 50.0
    scene.collection.objects.link(cam)
    cam.rotation_euler = (math.pi / 2, 0.0, 0.0)
    scene.camera = cam
    return cam


def _add_camera_and_light(scene, verts) -> None:
    """Camera on -Y looking at the face (+Y direction), a sun light; framed to the head's size (metres)."""
    import bpy
    import numpy as np
    from mathutils import Vector

    from .protocol.axes import points_to_blender
    size = float(np.ptp(verts, axis=0).max())
    center = Vector(points_to_blender(verts.mean(axis=0)).tolist())
    cam = _camera_looking_along_y(scene, "FaceKeyCamera")
    cam.location = center + Vector((0.0, -3.0 * size, 0.0))
    light = bpy.data.objects.new("FaceKeyLight", bpy.data.lights.new("FaceKeyLight", "SUN"))
    scene.collection.objects.link(light)
    light.rotation_euler = (1.0, 0.0, 0.3)


def main(argv: list[str]) -> int:
    """Parse ``argv`` (after ``--``), run the command, write the report; 0 on success, 2 on FaceKeyError."""
    args = _parser().parse_args(argv)
    command = {"bake": bake_command, "batch": batch_command, "demo": demo_command,
               "render": render_command}[args.command]
    return run_reporting(lambda: command(args), args.report)


def run_reporting(step, report_path: str | None) -> int:
    """Run ``step()``; write its dict (or ``{"error": ...}``) to ``report_path``.

    Exit code: 0 on success, 2 on a FaceKeyError, :data:`EXIT_SOME_TAKES_FAILED` when the
    report lists ``failed`` takes.
    """
    try:
        report = step()
        code = EXIT_SOME_TAKES_FAILED if report.get("failed") else 0
    except FaceKeyError as e:
        report, code = {"error": e.to_dict()}, 2
        print(f"FaceKey error [{e.code}]: {e}", file=sys.stderr)
    if report_path:
        with open(report_path, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
    return code
