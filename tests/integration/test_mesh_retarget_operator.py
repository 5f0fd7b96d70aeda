"""Mesh-level retarget in real Blender: the "Mesh-level retarget" operator moves a mesh without shape
keys with a take through the real backend, as a Mesh Cache modifier or as corrective shape keys."""
from __future__ import annotations

import numpy as np
import pytest

from blender_fixtures import VENV_PYTHON

pytest.importorskip("bpy")

CHIN = 152


@pytest.fixture
def blender_head(tmp_path):
    """The built-in neutral face in Blender object axes: local = (x_h, -z_h, y_h), metres."""
    from backend.facemodel import load_face_model
    m = load_face_model()
    v = m.neutral[:468].astype(np.float64)
    path = tmp_path / "head.npz"
    np.savez(path, vertices=np.stack([v[:, 0], -v[:, 2], v[:, 1]], 1), triangles=m.triangles)
    return path


@pytest.fixture
def jaw_take(tmp_path):
    from backend.protocol.arkit import INDEX
    from backend.protocol.take import Take, write_take
    t = Take.empty(24, 24.0, source="jaw_ramp.mp4")
    t.weights[:, INDEX["jawOpen"]] = np.linspace(0, 1, 24)
    return write_take(tmp_path / "jaw_ramp.npz", t)


def test_mesh_cache_output_lowers_the_chin(run_scenario, blender_head, jaw_take):
    res = run_scenario("mesh_retarget", {"python": VENV_PYTHON, "head_npz": str(blender_head), "take": jaw_take,
                                         "output": "MESH_CACHE", "chin": CHIN})
    assert res["rc"] == ["FINISHED"], res["state"]
    assert res["modifiers"] == ["MESH_CACHE"] and res["mesh_changed_m"] == 0.0
    chin = np.array(res["chin_z"])
    assert chin[-1] < chin[0] - 0.01                                   # > 1 cm lower at full jawOpen
    assert res["max_error_vs_cache_mm"] < 1e-3                         # each frame plays its sample
    assert res["state"]["report"]["mesh"]["max_displacement_mm"] > 10


def test_mesh_cache_of_a_variable_rate_take_keeps_its_clock(run_scenario, blender_head, tmp_path):
    """A 24 fps take that drops to 12 fps halfway, its jaw opening steadily with time: the cache is
    sampled on the take's clock, so the chin falls steadily with scene frames (one sample per take frame
    ran the second half twice as fast as the clip)."""
    from backend.protocol.arkit import INDEX
    from backend.protocol.take import Take, write_take
    times = np.r_[np.arange(12) / 24.0, 11 / 24.0 + np.arange(1, 7) / 12.0]
    t = Take.empty(len(times), 24.0, timestamps=times, source="phone.mp4")
    t.weights[:, INDEX["jawOpen"]] = times / times[-1]
    res = run_scenario("mesh_retarget", {"python": VENV_PYTHON, "head_npz": str(blender_head),
                                         "take": write_take(tmp_path / "phone.npz", t), "output": "MESH_CACHE",
                                         "chin": CHIN})
    assert res["rc"] == ["FINISHED"], res["state"]
    chin = np.array(res["chin_z"])
    assert len(chin) == round(times[-1] * 24) + 1                      # one sample per scene frame of the clip
    drop = (chin[0] - chin) / (chin[0] - chin[-1])
    np.testing.assert_allclose(drop, np.arange(len(chin)) / (len(chin) - 1), atol=0.02)
    assert res["max_error_vs_cache_mm"] < 1e-3


def test_shape_keys_output_reproduces_the_cache(run_scenario, blender_head, jaw_take):
    res = run_scenario("mesh_retarget", {"python": VENV_PYTHON, "head_npz": str(blender_head), "take": jaw_take,
                                         "output": "SHAPE_KEYS", "chin": CHIN})
    assert res["rc"] == ["FINISHED"], res["state"]
    assert res["modifiers"] == [] and res["mesh_changed_m"] == 0.0
    mesh = res["state"]["report"]["mesh"]
    names = [n for n, _ in res["keys"]]
    assert names[0] == "Basis" and names[1:] == [f"FK_jaw_ramp_c{i:02d}" for i in range(mesh["keys"])]
    assert 1 <= mesh["keys"] <= 16 and mesh["variance"] >= 0.995
    assert all(lo == -1.0 for _, lo in res["keys"][1:])
    assert res["action"] == "FK_jaw_ramp"
    assert res["max_error_vs_cache_mm"] < 0.5                          # keys + action replay the .pc2 geometry
    chin = np.array(res["chin_z"])
    assert chin[-1] < chin[0] - 0.01


def test_serep_weights_from_the_panel_reach_the_backend(run_scenario, blender_head, jaw_take, tmp_path):
    """The panel's SEREP weights field is sent as ``serep``: a missing file is the backend's coded error
    (blendshape transfer would have succeeded), and nothing is added to the mesh."""
    missing = tmp_path / "nowhere" / "serep.safetensors"
    res = run_scenario("mesh_retarget", {"python": VENV_PYTHON, "head_npz": str(blender_head), "take": jaw_take,
                                         "output": "MESH_CACHE", "chin": CHIN, "serep": str(missing)})
    assert res["rc"] == ["CANCELLED"]
    assert res["state"]["error_code"] == "weights_missing" and str(missing) in res["state"]["error_message"]
    assert res["state"]["error_hint"] and res["modifiers"] == [] and res["mesh_changed_m"] == 0.0
