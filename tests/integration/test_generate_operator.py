"""The Generate button: a labelled expression clip from the real backend, baked as a new action."""
from __future__ import annotations

import numpy as np
import pytest

from blender_fixtures import VENV_PYTHON
from test_bake_operator import static_key_data


@pytest.mark.slow
def test_generate_operator_bakes_a_labelled_clip_as_a_new_action(run_scenario, tiny_generators):
    gan, s2d = tiny_generators
    res = run_scenario("generate", {"python": VENV_PYTHON, "gan": str(gan), "s2d": str(s2d),
                                    "label": "mouth_open", "seed": 3, "start_frame": 10})

    missing = res["missing"]     # a weights folder that does not exist: the coded error, nothing changed
    assert missing["rc"] == ["CANCELLED"] and missing["unchanged"]
    assert missing["state"]["error_code"] == "weights_missing"
    assert "training.motion3dgan.train" in missing["state"]["error_hint"]

    assert res["rc"] == ["FINISHED"], res["state"]
    report = res["state"]["report"]
    assert report["generated"]["label"] == "mouth_open" and report["generated"]["seed"] == 3
    assert res["state"]["last_take"].endswith("mouth_open_3.npz")
    assert res["action"] == "FK_mouth_open_3"
    assert sorted(report["objects"]["Face"]["mapped"]) == sorted(
        ["jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "mouthSmileLeft", "browInnerUp"])
    assert len(res["curves"]) == 5
    for c in res["curves"]:
        co = np.array(c["co"]).reshape(-1, 2)
        assert co.shape == (30, 2)                                   # the generator's 30 frames ...
        np.testing.assert_allclose(co[:, 0], np.arange(10, 40))      # ... one per scene frame from Start frame
        assert co[0, 1] == pytest.approx(0.0, abs=1e-6)              # a clip starts at the neutral face
        assert co[:, 1].min() >= 0.0 and co[:, 1].max() <= 1.0
    for name, curves in res["before"]["actions"].items():            # the animator's actions are kept
        assert res["after"]["actions"][name] == curves
    assert static_key_data(res["after"]) == static_key_data(res["before"])
    labels = [text for kind, text in res["panel"] if kind == "label"]
    assert any(t.startswith("Generated mouth_open (seed 3, 30 frames)") for t in labels), labels
    gen = res["panel"].index(["panel", "Generate expression"])     # its own sub-panel, after the others
    assert ["operator", "facekey.generate"] in res["panel"][gen:] and ["prop", "gen_label"] in res["panel"][gen:]

    bundled = res["bundled"]     # weights fields empty: the generators that ship with the backend
    assert bundled["rc"] == ["FINISHED"], bundled["state"]
    assert bundled["action"] == "FK_mouth_open_4" and len(bundled["curves"]) == 5
    assert bundled["generator"]["motion3dgan"].replace("\\", "/").endswith("backend/assets/generators/motion3dgan")
    jaw = next(c for c in bundled["curves"] if c["path"] == 'key_blocks["jawOpen"].value')
    assert max(np.array(jaw["co"]).reshape(-1, 2)[:, 1]) > 0.3        # mouth_open opens the jaw
