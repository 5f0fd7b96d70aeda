"""`facekey demo` end to end on a short cut of the bundled clip: every output exists
and is what README command 1 promises (take, .blend with the baked head, preview, plot)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from clips import cut_clip

pytest.importorskip("bpy")

CHECK_BLEND = r"""
import json, sys, bpy
bpy.ops.wm.open_mainfile(filepath=sys.argv[-1])
head = bpy.data.objects["FaceKeyHead"]
keys = head.data.shape_keys
action = keys.animation_data.action
try:
    curves = list(action.fcurves)
except AttributeError:                       # Blender 5 layered actions
    curves = [fc for layer in action.layers for strip in layer.strips for bag in strip.channelbags for fc in bag.fcurves]
values = [kp.co[1] for fc in curves for kp in fc.keyframe_points]
paths = sorted({fc.data_path for fc in curves if not fc.data_path.startswith("key_blocks")})
print(json.dumps({"keys": [k.name for k in keys.key_blocks], "curves": len(curves), "other_paths": paths,
                  "min": min(values), "max": max(values), "frames": [bpy.context.scene.frame_start, bpy.context.scene.frame_end]}))
"""


def test_demo_writes_every_output(tmp_path):
    from backend.demo import run_demo
    from backend.protocol.arkit import ARKIT_NAMES
    from backend.protocol.take import read_take

    clip = cut_clip(tmp_path / "clip.mp4", frames=24)
    paths = run_demo(tmp_path / "out", footage=clip)

    take = read_take(paths["take"])
    assert take.num_frames == 24 and take.valid.all()

    proc = subprocess.run([sys.executable, "-c", CHECK_BLEND, str(paths["blend"])], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    blend = json.loads(proc.stdout.strip().splitlines()[-1])
    assert blend["keys"][1:] == list(ARKIT_NAMES)            # Basis + the 52 ARKit units in order
    # the 52 units and the take's confidence curve, every value in [0, 1]
    assert blend["curves"] == 53 and blend["other_paths"] == ['["facekey_confidence"]']
    assert 0.0 <= blend["min"] and blend["max"] <= 1.0

    import av
    with av.open(str(paths["preview"])) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 24
    src = av.open(str(clip))
    first = next(src.decode(video=0)).to_ndarray(format="rgb24")
    src.close()
    assert np.abs(frames[0].astype(int) - first[: frames[0].shape[0], : frames[0].shape[1]]).mean() > 1.0, \
        "the preview shows nothing drawn over the footage"
    assert paths["curves"].stat().st_size > 20_000
    assert paths["head_render"].stat().st_size > 5_000
