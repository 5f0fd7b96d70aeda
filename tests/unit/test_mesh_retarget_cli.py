"""`facekey mesh-retarget`: a take onto a mesh without shape keys, as a .pc2 point cache."""
from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from backend.cli import app
from backend.facemodel import load_face_model
from backend.protocol.arkit import INDEX
from backend.protocol.take import Take, write_take
from backend.protocol.pc2 import read_pc2


def _obj(path, verts, tris):
    with open(path, "w") as f:
        f.writelines(f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in verts)
        f.writelines(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in tris)
    return path


def test_mesh_retarget_writes_a_cache_that_follows_the_take(tmp_path):
    m = load_face_model()
    target = _obj(tmp_path / "head.obj", m.neutral[:468] * 1.08, m.triangles)     # a bigger face, no keys
    take = Take.empty(10, 24.0, source="jaw.mp4")
    take.weights[:, INDEX["jawOpen"]] = np.linspace(0, 1, 10)
    take_path = write_take(tmp_path / "jaw.npz", take)
    res = CliRunner().invoke(app, ["mesh-retarget", take_path, str(target), "-o", str(tmp_path / "jaw.pc2")])
    assert res.exit_code == 0, res.output
    frames, start, rate = read_pc2(tmp_path / "jaw.pc2")
    assert frames.shape == (10, 468, 3) and start == 1.0
    rest = m.neutral[:468] * 1.08
    assert np.abs(frames[0] - rest).max() < 1e-4                       # neutral frame = rest shape (0.1 mm)
    chin = 152
    drops = rest[chin, 1] - frames[:, chin, 1]
    assert np.all(np.diff(drops) > 0) and drops[-1] > 0.01             # the chin goes down with jawOpen (> 1 cm)
    assert np.abs(frames[:, 10] - rest[10]).max() < 1e-3               # forehead stays (< 1 mm)


def test_mesh_retarget_errors_are_coded(tmp_path):
    res = CliRunner().invoke(app, ["mesh-retarget", str(tmp_path / "none.npz"), str(tmp_path / "none.obj"),
                                   "-o", str(tmp_path / "x.pc2")])
    assert res.exit_code == 2 and "file_missing" in res.output


def test_mesh_retarget_reads_a_live_link_csv_and_never_writes_over_its_input(tmp_path):
    """One .csv (a folder's .csv were read, a single one said 'not an .npz archive'); -o naming the take or
    the target is refused before anything is written."""
    from backend.protocol.livelink import write_livelink_csv
    from backend.protocol.take import read_take

    take_path, target = _jaw_files(tmp_path)
    csv = write_livelink_csv(tmp_path / "jaw.csv", read_take(take_path))
    res = CliRunner().invoke(app, ["mesh-retarget", csv, str(target), "-o", str(tmp_path / "csv.pc2")])
    assert res.exit_code == 0, res.output
    frames, _, _ = read_pc2(tmp_path / "csv.pc2")
    assert frames.shape == (10, 468, 3)
    before = open(target, "rb").read()
    res = CliRunner().invoke(app, ["mesh-retarget", take_path, str(target), "-o", str(target), "--frame", "3"])
    assert res.exit_code == 2 and "destroy" in res.output and open(target, "rb").read() == before


def _jaw_files(tmp_path):
    m = load_face_model()
    target = _obj(tmp_path / "head.obj", m.neutral[:468] * 1.08, m.triangles)
    take = Take.empty(10, 24.0, source="jaw.mp4")
    take.weights[:, INDEX["jawOpen"]] = np.linspace(0, 1, 10)
    return write_take(tmp_path / "jaw.npz", take), target


