"""Acceptance (issue 5): retarget a mouth-open take onto the VRoid character's own ``Fcl_*`` keys in real Blender."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from backend.protocol.arkit import INDEX
from backend.protocol.take import Take, write_take

VROID = "characters/talkinghead_vroid_fcl_plus_partial_arkit.glb"

READ_CURVES = r'''
import bpy, json, sys, numpy as np
bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
key = bpy.data.objects["Face"].data.shape_keys
act = key.animation_data.action
fcs = [fc for layer in act.layers for strip in layer.strips for bag in strip.channelbags for fc in bag.fcurves]
out = {}
for fc in fcs:
    co = np.empty(2 * len(fc.keyframe_points), np.float32)
    fc.keyframe_points.foreach_get("co", co)
    out[fc.data_path.split('"')[1]] = co[1::2].tolist()

print("RESULT" + json.dumps({"action": act.name, "curves": out}))
'''


@pytest.mark.realdata
@pytest.mark.slow
def test_mouth_open_take_drives_vroid_mouth_keys_not_eye_keys(realdata, tmp_path):
    pytest.importorskip("bpy")
    pytest.importorskip("meshopt")  # the glb needs EXT_meshopt_compression unpacked
    from backend.retarget.character_solve import SolveSettings
    from backend.retarget.pipeline import solve_bake

    take = Take.empty(60, 30.0, source="jaw_ramp")
    take.weights[:, INDEX["jawOpen"]] = np.concatenate([np.linspace(0, 1, 30), np.linspace(1, 0, 30)])
    take_path = write_take(tmp_path / "jaw.npz", take)
    out = tmp_path / "vroid_solved.blend"
    # Fcl_ALL_* are whole-face presets and Fcl_HA_* the teeth: a user excludes them like this.
    settings = SolveSettings(keys=["Fcl_*"], exclude=["Fcl_ALL_*", "Fcl_HA_*"])
    report = solve_bake(take_path, realdata / VROID, out, "Face", settings=settings, timeout=300)
    assert report["frames"] == 60 and report["solve"]["points"] > 200
    assert report["solve"]["anchors"] == "keys"  # eyes from Fcl_EYE_Close_L/R, mouth from Fcl_MTH_A

    proc = subprocess.run([sys.executable, "-c", READ_CURVES, str(out)], capture_output=True, text=True, timeout=300)
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT"))
    baked = json.loads(line[len("RESULT"):])
    curves = {k: np.asarray(v) for k, v in baked["curves"].items()}
    assert all(k.startswith("Fcl_") and not k.startswith(("Fcl_ALL_", "Fcl_HA_")) for k in curves)
    mouth = {k: v for k, v in curves.items() if k.startswith("Fcl_MTH_")}
    eyes = {k: v for k, v in curves.items() if k.startswith("Fcl_EYE_")}
    assert mouth and eyes
    assert max(v.max() for v in mouth.values()) > 0.5
    # mouth keys follow the ramp: closed at the ends, open in the middle
    driven = [k for k, v in mouth.items() if v.max() > 0.5]
    assert all(curves[k][0] < 0.1 and curves[k][-1] < 0.1 for k in driven), driven
    assert max(v.max() for v in eyes.values()) < 0.05, {k: float(v.max()) for k, v in eyes.items()}
