"""Generated clips as Takes: dense displacements read back as ARKit weights; the chain and `facekey generate`."""
from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from backend.cli import app
from backend.facemodel import load_face_model
from backend.generation.generate import BUNDLED_GENERATORS, generate_clips, weights_from_dense
from backend.protocol.arkit import ARKIT_NAMES, INDEX, MIRROR
from backend.protocol.take import read_take, write_take


def test_weights_from_dense_recovers_the_units_that_made_the_motion():
    m = load_face_model()
    true = np.zeros((3, 52), np.float32)
    true[0, INDEX["jawOpen"]] = 0.7
    true[1, [INDEX["mouthSmileLeft"], INDEX["mouthSmileRight"]]] = (0.9, 0.4)
    true[2, INDEX["browInnerUp"]] = 1.0
    dense = np.tensordot(true, m.unit_deltas, axes=(1, 0))
    weights, residual = weights_from_dense(dense)
    np.testing.assert_allclose(weights, true, atol=2e-3)
    assert residual.max() < 1e-5                                       # metres: explained exactly


def test_weights_from_dense_boxes_weights_and_reports_what_is_left():
    m = load_face_model()
    dense = 1.6 * m.unit_deltas[INDEX["jawOpen"]][None]                   # beyond the unit's full range
    dense = np.concatenate([dense, -0.5 * m.unit_deltas[INDEX["eyeBlinkLeft"]][None]])   # a negative blink
    weights, residual = weights_from_dense(dense)
    assert weights.min() >= 0.0 and weights.max() <= 1.0
    assert weights[0, INDEX["jawOpen"]] == 1.0 and residual[0] > 1e-3   # the extra 60 % is left over
    assert weights[1, INDEX["eyeBlinkLeft"]] == 0.0 and residual[1] > 0.0


def test_weights_from_dense_never_drives_both_of_a_contradictory_pair():
    """A smile and a frown of the same corner, a lower-lip roll with a shrug, and a lip push the fit
    could explain with tongueOut: a capture never reads both of an exclusive pair, nor may a generated
    clip (the fit drove smile 0.6 + frown 0.4, and tongueOut to 1 on large mouth_open draws)."""
    from backend.protocol.arkit import EXCLUSIVE_PAIRS
    m = load_face_model()
    mixed = np.zeros((3, 52), np.float32)
    mixed[0, [INDEX["mouthSmileLeft"], INDEX["mouthFrownLeft"]]] = (0.6, 0.4)
    mixed[1, [INDEX["mouthRollLower"], INDEX["mouthShrugLower"]]] = (0.3, 0.8)
    mixed[2, [INDEX["jawOpen"], INDEX["tongueOut"]]] = (0.6, 1.0)
    weights, residual = weights_from_dense(np.tensordot(mixed, m.unit_deltas, axes=(1, 0)))
    for a, b in EXCLUSIVE_PAIRS:
        assert not np.any((weights[:, a] > 1e-3) & (weights[:, b] > 1e-3)), (ARKIT_NAMES[a], ARKIT_NAMES[b])
    assert weights[0, INDEX["mouthSmileLeft"]] > 0.1 and weights[1, INDEX["mouthShrugLower"]] > 0.5
    assert weights[:, INDEX["tongueOut"]].max() == 0.0 and weights[2, INDEX["jawOpen"]] > 0.5
    assert residual.max() < 2e-3                                       # what is left stays small (metres)


def test_motion_sizes_stay_in_the_range_the_units_can_hold():
    """A draw far above the label's training sizes saturated three or more units; sizes are now drawn
    from the normal truncated to SIZE_RANGE_SD, reproducibly."""
    from backend.generation.motion3dgan import SIZE_RANGE_SD, _motion_sizes
    sizes = _motion_sizes(2.0, 0.5, 5000, seed=3)
    lo, hi = SIZE_RANGE_SD
    assert sizes.min() >= 2.0 + lo * 0.5 - 1e-9 and sizes.max() <= 2.0 + hi * 0.5 + 1e-9
    assert sizes.std() > 0.25 and len(np.unique(sizes)) == 5000      # spread, not piled at the bounds
    np.testing.assert_array_equal(sizes, _motion_sizes(2.0, 0.5, 5000, seed=3))
    assert _motion_sizes(1.0, 10.0, 200, seed=0).min() >= 0.25        # never below a quarter of the mean


def test_apex_units_are_what_the_panel_and_the_cli_show():
    """The worker kept 0.054 as a unit 'above 0.05' and the panel printed it as 0.05."""
    from backend.generation.generate import apex_units
    w = np.zeros(52, np.float32)
    w[[INDEX["jawOpen"], INDEX["mouthFunnel"], INDEX["browInnerUp"]]] = (0.8, 0.054, 0.0561)
    assert apex_units(w) == {"jawOpen": 0.8, "browInnerUp": 0.06}