def test_frame_writes_only_that_frame_as_obj_or_one_sample_pc2(tmp_path):
    from backend.retarget.mesh_transfer import read_obj
    take_path, target = _jaw_files(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["mesh-retarget", take_path, str(target), "-o", str(tmp_path / "all.pc2")]).exit_code == 0
    res = runner.invoke(app, ["mesh-retarget", take_path, str(target), "-o", str(tmp_path / "f7.obj"), "--frame", "7"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["mesh-retarget", take_path, str(target), "-o", str(tmp_path / "f7.pc2"), "--frame", "7",
                              "--start-frame", "3"])
    assert res.exit_code == 0, res.output
    full = read_pc2(tmp_path / "all.pc2")[0]
    verts, tris = read_obj(tmp_path / "f7.obj")
    _, target_tris = read_obj(target)
    np.testing.assert_allclose(verts, full[7], atol=1e-6)                       # the deformed target at frame 7
    np.testing.assert_array_equal(tris, target_tris)                             # same faces
    one, start, _ = read_pc2(tmp_path / "f7.pc2")
    assert one.shape == (1, 468, 3) and start == 3.0 + 7
    np.testing.assert_allclose(one[0], full[7], atol=1e-6)


def test_frame_errors_are_coded(tmp_path):
    take_path, target = _jaw_files(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["mesh-retarget", take_path, str(target), "-o", str(tmp_path / "x.pc2"), "--frame", "10"])
    assert res.exit_code == 2 and "bad_argument" in res.output and "0 to 9" in res.output
    res = runner.invoke(app, ["mesh-retarget", take_path, str(target), "-o", str(tmp_path / "x.obj")])
    assert res.exit_code == 2 and "--frame" in res.output
    assert not (tmp_path / "x.pc2").exists() and not (tmp_path / "x.obj").exists()


def _help(*args: str) -> str:
    """``facekey ARGS --help`` as one line of words (rich wraps lines and draws boxes)."""
    out = CliRunner().invoke(app, [*args, "--help"]).output
    return " ".join(out.replace("\u2502", " ").split())


def test_help_documents_the_three_modes_and_the_preview_flag():
    top = _help()
    assert "name map" in top and "character solve" in top and "mesh-level" in top and "--frame N" in top
    bake = _help("bake")
    assert "namemap" in bake and "solve" in bake and "facekey mesh-retarget" in bake
    assert "--frame" in _help("mesh-retarget") and ".obj" in _help("mesh-retarget")


def test_mesh_retarget_a_take_folder_writes_one_cache_per_take(tmp_path):
    from backend.protocol.livelink import write_livelink_csv
    m = load_face_model()
    target = _obj(tmp_path / "head.obj", m.neutral[:468] * 1.08, m.triangles)
    takes = tmp_path / "takes"
    takes.mkdir()
    jaw = Take.empty(10, 24.0)
    jaw.weights[:, INDEX["jawOpen"]] = np.linspace(0, 1, 10)
    write_take(takes / "jaw.npz", jaw)
    smile = Take.empty(6, 24.0)
    smile.weights[:, INDEX["mouthSmileLeft"]] = 0.8
    write_livelink_csv(takes / "smile.csv", smile)
    (takes / "broken.npz").write_bytes(b"x")
    out = tmp_path / "caches"
    res = CliRunner().invoke(app, ["mesh-retarget", str(takes), str(target), "-o", str(out), "--start-frame", "5"])
    assert res.exit_code == 3, res.output
    assert "broken.npz not retargeted" in res.output and "take_invalid" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["jaw.pc2", "smile.pc2"]
    jaw_frames, start, _ = read_pc2(out / "jaw.pc2")
    smile_frames, _, _ = read_pc2(out / "smile.pc2")
    assert jaw_frames.shape == (10, 468, 3) and smile_frames.shape == (6, 468, 3) and start == 5.0
    rest = m.neutral[:468] * 1.08
    assert rest[152, 1] - jaw_frames[-1, 152, 1] > 0.01                # chin down at the end of the jaw take
    corner = 291                                                      # subject's left mouth corner
    assert smile_frames[0, corner, 1] - rest[corner, 1] > 0.002        # raised by the smile
    for extra, want in ((["-o", str(out), "--frame", "1"], "one take"), (["-o", str(tmp_path / "x.pc2")], "folder")):
        res = CliRunner().invoke(app, ["mesh-retarget", str(takes), str(target), *extra])
        assert res.exit_code == 2 and "error[bad_argument]" in res.output and want in res.output, res.output


def test_a_variable_rate_take_is_cached_on_its_own_clock(tmp_path):
    """A cache plays one sample per 1 / fps; a take's frames carry their real times.  A phone clip that
    slows to 15 fps for its second half, with one frame lost, must still put the jaw where a shape-key bake
    of the take puts it at each time (it used to run one sample per take frame: 0.2 s ahead by the end)."""
    from backend.retarget.mesh_transfer import weights_at_rate

    m = load_face_model()
    target = _obj(tmp_path / "head.obj", m.neutral[:468], m.triangles)
    times = np.r_[np.arange(10) / 30.0, 9 / 30.0 + np.arange(1, 7) / 15.0]         # 30 fps, then 15 fps
    take = Take.empty(len(times), 30.0, timestamps=times, source="phone.mp4")
    take.weights[:, INDEX["jawOpen"]] = times / times[-1]                              # the jaw opens with time
    take.valid[4] = False
    take.weights[4] = 0.0                                                              # a lost frame holds nothing
    res = CliRunner().invoke(app, ["mesh-retarget", write_take(tmp_path / "phone.npz", take), str(target),
                                   "-o", str(tmp_path / "phone.pc2")])
    assert res.exit_code == 0, res.output
    frames, _, _ = read_pc2(tmp_path / "phone.pc2")
    assert len(frames) == round(times[-1] * 30) + 1 == 22                            # 0.7 s at 30 samples a second
    jaw = weights_at_rate(take)[:, INDEX["jawOpen"]]
    np.testing.assert_allclose(jaw, np.arange(22) / 30.0 / times[-1], atol=1e-6)    # the take's value at k / 30 s
    drop = m.neutral[152, 1] - frames[:, 152, 1]
    full = drop[-1]
    np.testing.assert_allclose(drop / full, jaw, atol=0.02)                            # the chin follows that value

    res = CliRunner().invoke(app, ["mesh-retarget", str(tmp_path / "phone.npz"), str(target), "-o",
                                   str(tmp_path / "f15.pc2"), "--frame", "15"])
    assert res.exit_code == 0, res.output
    assert read_pc2(tmp_path / "f15.pc2")[1] == pytest.approx(1.0 + times[15] * 30)     # where the cache shows it

    steady = Take.empty(12, 25.0, source="steady.mp4")
    steady.weights[:, INDEX["mouthSmileLeft"]] = np.linspace(0, 1, 12)
    np.testing.assert_allclose(weights_at_rate(steady), steady.weights, atol=1e-6)     # a constant rate: its frames


def test_a_take_whose_times_run_far_past_its_frames_is_refused(tmp_path):
    """Ten frames, the last stamped 600 s in (a broken clock): the cache would hold 18,001 samples
    (100 MB and 47 s; a MemoryError at 1e12 s).  It is a coded error naming the span."""
    m = load_face_model()
    target = _obj(tmp_path / "head.obj", m.neutral[:468], m.triangles)
    take = Take.empty(10, 30.0, timestamps=np.r_[np.arange(9) / 30.0, 600.0], source="broken.mp4")
    res = CliRunner().invoke(app, ["mesh-retarget", write_take(tmp_path / "broken.npz", take), str(target),
                                   "-o", str(tmp_path / "broken.pc2")])
    assert res.exit_code == 2 and "take_invalid" in res.output and "600 s" in res.output
    assert not (tmp_path / "broken.pc2").exists()
