"""Shared helpers and fixtures for tests that run real Blender: the built add-on zips and a scenario runner.

Every Blender scenario runs in a fresh process (``bpy_scenarios.py``) whose
Blender user folders point into the test's tmp dir, so nothing lands in the
user's config.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clips import write_video

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = Path(__file__).with_name("bpy_scenarios.py")
BLENDER_34 = "/usr/bin/blender"
VENV_PYTHON = sys.executable


def _load_build_addon():
    spec = importlib.util.spec_from_file_location("facekey_build_addon_tests", REPO / "build_addon.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def addon_zips(tmp_path_factory) -> dict:
    """{"extension": zip, "legacy": zip} built by build_addon.py into a temp dir (once per session)."""
    pytest.importorskip("bpy")
    return {k: str(v) for k, v in _load_build_addon().build(tmp_path_factory.mktemp("dist")).items()}


def numpy_path_dir(tmp: Path) -> Path:
    """A folder exposing this venv's numpy (for Debian's Blender, whose Python lacks numpy)."""
    d = tmp / "pyextra"
    d.mkdir(exist_ok=True)
    site = Path(np.__file__).resolve().parents[1]
    for name in ("numpy", "numpy.libs"):
        if (site / name).exists() and not (d / name).exists():
            (d / name).symlink_to(site / name)
    return d


@pytest.fixture
def run_scenario(tmp_path, addon_zips):
    """``run_scenario(name, params, blender=None) -> result dict`` in a fresh Blender process."""
    def run(name: str, params: dict, *, blender: str | None = None, timeout: float = 300) -> dict:
        params = dict(params)
        params.setdefault("zip", addon_zips["legacy" if blender else "extension"])
        params["legacy"] = bool(blender)
        params_path, result_path = tmp_path / f"{name}_params.json", tmp_path / f"{name}_result.json"
        params_path.write_text(json.dumps(params))
        env = {k: v for k, v in os.environ.items() if not k.startswith("BLENDER_USER")}
        env["BLENDER_USER_RESOURCES"] = str(tmp_path / "blender_user")
        if blender:
            env["BLENDER_USER_SCRIPTS"] = str(tmp_path / "blender_scripts")
            env["BLENDER_USER_CONFIG"] = str(tmp_path / "blender_config")
            env["PYTHONPATH"] = str(numpy_path_dir(tmp_path))
            cmd = [blender, "-b", "--factory-startup", "--python-use-system-env", "--python-exit-code", "1",
                   "--python", str(SCENARIOS), "--", name, str(params_path), str(result_path)]
        else:
            cmd = [VENV_PYTHON, str(SCENARIOS), "--", name, str(params_path), str(result_path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=tmp_path)
        if proc.returncode != 0 or not result_path.is_file():
            raise AssertionError(f"scenario {name} failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
        return json.loads(result_path.read_text())
    return run


def synthetic_take(num_frames: int = 120, fps: float = 60.0):
    """A Take with every unit moving (distinct phases), head yaw ramping to +0.4 rad, all frames valid."""
    from backend.protocol.rotations import ypr_to_quat
    from backend.protocol.take import Take
    take = Take.empty(num_frames, fps, source="synthetic_take.mp4")
    t = np.arange(num_frames) / fps
    phases = np.linspace(0, np.pi, 52)
    take.weights = (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t[:, None] + phases[None])).astype(np.float32)
    take.weights = np.round(take.weights, 6).astype(np.float32)
    take.head_rotation = ypr_to_quat(np.linspace(0, 0.4, num_frames), np.zeros(num_frames),
                                     np.zeros(num_frames)).astype(np.float32)
    return take


@pytest.fixture
def synthetic_csv(tmp_path) -> Path:
    """A Live Link Face CSV of :func:`synthetic_take` (120 frames at 60 fps)."""
    from backend.protocol.livelink import write_livelink_csv
    path = tmp_path / "synthetic_take.csv"
    write_livelink_csv(path, synthetic_take())
    return path


@pytest.fixture
def faceless_clip(tmp_path) -> Path:
    """30 s of a moving gradient at 30 fps, 320x240: no face, long enough to cancel mid-run."""
    h, w, n = 240, 320, 900
    yy, xx = np.mgrid[0:h, 0:w]
    frames = (np.stack([(xx + 3 * i) % 256, (yy + 2 * i) % 256, np.full_like(xx, (5 * i) % 256)], -1).astype(np.uint8)
              for i in range(n))
    return write_video(tmp_path / "faceless.mp4", frames)


_INSPECT = r"""
import bpy, json, sys, numpy as np
argv = sys.argv[sys.argv.index('--') + 1:]
bpy.ops.wm.open_mainfile(filepath=argv[0])
out = {'fps': bpy.context.scene.render.fps, 'range': [bpy.context.scene.frame_start, bpy.context.scene.frame_end],
       'objects': sorted(o.name for o in bpy.data.objects), 'actions': {}, 'peaks': {}}
for a in bpy.data.actions:
    fcs = [fc for l in a.layers for s in l.strips for b in s.channelbags for fc in b.fcurves]
    out['actions'][a.name] = {fc.data_path + '[%d]' % fc.array_index: len(fc.keyframe_points) for fc in fcs}
    out['peaks'][a.name] = {fc.data_path + '[%d]' % fc.array_index: max((k.co[1] for k in fc.keyframe_points), default=0.0)
                            for fc in fcs}
obj = bpy.data.objects.get(argv[1])
if obj is not None and obj.data.shape_keys is not None:
    out['keys'] = [kb.name for kb in obj.data.shape_keys.key_blocks]
    out['verts'] = len(obj.data.vertices)
print('JSON' + json.dumps(out))
"""


def inspect_blend(blend, obj: str) -> dict:
    """Reopen ``blend`` in a fresh bpy process: fps, frame range, objects, every action's curves
    (``actions``: data path -> key count; ``peaks``: data path -> largest keyed value), and ``obj``'s
    shape-key names and vertex count."""
    proc = subprocess.run([sys.executable, "-c", _INSPECT, "--", str(blend), obj], capture_output=True, text=True,
                          check=True, timeout=120)
    return json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("JSON")][-1][4:])


def custom_character_keys() -> dict:
    """Shape keys of the built-in face as a character's own rig would name and mix them, not one ARKit
    unit each: Mouth_Open (jawOpen + lower lip), Smile (both corners), the two blinks (their names let
    the character solve find the eyes) and a nearly inert key named jawOpen that a name map would
    pick (it also marks the mouth).  Name -> (478, 3) float32 displacement, metres."""
    from backend.facemodel import load_face_model
    from backend.protocol.arkit import INDEX
    d = load_face_model().unit_deltas
    return {"Mouth_Open": d[INDEX["jawOpen"]] + 0.3 * (d[INDEX["mouthLowerDownLeft"]] + d[INDEX["mouthLowerDownRight"]]),
            "eyeBlinkLeft": d[INDEX["eyeBlinkLeft"]], "eyeBlinkRight": d[INDEX["eyeBlinkRight"]],
            "Smile": d[INDEX["mouthSmileLeft"]] + d[INDEX["mouthSmileRight"]], "jawOpen": 0.02 * d[INDEX["jawOpen"]]}
