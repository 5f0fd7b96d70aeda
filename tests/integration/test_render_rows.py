"""The headless ``render`` command (``blender_runner.render_take_rows``): a take baked onto a character and
rendered from the front, in real Blender (bpy module), read back by the capture."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("bpy")


@pytest.fixture
def arkit_head(tmp_path):
    """A .blend whose "FaceKeyHead" has our 52 units as ARKit-named keys (the demo head)."""
    from backend.blender_runner import build_head_blend
    from backend.facemodel import load_face_model
    from backend.protocol.arkit import ARKIT_NAMES
    from backend.protocol.take import Take, write_take
    m = load_face_model()
    npz = tmp_path / "head.npz"
    np.savez(npz, vertices=m.neutral, triangles=m.triangles, unit_deltas=m.unit_deltas, names=np.array(ARKIT_NAMES))
    blend = tmp_path / "head.blend"
    build_head_blend(npz, write_take(tmp_path / "still.npz", Take.empty(2, 24.0)), blend)
    return blend


def test_render_rows_show_the_baked_expression_to_the_capture(arkit_head, tmp_path):
    """Rows 0 and 7 of a jaw-opening take render as two front views of the head, and the capture reads the
    jaw opening between them.  (Our low-poly head is a poor face to render: its inner lips rest 5.5 mm
    apart and its mouth has no hole, so what its closed row reads depends on the lighting; the rise is
    what this checks.)"""
    import cv2

    from backend.blender_runner import render_take_rows
    from backend.estimators import SolverSettings, get_estimator
    from backend.footage import open_footage
    from backend.protocol.arkit import INDEX
    from backend.protocol.take import Take, write_take
    from backend.tracking import track_footage
    take = Take.empty(8, 24.0, source="jaw.mp4")
    take.weights[:, INDEX["jawOpen"]] = np.linspace(0.0, 0.8, 8)
    out = render_take_rows(write_take(tmp_path / "jaw.npz", take), arkit_head, "FaceKeyHead", tmp_path / "frames",
                           every=7, size=360)
    assert out["rows"] == [0, 7] and out["object"] == "FaceKeyHead" and out["action"].startswith("FK_jaw")
    images = [cv2.imread(f) for f in out["files"]]
    assert all(im.shape == (360, 360, 3) for im in images) and np.abs(images[0].astype(int) - images[1]).max() > 50
    weights = [get_estimator("solver").estimate(track_footage(open_footage(f)), SolverSettings()).weights[0]
               for f in out["files"]]
    assert weights[1][INDEX["jawOpen"]] - weights[0][INDEX["jawOpen"]] >= 0.4


def test_render_rows_refuses_bad_arguments(arkit_head, tmp_path):
    """A row step below 1 or more than one object is refused with a coded error, before anything renders."""
    from backend.blender_runner import render_take_rows
    from backend.protocol.errors import FaceKeyError
    from backend.protocol.take import Take, write_take
    take_path = write_take(tmp_path / "t.npz", Take.empty(4, 24.0))
    with pytest.raises(FaceKeyError) as err:
        render_take_rows(take_path, arkit_head, "FaceKeyHead", tmp_path / "a", every=0)
    assert err.value.code == "bad_argument" and "--every" in err.value.message
    with pytest.raises(FaceKeyError) as err:
        render_take_rows(take_path, arkit_head, "FaceKeyHead,FaceKeyCamera", tmp_path / "b")
    assert err.value.code == "bad_argument" and "one object" in err.value.message
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