def test_generated_clips_are_takes_that_start_neutral(tiny_generators, tmp_path):
    gan, s2d = tiny_generators
    takes = generate_clips("mouth_open", 2, gan, s2d, seed=5, fps=24.0)
    assert [t.header["seed"] for t in takes] == [5, 6] and {t.header["label"] for t in takes} == {"mouth_open"}
    for t in takes:
        assert t.num_frames == 30 and t.fps == 24.0 and t.valid.all()
        assert t.dense_offsets.shape == (30, 478, 3) and np.abs(t.dense_offsets[0]).max() == 0.0
        assert t.weights[0].max() < 1e-6 and t.weights.min() >= 0.0 and t.weights.max() <= 1.0
        assert t.weights.sum() > 0.0                                  # the clip moves
    assert not np.allclose(takes[0].weights, takes[1].weights)       # another seed, another clip
    mirrored = generate_clips("mouth_open", 1, gan, s2d, seed=5, fps=24.0, mirror=True)[0]
    assert mirrored.header["mirrored"] is True
    np.testing.assert_array_equal(mirrored.weights, takes[0].weights[:, list(MIRROR)])
    mirror = load_face_model().mirror
    np.testing.assert_allclose(mirrored.dense_offsets[:, mirror, 0], -takes[0].dense_offsets[:, :, 0])
    np.testing.assert_allclose(mirrored.dense_offsets[:, mirror, 1:], takes[0].dense_offsets[:, :, 1:])
    again = read_take(write_take(tmp_path / "clip.npz", takes[0]))
    np.testing.assert_array_equal(again.dense_offsets, takes[0].dense_offsets)
    assert again.header["label"] == "mouth_open" and again.header["source"] == "generated_mouth_open_5"


def test_generate_command(tiny_generators, tmp_path):
    gan, s2d = tiny_generators
    runner = CliRunner()
    res = runner.invoke(app, ["generate", "eyebrow", "--gan", str(gan), "--s2d", str(s2d), "-n", "2",
                              "-o", str(tmp_path / "set")])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == ["eyebrow_0.npz", "eyebrow_1.npz"]
    assert "generated: eyebrow" in res.output
    res = runner.invoke(app, ["generate", "eyebrow", "--gan", str(gan), "--s2d", str(s2d), "-o",
                              str(tmp_path / "one.npz"), "--seed", "7"])
    assert res.exit_code == 0 and read_take(tmp_path / "one.npz").header["seed"] == 7
    for args, want in ((["grin", "--gan", str(gan), "--s2d", str(s2d), "-o", "x.npz"], "error[bad_argument]"),
                       (["eyebrow", "--gan", str(gan), "--s2d", str(s2d), "-n", "2", "-o", str(tmp_path / "x.npz")],
                        "error[bad_argument]"),
                       (["eyebrow", "--gan", str(tmp_path / "none"), "--s2d", str(s2d), "-o", "x.npz"],
                        "error[weights_missing]"),
                       (["eyebrow", "--gan", str(gan), "--s2d", str(s2d), "--fps", "0", "-o", "x.npz"],
                        "is not a frame rate"),
                       (["eyebrow", "--gan", str(gan), "--s2d", str(s2d), "--fps", "nan", "-o", "x.npz"],
                        "is not a frame rate")):
        res = runner.invoke(app, ["generate", *args], env={"FACEKEY_MOTION3DGAN": "", "FACEKEY_S2D": ""})
        assert res.exit_code == 2 and want in res.output and "hint:" in res.output, (args, res.output)
    res = runner.invoke(app, ["generate", "eyebrow", "-o", str(tmp_path / "bundled.npz")],
                        env={"FACEKEY_MOTION3DGAN": "", "FACEKEY_S2D": ""})
    assert res.exit_code == 0, res.output                              # no weights given: the bundled ones
    assert read_take(tmp_path / "bundled.npz").header["generator"]["motion3dgan"] == str(
        BUNDLED_GENERATORS / "motion3dgan")


