"""Character solve in real Blender: the "Solve onto character" operator measures the active
mesh's own keys (not ARKit-named one-to-one), the real backend solves, a new action is baked."""
from __future__ import annotations

import numpy as np
import pytest

from blender_fixtures import VENV_PYTHON, custom_character_keys

pytest.importorskip("bpy")


@pytest.fixture
def custom_head(tmp_path):
    """The built-in face with :func:`custom_character_keys` (not one ARKit unit each)."""
    from backend.facemodel import load_face_model
    m = load_face_model()
    keys = custom_character_keys()
    path = tmp_path / "head.npz"
    np.savez(path, vertices=m.neutral, triangles=m.triangles, unit_deltas=np.stack(list(keys.values())),
             names=np.array(list(keys)))
    return path


@pytest.fixture
def jaw_take(tmp_path):
    from backend.protocol.arkit import INDEX
    from backend.protocol.take import Take, write_take
    t = Take.empty(48, 24.0, source="jaw_ramp.mp4", confidence="measured")   # as a capture writes it
    t.weights[:, INDEX["jawOpen"]] = np.concatenate([np.linspace(0, 1, 24), np.linspace(1, 0, 24)])
    t.confidence[40:] = 0.3
    return write_take(tmp_path / "jaw_ramp.npz", t)


def test_solve_operator_drives_the_mouth_key_not_the_eyes(run_scenario, custom_head, jaw_take):
    res = run_scenario("solve", {"python": VENV_PYTHON, "head_npz": str(custom_head), "take": jaw_take})
    assert res["rc"] == ["FINISHED"], res["state"]
    assert res["action"] == "FK_jaw_ramp"
    curves = {c["path"]: np.array(c["co"]).reshape(-1, 2) for c in res["curves"]}
    mouth = curves['key_blocks["Mouth_Open"].value']
    assert len(mouth) == 48 and mouth[:, 1].max() > 0.6 and mouth[0, 1] < 0.1
    for eye in ("eyeBlinkLeft", "eyeBlinkRight"):
        assert curves[f'key_blocks["{eye}"].value'][:, 1].max() < 0.05
    assert all(0.0 <= c[:, 1].min() and c[:, 1].max() <= 1.0 for c in curves.values())
    # the take's confidence comes along, so Unsure frames works on a solved character too
    np.testing.assert_allclose(curves['["facekey_confidence"]'][:, 1], np.r_[np.ones(40), np.full(8, 0.3)], atol=1e-6)
    assert res["before"]["actions"]["OldAction"] == res["after"]["actions"]["OldAction"]
    assert "solve" in res["state"]["report"] and res["state"]["status"] == "done"
