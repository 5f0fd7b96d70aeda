"""Bake speed: the add-on's bulk F-curve path vs a ``keyframe_insert`` loop (runs in the bpy module).

    python benchmarks/bench_bake.py [--frames 10000] [--keys 52] [--slow-frames 2000] [--full] [--json]

Both paths write the same keys (LINEAR, one per frame per shape key) and are
checked to agree.  The slow loop is measured at ``--slow-frames`` frames and
the bulk path at the same size (for the ratio) and at ``--frames``;
``--full`` runs the slow loop at ``--frames`` too (minutes at 10,000).
Prints a table, then one JSON line (``run()``'s dict) last.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _addon():
    """The add-on package staged from this checkout (same code as the release)."""
    sys.path.insert(0, str(REPO))
    from backend.blender_runner import staged_addon
    staged = staged_addon()
    sys.path.insert(0, str(staged.parent))
    import importlib
    return importlib.import_module("facekey.bake.fcurves")


def _character(name: str, keys: int):
    import bpy
    me = bpy.data.meshes.new(name)
    me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    obj = bpy.data.objects.new(name, me)
    bpy.context.scene.collection.objects.link(obj)
    obj.shape_key_add(name="Basis")
    for k in range(keys):
        obj.shape_key_add(name=f"k{k:02d}")
    return obj.data.shape_keys


def _values(frames: int, keys: int) -> np.ndarray:
    t = np.arange(frames)[:, None] / 30.0
    return (0.5 + 0.5 * np.sin(t * (1 + np.arange(keys)[None] * 0.1))).astype(np.float32)


def bulk_bake(fc_mod, key, values: np.ndarray) -> float:
    """The add-on's path; returns seconds."""
    frames = np.arange(1, values.shape[0] + 1, dtype=np.float64)
    t0 = time.perf_counter()
    action = fc_mod.new_action_for(key, "bulk")
    for k in range(values.shape[1]):
        fc = fc_mod.ensure_fcurve(action, key, f'key_blocks["k{k:02d}"].value', 0, "FaceKey")
        fc_mod.set_keys(fc, frames, values[:, k])
    return time.perf_counter() - t0


def insert_loop(key, values: np.ndarray) -> float:
    """The naive reference: set each value and ``keyframe_insert`` per frame and key; returns seconds."""
    import bpy
    t0 = time.perf_counter()
    key.animation_data_create().action = bpy.data.actions.new("loop")
    blocks = [key.key_blocks[f"k{k:02d}"] for k in range(values.shape[1])]
    for f in range(values.shape[0]):
        for k, kb in enumerate(blocks):
            kb.value = float(values[f, k])
            kb.keyframe_insert("value", frame=f + 1)
    for fc in _fcurves(key.animation_data.action, key):
        for kp in fc.keyframe_points:
            kp.interpolation = "LINEAR"
    return time.perf_counter() - t0


def _fcurves(action, key) -> list:
    if hasattr(action, "layers"):
        return [fc for l in action.layers for s in l.strips for b in s.channelbags for fc in b.fcurves]
    return list(action.fcurves)


def _keys(action, key) -> dict:
    out = {}
    for fc in _fcurves(action, key):
        co = np.empty(2 * len(fc.keyframe_points), np.float32)
        fc.keyframe_points.foreach_get("co", co)
        out[fc.data_path] = co
    return out


def run(frames: int = 10_000, keys: int = 52, slow_frames: int = 2_000) -> dict:
    """Measure both paths in this (bpy) process; return a JSON-able report (seconds)."""
    import bpy
    fc_mod = _addon()
    bpy.ops.wm.read_homefile(use_empty=True)
    small = _values(slow_frames, keys)
    k_bulk, k_loop = _character("bulk", keys), _character("loop", keys)
    t_bulk_small = bulk_bake(fc_mod, k_bulk, small)
    t_loop_small = insert_loop(k_loop, small)
    a, b = _keys(k_bulk.animation_data.action, k_bulk), _keys(k_loop.animation_data.action, k_loop)
    max_diff = max(float(np.abs(a[p] - b[p]).max()) for p in a) if a.keys() == b.keys() else float("inf")
    t_bulk_full = bulk_bake(fc_mod, _character("bulk_full", keys), _values(frames, keys))
    return {
        "blender": bpy.app.version_string, "keys": keys, "cores": os.cpu_count(),
        "slow_frames": slow_frames, "frames": frames,
        "seconds": {"bulk_at_slow_frames": t_bulk_small, "insert_loop_at_slow_frames": t_loop_small,
                    "bulk_at_frames": t_bulk_full},
        "speedup_at_slow_frames": t_loop_small / t_bulk_small,
        "paths_agree_max_abs_diff": max_diff,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="FaceKey bake speed benchmark (bpy module)")
    p.add_argument("--frames", type=int, default=10_000)
    p.add_argument("--keys", type=int, default=52)
    p.add_argument("--slow-frames", type=int, default=2_000)
    p.add_argument("--full", action="store_true", help="measure the insert loop at --frames too")
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    args = p.parse_args(argv)
    report = run(args.frames, args.keys, args.frames if args.full else args.slow_frames)
    if not args.json:
        s = report["seconds"]
        print(f"{'path':<28}{'frames':>8}{'keys':>6}{'seconds':>12}")
        print(f"{'bulk (foreach_set)':<28}{report['slow_frames']:>8}{args.keys:>6}{s['bulk_at_slow_frames']:>12.4f}")
        print(f"{'keyframe_insert loop':<28}{report['slow_frames']:>8}{args.keys:>6}{s['insert_loop_at_slow_frames']:>12.4f}")
        print(f"{'bulk (foreach_set)':<28}{report['frames']:>8}{args.keys:>6}{s['bulk_at_frames']:>12.4f}")
        print(f"speed-up at {report['slow_frames']} frames: {report['speedup_at_slow_frames']:.0f}x; "
              f"paths agree within {report['paths_agree_max_abs_diff']:.2g}")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
