"""Headless steps of the character solve (run by ``backend.retarget.pipeline``).

    python <addon>/retarget/headless.py -- measure (--open IN.blend | --import-glb IN.glb) --object Face -o CHAR.npz
    python <addon>/retarget/headless.py -- bake-keys (--open IN.blend | --import-glb IN.glb) --object Face \
        --key-take K.npz [--key-take K2.npz ...] -o OUT.blend [--start-frame F] [--bridge-unsure]
    python <addon>/retarget/headless.py -- mesh-cache --open IN.blend --object Head --cache C.pc2 -o OUT.blend \
        [--start-frame F]

(or ``blender -b --factory-startup --python <addon>/retarget/headless.py -- ...``).
``--report R.json`` receives ``{...}`` or ``{"error": {code, message, hint}}``;
the exit code is 0 on success, 2 on a FaceKeyError.
"""
from __future__ import annotations

import argparse
import os
import sys

if __name__ == "__main__" and not __package__:
    # Run as a script: import the add-on folder (two levels up) as a package and hand over.
    _addon = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.dirname(_addon))
    import importlib
    _pkg = importlib.import_module(os.path.basename(_addon))
    _argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    sys.exit(importlib.import_module(_pkg.__name__ + ".retarget.headless").main(_argv))

from ..headless import find_object, load_scene, run_reporting, save_blend  # noqa: E402

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="facekey-retarget")
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("measure", "bake-keys"):
        c = sub.add_parser(name)
        src = c.add_mutually_exclusive_group(required=True)
        src.add_argument("--open", dest="blend_in", default=None)
        src.add_argument("--import-glb", dest="glb_in", default=None)
        c.add_argument("--object", required=True)
        c.add_argument("-o", "--output", required=True)
        c.add_argument("--report", default=None)
        if name == "bake-keys":
            c.add_argument("--key-take", required=True, action="append", help="repeatable: one new action each")
            c.add_argument("--start-frame", type=float, default=1.0)
            c.add_argument("--bridge-unsure", action="store_true",
                           help="bridge the stretches the capture is unsure of into a new action per take")
    m = sub.add_parser("mesh-cache", help="attach a .pc2 (mesh-level retarget) with a Mesh Cache modifier")
    m.add_argument("--open", dest="blend_in", required=True)
    m.add_argument("--object", required=True)
    m.add_argument("--cache", required=True)
    m.add_argument("-o", "--output", required=True)
    m.add_argument("--start-frame", type=float, default=1.0)
    m.add_argument("--take-fps", type=float, default=None,
                   help="the take's frame rate: the cache (one sample per 1 / fps of the take) plays at it "
                        "(default: the scene's)")
    m.add_argument("--report", default=None)
    return p


def _mesh_cache(args) -> dict:
    from ..protocol.pc2 import read_pc2
    from .mesh_cache import add_mesh_cache
    samples, points = read_pc2(args.cache)[0].shape[:2]     # checks signature, version and size
    import bpy

    from ..bake.apply import scene_fps
    load_scene(args.blend_in, None)
    obj = find_object(args.object)
    scale = 1.0 if args.take_fps is None else args.take_fps / scene_fps(bpy.context.scene)
    mod = add_mesh_cache(obj, args.cache, args.start_frame, points, frame_scale=scale)
    save_blend(args.output)
    return {"output": os.path.abspath(args.output), "modifier": mod.name, "points": points, "samples": samples}


def _run(args) -> dict:
    import bpy

    from ..bake.apply import action_name_for, scene_fps
    from ..bake.bridge import bridge_if_unsure
    from ..bake.shape_keys import bake_key_take, bake_source_confidence
    from ..protocol.keytake import read_key_take, write_character_keys
    from .measure import character_keys_from_object
    load_scene(args.blend_in, args.glb_in)
    obj = find_object(args.object)
    if args.command == "measure":
        ck = character_keys_from_object(obj, source=args.blend_in or args.glb_in)
        write_character_keys(args.output, ck)
        return {"character": os.path.abspath(args.output), "keys": len(ck.key_names), "vertices": int(len(ck.rest)),
                "anchors": sorted(ck.anchors)}
    key_takes = [(path, read_key_take(path)) for path in args.key_take]   # all read before any is baked
    scene = bpy.context.scene
    baked = []
    for path, kt in key_takes:
        action = bake_key_take(obj, kt, action_name_for(kt.header.get("source_take") or path),
                               args.start_frame, scene_fps(scene), os.path.abspath(path))
        take_file = kt.header.get("take_file") or kt.header.get("source_take", "")   # the Take .npz solved
        bake_source_confidence(obj, action, take_file, args.start_frame, scene_fps(scene))
        baked.append({"key_take": os.path.abspath(path), "action": action.name, "keys": list(kt.key_names),
                      "frames": int(kt.valid.sum())})
        if args.bridge_unsure:
            baked[-1]["bridged"] = bridge_if_unsure(obj)
    save_blend(args.output)
    return {"output": os.path.abspath(args.output), "baked": baked}


def main(argv: list[str]) -> int:
    """Parse ``argv``, run the step, write the report; 0 on success, 2 on FaceKeyError."""
    args = _parser().parse_args(argv)
    if args.command == "mesh-cache":
        return run_reporting(lambda: _mesh_cache(args), args.report)
    return run_reporting(lambda: _run(args), args.report)
