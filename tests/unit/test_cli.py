"""The facekey command line: CSV import/export, errors, capture, bake and batch argument checks."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from backend.cli import app
from backend.protocol.livelink import write_livelink_csv
from backend.protocol.take import Take, read_take, write_take

runner = CliRunner()


def _take(tmp_path, frames=40):
    take = Take.empty(frames, 30.0)
    take.weights[:, 17] = np.linspace(0, 0.8, frames)  # jawOpen
    return write_take(tmp_path / "t.npz", take)


def test_import_and_export_csv(tmp_path):
    src = write_livelink_csv(tmp_path / "a.csv", read_take(_take(tmp_path)))
    res = runner.invoke(app, ["import-csv", src, "-o", str(tmp_path / "b.npz")])
    assert res.exit_code == 0, res.output
    assert "40 frames" in res.output and "jawOpen" in res.output
    res = runner.invoke(app, ["export-csv", str(tmp_path / "b.npz"), "-o", str(tmp_path / "c.csv")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "c.csv").read_bytes() == (tmp_path / "a.csv").read_bytes()


def test_bridge_command(tmp_path):
    """`facekey bridge`: a new take with the unsure stretch bridged, the input untouched; a take without a
    measured confidence is a coded error naming why."""
    take = read_take(_take(tmp_path))
    take.header["confidence"] = "measured"
    take.confidence[10:15] = 0.3
    take.weights[10:15] = 1.0
    src = write_take(tmp_path / "captured.npz", take)
    before = open(src, "rb").read()
    res = runner.invoke(app, ["bridge", str(src), "-o", str(tmp_path / "bridged.npz")])
    assert res.exit_code == 0, res.output
    assert "bridged 1 unsure stretch(es), take frames 10-14 (5 of 40 frames)" in res.output
    out = read_take(tmp_path / "bridged.npz")
    assert out.header["bridged"] == [[10, 14]] and (out.weights[10:15] < 1.0).any()
    assert open(src, "rb").read() == before
    res = runner.invoke(app, ["bridge", str(_take(tmp_path)), "-o", str(tmp_path / "x.npz")])
    assert res.exit_code == 2 and "error[bad_argument]" in res.output and "measured no confidence" in res.output


def test_missing_file_is_a_coded_error(tmp_path):
    res = runner.invoke(app, ["export-csv", str(tmp_path / "none.npz"), "-o", str(tmp_path / "x.csv")])
    assert res.exit_code == 2
    assert "error[file_missing]" in res.output and "hint:" in res.output
    assert not (tmp_path / "x.csv").exists()


def test_malformed_csv_names_the_row(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("Timecode,BlendShapeCount,EyeBlinkLeft\n00:00:00:00.000,61,0.1\n")
    res = runner.invoke(app, ["import-csv", str(bad), "-o", str(tmp_path / "b.npz")])
    assert res.exit_code == 2 and "error[csv_invalid]" in res.output and "lacks column" in res.output


def test_bake_checks_arguments_before_starting_blender(tmp_path):
    take = _take(tmp_path)
    blend = tmp_path / "char.blend"
    blend.write_bytes(b"BLENDER")
    cases = [
        (["--objects", ","], "error[no_targets]"),
        (["--objects", "Head", "--head-bone", "Rig"], "error[bad_argument]"),
        (["--objects", "Head", "--head-bone", "Rig:head", "--head-object", "Head"], "error[bad_argument]"),
        (["--objects", "Head", "--name-map", "nosuch"], "error[bad_argument]"),
        (["--objects", "Head", "--name-map", str(tmp_path / "map.json")], "error[file_missing]"),
        # options the mode would silently not use (a solve bake exited 0 with no head rotation baked)
        (["--objects", "Head", "--mode", "solve", "--head-bone", "Rig:head"], "bakes no head rotation"),
        (["--objects", "Head", "--mode", "solve", "--name-map", "livelink"], "does not use --name-map"),
        (["--objects", "Head", "--keys", "Eye*"], "choose the keys of --mode solve"),
    ]
    for extra, want in cases:
        res = runner.invoke(app, ["bake", take, str(blend), "-o", str(tmp_path / "out.blend"), *extra])
        assert res.exit_code == 2 and want in res.output, (extra, res.output)
    (tmp_path / "map.json").write_text('{"notAUnit": "x"}')
    res = runner.invoke(app, ["bake", take, str(blend), "-o", str(tmp_path / "out.blend"), "--objects", "Head",
                              "--name-map", str(tmp_path / "map.json")])
    assert res.exit_code == 2 and "error[name_map_invalid]" in res.output
    res = runner.invoke(app, ["bake", take, str(tmp_path / "none.blend"), "-o", "x.blend", "--objects", "Head"])
    assert res.exit_code == 2 and "error[file_missing]" in res.output
    assert not (tmp_path / "out.blend").exists()


def test_batch_checks_arguments_before_starting_blender(tmp_path):
    blend = tmp_path / "char.blend"
    blend.write_bytes(b"BLENDER")
    takes = tmp_path / "takes"
    takes.mkdir()
    out = tmp_path / "out.blend"
    res = runner.invoke(app, ["batch", str(takes), str(blend), "-o", str(out), "--objects", "Head"])
    assert res.exit_code == 2 and "error[file_missing]" in res.output and "No takes" in res.output, res.output
    _take(takes)
    for extra, want in ((["--objects", ","], "error[no_targets]"),
                        (["--objects", "Head", "--head-bone", "Rig"], "error[bad_argument]"),
                        (["--objects", "Head", "--exclude-keys", "Jaw*"], "choose the keys of --mode solve"),
                        (["--objects", "Head", "--mode", "solve", "--head-bone", "Rig:head"], "no head rotation")):
        res = runner.invoke(app, ["batch", str(takes), str(blend), "-o", str(out), *extra])
        assert res.exit_code == 2 and want in res.output, (extra, res.output)
    res = runner.invoke(app, ["batch", str(tmp_path / "none"), str(blend), "-o", str(out), "--objects", "Head"])
    assert res.exit_code == 2 and "error[file_missing]" in res.output and "Take folder not found" in res.output
    assert not out.exists()


def test_capture_rejects_bad_settings(tmp_path):
    res = runner.invoke(app, ["capture", str(tmp_path / "clip.mp4"), "-o", str(tmp_path / "t.npz"),
                              "--smoothing", "-1"])
    assert res.exit_code == 2 and "error[bad_argument]" in res.output and "smoothing" in res.output


def test_facekey_script_is_installed():
    exe = __import__("shutil").which("facekey", path=str(__import__("pathlib").Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the project is not pip-installed in this environment (no facekey script)")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "capture" in out.stdout and "import-csv" in out.stdout


def _has_pipeline() -> bool:
    try:
        from backend.estimators import get_estimator  # noqa: F401
        from backend.footage import open_footage  # noqa: F401
        from backend.tracking import track_footage  # noqa: F401
    except ImportError:
        return False
    return True


_HAS_PIPELINE = _has_pipeline()


@pytest.mark.skipif(not _HAS_PIPELINE, reason="footage/tracking/estimators not available")
def test_capture_command(tmp_path):
    from test_worker_capture import short_clip

    clip = short_clip(tmp_path / "clip.mp4", frames=4)
    res = runner.invoke(app, ["capture", clip, "-o", str(tmp_path / "t.npz"), "--device", "cpu", "--smoothing", "0.5"])
    assert res.exit_code == 0, res.output
    take = read_take(tmp_path / "t.npz")
    assert take.num_frames == 4 and take.header["capture_settings"]["smoothing"] == 0.5
    assert "4 frames, 4 with a face" in res.output and "most active units" in res.output
    calm = int(take.weights.sum(axis=1).argmin())
    assert f"calmest frame: {calm} " in res.output and f"--rest-frame {calm}" in res.output
    res = runner.invoke(app, ["capture", clip, "-o", str(tmp_path / "r.npz"), "--device", "cpu", "--rest-frame", "9"])
    assert res.exit_code == 2 and "error[bad_argument]" in res.output and "outside the clip" in res.output
    assert not (tmp_path / "r.npz").exists()
    res = runner.invoke(app, ["capture", clip, "-o", str(tmp_path / "a.npz"), "--device", "cpu",
                              "--actor", str(tmp_path / "t.npz")])
    assert res.exit_code == 0, res.output
    actor_take = read_take(tmp_path / "a.npz")
    assert actor_take.header["actor_source"] == str(tmp_path / "t.npz")
    assert actor_take.header["identity"] == take.header["identity"]
    res = runner.invoke(app, ["capture", clip, "-o", str(tmp_path / "b.npz"), "--actor", str(tmp_path / "none.npz")])
    assert res.exit_code == 2 and "error[file_missing]" in res.output


def test_capture_several_clips_into_a_folder(tmp_path):
    """Several FOOTAGE: one take each in the -o folder, named after the clip; a clip without a face is
    listed with its error and the others are still written (exit code 3)."""
    from clips import write_video
    from test_worker_capture import short_clip

    a = short_clip(tmp_path / "a.mp4", frames=4)
    b = short_clip(tmp_path / "shot_b.mp4", frames=3)
    blank = write_video(tmp_path / "blank.mp4", [np.full((120, 160, 3), 90, np.uint8)] * 3)
    out = tmp_path / "takes"
    res = runner.invoke(app, ["capture", a, str(blank), b, "-o", str(out), "--device", "cpu"])
    assert res.exit_code == 3, res.output
    assert sorted(p.name for p in out.iterdir()) == ["a.npz", "shot_b.npz"]
    assert read_take(out / "a.npz").num_frames == 4 and read_take(out / "shot_b.npz").num_frames == 3
    assert "not captured" in res.output and "error" not in res.output.split("not captured")[0].lower()
    assert "[no_face]" in res.output and "hint:" in res.output
    for extra, want in ((["-o", str(out), "--rest-frame", "1"], "one clip"),
                        (["-o", str(tmp_path / "t.npz")], "folder")):
        res = runner.invoke(app, ["capture", a, b, *extra, "--device", "cpu"])
        assert res.exit_code == 2 and "error[bad_argument]" in res.output and want in res.output, res.output
    res = runner.invoke(app, ["capture", a, str(tmp_path / "sub" / "a.mp4"), "-o", str(out)])
    assert res.exit_code == 2 and "would both be written as a.npz" in res.output


def test_capture_a_folder_of_clips(tmp_path):
    """A folder of video clips as FOOTAGE: every clip of it becomes its own take in the -o folder, even
    when it holds one clip; -o must then be a folder."""
    from test_worker_capture import short_clip

    clips = tmp_path / "day1"
    clips.mkdir()
    short_clip(clips / "shot10.mp4", frames=3)
    short_clip(clips / "shot2.mov", frames=4)
    out = tmp_path / "takes"
    res = runner.invoke(app, ["capture", str(clips), "-o", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["shot10.npz", "shot2.npz"]
    assert read_take(out / "shot2.npz").num_frames == 4 and read_take(out / "shot10.npz").num_frames == 3
    assert res.output.index("shot2.mov") < res.output.index("shot10.mp4")     # natural order
    (clips / "shot10.mp4").unlink()
    res = runner.invoke(app, ["capture", str(clips), "-o", str(tmp_path / "t.npz"), "--device", "cpu"])
    assert res.exit_code == 2 and "error[bad_argument]" in res.output and "folder" in res.output


@pytest.mark.skipif(not _HAS_PIPELINE, reason="footage/tracking/estimators not available")
def test_capture_missing_footage(tmp_path):
    res = runner.invoke(app, ["capture", str(tmp_path / "none.mp4"), "-o", str(tmp_path / "t.npz"), "--device", "cpu"])
    assert res.exit_code == 2 and "error[file_missing]" in res.output
    assert not (tmp_path / "t.npz").exists()


def test_bench_capture_times_every_stage_side_by_side(tmp_path):
    """`facekey bench capture` on a 12-frame cut of the demo clip: every stage (hands included) is timed
    in the one run and the ratios are the fps ratios printed with them."""
    import json

    from clips import cut_clip

    clip = cut_clip(tmp_path / "cut.mp4", frames=12)
    res = runner.invoke(app, ["bench", "capture", str(clip), "--max-side", "360"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.output[res.output.index("{"):])
    assert r["frames"] == 12 and set(r["seconds"]) == {"decode", "landmarks", "hands", "capture"}
    assert r["hands_vs_landmarks"] == pytest.approx(r["fps"]["hands"] / r["fps"]["landmarks"])
    assert r["frames_with_face_covered"] == 0          # no hand in the first frames of the demo
    assert "landmarks with hands / without" in res.output
    hs = r["hand_search"]       # the palm detector on every frame vs every other frame while no hand is seen
    assert hs["speedup"] == pytest.approx(hs["seconds"]["every_frame"] / hs["seconds"]["skip_while_none"])
    assert hs["frames_with_face_covered"] == {"every_frame": 0, "skip_while_none": 0} and hs["mask_iou"] == 1.0
    assert "palm detector on every other frame" in res.output


def test_no_command_writes_over_its_input(tmp_path):
    """`-o` naming the input would destroy it (a capture wrote a take over the footage): refused before any
    work, the input untouched."""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not really a video")
    take = _take(tmp_path)
    csv = write_livelink_csv(tmp_path / "a.csv", read_take(take))
    for args, src in ((["capture", str(clip), "-o", str(clip)], clip),
                      (["capture", str(clip), "-o", str(tmp_path / "." / "clip.mp4")], clip),
                      (["export-csv", str(take), "-o", str(take)], take),
                      (["import-csv", csv, "-o", csv], csv),
                      (["bridge", str(take), "-o", str(take)], take)):
        before = open(src, "rb").read()
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and "error[bad_argument]" in res.output and "destroy" in res.output, args
        assert open(src, "rb").read() == before


def test_capture_checks_its_output_and_settings_before_tracking(tmp_path):
    """Each of these failed only after the whole clip was tracked (or crashed with a traceback, the capture
    lost); the footage here is not even a video, so any tracking would fail differently."""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not really a video")
    out = str(tmp_path / "t.npz")
    for extra, want in ((["-o", str(clip / "t.npz")], "is a file, not a folder"),
                        (["-o", out, "--sparsity", "inf"], "sparsity=inf"),
                        (["-o", out, "--smoothing", "nan"], "smoothing=nan"),
                        (["-o", out, "--estimator", "nope"], "unknown estimator 'nope'"),
                        (["-o", out, "--fan-weights", str(tmp_path / "fan.pth")], "only with landmarks 'fan'")):
        res = runner.invoke(app, ["capture", str(clip), "--device", "cpu", *extra])
        assert res.exit_code == 2 and "error[bad_argument]" in res.output and want in res.output, (extra, res.output)
    assert not (tmp_path / "t.npz").exists()


def test_take_summary_names_hands_only_when_one_was_seen():
    from rich.console import Console

    from backend.cli import _print_take_summary

    take = Take.empty(4, 30.0)
    for covered, said in ((0, False), (3, True)):
        take.header["occlusion"] = {"source": "mediapipe.solutions.hands", "frames_with_face_covered": covered}
        console = Console(record=True, width=200)
        _print_take_summary(console, take, "t.npz")
        assert ("a hand covers part of the face" in console.export_text()) is said


@pytest.mark.skipif(not _HAS_PIPELINE, reason="footage/tracking/estimators not available")
def test_capture_one_clip_into_a_folder_and_a_sequence_at_its_own_rate(tmp_path):
    """`-o folder` with one clip writes folder/<clip>.npz (it crashed after the capture); `--fps` sets an
    image sequence's rate (a 24 fps sequence was taken at 30 and baked 25% fast) and is refused for a video."""
    import cv2

    from backend.footage import open_footage
    from test_worker_capture import short_clip

    clip = short_clip(tmp_path / "clip.mp4", frames=3)
    out = tmp_path / "takes"
    out.mkdir()
    res = runner.invoke(app, ["capture", clip, "-o", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert [p.name for p in out.iterdir()] == ["clip.npz"] and read_take(out / "clip.npz").num_frames == 3
    res = runner.invoke(app, ["capture", clip, "-o", str(tmp_path / "v.npz"), "--fps", "24", "--device", "cpu"])
    assert res.exit_code == 2 and "is a video" in res.output and not (tmp_path / "v.npz").exists()
    seq = tmp_path / "seq"
    seq.mkdir()
    for f in open_footage(clip):
        cv2.imwrite(str(seq / f"frame_{f.index:03d}.png"), f.image[:, :, ::-1])
    res = runner.invoke(app, ["capture", str(seq), "-o", str(tmp_path / "s.npz"), "--fps", "24", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    take = read_take(tmp_path / "s.npz")
    assert take.fps == 24.0
    np.testing.assert_allclose(take.timestamps, np.arange(3) / 24.0)


def test_takes_are_named_after_the_footage_a_pattern_after_its_folder(tmp_path):
    from pathlib import Path

    from backend.cli import _footage_name

    assert _footage_name(Path("clips/shot_1.mp4")) == "shot_1"
    assert _footage_name(tmp_path / "day1") == "day1"
    assert _footage_name(Path("/data/frames/*.png")) == "frames"
    assert _footage_name(Path("/data/take2/f_%04d.png")) == "take2"


def test_rest_time_picks_the_footage_frame_shown_then():
    """The panel's rest frame is a scene frame: at 24 fps, scene frame 49 of footage starting at frame 1 is
    2 s in, which is frame 120 of a 60 fps clip (frame 48 was calibrated before, 0.8 s in)."""
    from types import SimpleNamespace

    from backend.capture import CaptureSettings, rest_frame_at
    from backend.protocol.errors import FaceKeyError

    clip = SimpleNamespace(timestamps=np.arange(300) / 60.0, fps=60.0)
    assert rest_frame_at(clip, (49 - 1) / 24) == 120
    assert rest_frame_at(clip, 0.0) == 0 and rest_frame_at(clip, 4.99) == 299
    with pytest.raises(FaceKeyError) as e:
        rest_frame_at(clip, 6.0)
    assert e.value.code == "bad_argument" and "lasts 5.00 s" in e.value.message
    with pytest.raises(FaceKeyError):
        CaptureSettings(rest_frame=3, rest_time=1.0).validate()