def test_generate_names_mirrored_clips_apart_and_records_its_weights(tiny_generators, tmp_path):
    """A left/right data set built in one folder keeps both halves (--mirror wrote over the unmirrored
    files under the same names); the header says which estimator and which weights files (sha256) made
    the clip; a negative seed is a coded error, not a traceback."""
    import hashlib

    from backend.generation.motion3dgan import WEIGHTS_NAME
    gan, s2d = tiny_generators
    runner = CliRunner()
    base = ["generate", "mouth_side", "--gan", str(gan), "--s2d", str(s2d), "-n", "2", "-o", str(tmp_path / "set")]
    assert runner.invoke(app, base).exit_code == 0
    assert runner.invoke(app, [*base, "--mirror"]).exit_code == 0
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == [
        "mouth_side_0.npz", "mouth_side_0_mirrored.npz", "mouth_side_1.npz", "mouth_side_1_mirrored.npz"]
    plain, mirrored = (read_take(tmp_path / "set" / n) for n in ("mouth_side_0.npz", "mouth_side_0_mirrored.npz"))
    assert mirrored.header["source"] == "generated_mouth_side_0_mirrored" and mirrored.header["mirrored"] is True
    np.testing.assert_array_equal(mirrored.weights, plain.weights[:, list(MIRROR)])
    gan_file = gan / WEIGHTS_NAME if gan.is_dir() else gan
    assert plain.header["estimator"] == "motion3dgan+s2d"
    assert plain.header["weights_id"]["motion3dgan"] == hashlib.sha256(gan_file.read_bytes()).hexdigest()
    assert plain.header["settings"] == {"label": "mouth_side", "seed": 0, "mirror": False, "fps": 30.0}
    for seed in ("-1", str(2 ** 64)):
        res = runner.invoke(app, ["generate", "eyebrow", "--gan", str(gan), "--s2d", str(s2d), "--seed", seed,
                                  "-o", str(tmp_path / "neg.npz")])
        assert res.exit_code == 2 and "seed" in res.output.lower(), res.output      # a usage / coded error
        assert not isinstance(res.exception, (ValueError, OverflowError, RuntimeError)), res.exception
    with pytest.raises(Exception) as e:
        generate_clips("eyebrow", 2, gan, s2d, seed=2 ** 63 - 1)
    assert getattr(e.value, "code", None) == "bad_argument" and e.value.hint


@pytest.mark.parametrize("label, units", [("mouth_open", {"jawOpen"}), ("eyebrow", {"browInnerUp", "browOuterUpLeft",
                                                                                   "browOuterUpRight"}),
                                          ("high_smile", {"mouthSmileLeft", "mouthSmileRight"}),
                                          ("mouth_side", {"mouthLeft"})])
def test_bundled_generators_make_the_labelled_expression(label, units):
    """The shipped weights: each clip's apex is led by its label's own units (all 12 in bench_generation.py)."""
    for take in generate_clips(label, 3, seed=0):
        apex = take.weights[-1]
        top = {ARKIT_NAMES[i] for i in np.argsort(-apex)[:3]}
        assert top & units and max(apex[INDEX[u]] for u in units) > 0.3, (label, sorted(top))
        assert take.header["weights_residual_mm"] < 0.5


def test_exported_generators_are_small_and_generate_the_same_clips(tiny_generators, tmp_path):
    from safetensors import safe_open

    from training.motion3dgan.export import export_generators
    gan, s2d = tiny_generators
    files = export_generators(gan, s2d, tmp_path / "shipped")
    for path in files.values():
        with safe_open(path, "pt") as f:
            names = list(f.keys())
            assert names and not any(n.startswith("critic.") for n in names)  # inference never runs the critic
            assert {str(f.get_tensor(n).dtype) for n in names} == {"torch.float16"}
    a = generate_clips("lips_up", 1, gan, s2d, seed=2)[0]
    b = generate_clips("lips_up", 1, tmp_path / "shipped" / "motion3dgan", tmp_path / "shipped" / "s2d", seed=2)[0]
    np.testing.assert_allclose(b.dense_offsets, a.dense_offsets, atol=2e-4)      # float16: far below a millimetre


def test_generate_through_the_worker(tiny_generators, tmp_path, repo):
    """The add-on's request: one clip per call, the same seed the same clip; bad requests come back coded."""
    import sys

    from backend.protocol.client import BackendClient
    from backend.protocol.errors import FaceKeyError
    gan, s2d = tiny_generators
    args = {"label": "high_smile", "gan": str(gan), "s2d": str(s2d), "seed": 4, "fps": 25.0, "mirror": False}
    client = BackendClient(sys.executable, str(tmp_path / "backend.log"), cwd=str(repo))
    client.start(timeout=120)
    try:
        first = client.request("generate", {**args, "output": str(tmp_path / "a.npz")}, timeout=120)
        again = client.request("generate", {**args, "output": str(tmp_path / "b.npz")}, timeout=120)
        assert first["label"] == "high_smile" and first["seed"] == 4 and first["frames"] == 30
        a, b = read_take(first["take"]), read_take(again["take"])
        assert a.fps == 25.0 and a.header["label"] == "high_smile"
        np.testing.assert_array_equal(a.weights, b.weights)
        assert first["apex"] == {k: v for k, v in first["apex"].items() if v > 0.05}
        for bad, code in (({"label": "grin"}, "bad_argument"), ({"seed": "4"}, "bad_argument"),
                          ({"fps": 0}, "bad_argument"), ({"gan": str(tmp_path / "none")}, "weights_missing")):
            with pytest.raises(FaceKeyError) as e:
                client.request("generate", {**args, **bad, "output": str(tmp_path / "c.npz")}, timeout=120)
            assert e.value.code == code and e.value.hint, bad
        assert not (tmp_path / "c.npz").exists() and client.alive
    finally:
        client.close()
