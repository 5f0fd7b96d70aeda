"""Footage decoding: synthetic clips made with PyAV in tmp dirs (fast, no shared data)."""
from __future__ import annotations

import hashlib
import logging
import os
from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")

from backend.footage import (Orientation, apply_orientation, clip_files, iter_frames,  # noqa: E402
                             natural_sort_key, open_footage, scaled_size, sha256_file, sha256_files)
from backend.footage.orientation import (orientation_from_degrees,  # noqa: E402
                                         orientation_from_display_matrix, orientation_from_rotate_tag)
from backend.protocol.errors import FaceKeyError  # noqa: E402

W, H = 64, 48


def drawn(i: int, w: int = W, h: int = H) -> np.ndarray:
    """A frame with a bright marker in the top-left corner and a per-frame grey level."""
    img = np.full((h, w, 3), (i * 20) % 200 + 20, np.uint8)
    img[: h // 4, : w // 4] = 255
    return img


def make_clip(path, n=10, codec="libx264", fps=30, pts=None, time_base=None, rotation=None, hflip=False,
              faststart=False, size=(W, H), frame_fn=drawn):
    """Encode ``n`` drawn frames; ``pts`` (ints in ``time_base``) makes a variable-rate clip."""
    opts = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=opts) as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height = size
        s.pix_fmt = "yuv420p"
        if codec == "libx265":
            s.options = {"x265-params": "log-level=none"}
        if time_base is not None:
            s.time_base = time_base
        if rotation is not None:
            s.set_display_rotation(rotation, hflip=hflip)
        for i in range(n):
            f = av.VideoFrame.from_ndarray(frame_fn(i, *size), format="rgb24")
            if pts is not None:
                f.pts, f.time_base = pts[i], time_base
            for pk in s.encode(f):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return str(path)


def marker_corner(img: np.ndarray) -> str:
    """Which corner of the image holds the bright marker ('tl', 'tr', 'bl', 'br')."""
    h, w = img.shape[:2]
    q = {"tl": img[: h // 8, : w // 8], "tr": img[: h // 8, -(w // 8):],
         "bl": img[-(h // 8):, : w // 8], "br": img[-(h // 8):, -(w // 8):]}
    return max(q, key=lambda k: q[k].mean())


# -- videos ---------------------------------------------------------------------------------


def test_h264_clip_streams_frames_with_times(tmp_path):
    p = make_clip(tmp_path / "a.mp4", n=10)
    foot = open_footage(p)
    assert foot.info.kind == "video" and foot.info.codec == "h264" and foot.info.decoder == "pyav"
    assert (foot.info.width, foot.info.height) == (W, H)
    assert foot.info.fps == pytest.approx(30.0)
    assert foot.info.num_frames == 10
    frames = list(foot)
    assert [f.index for f in frames] == list(range(10))
    assert all(f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 for f in frames)
    np.testing.assert_allclose([f.time for f in frames], np.arange(10) / 30.0, atol=1e-3)
    assert frames[0].time == 0.0
    # Grey levels come back in order (the decoder did not reorder or drop frames).
    levels = [int(np.median(f.image[H // 2:, W // 2:, 0])) for f in frames]
    np.testing.assert_allclose(levels, [(i * 20) % 200 + 20 for i in range(10)], atol=6)
    assert foot.frames_decoded == 10 and not foot.truncated and foot.warnings == []
    # A second pass decodes again from the start.
    assert sum(1 for _ in foot) == 10


def test_hevc_clip(tmp_path):
    if "libx265" not in av.codecs_available:
        pytest.skip("PyAV's FFmpeg has no HEVC encoder (HEVC decoding is covered by the realdata .mov test)")
    p = make_clip(tmp_path / "h.mp4", n=10, codec="libx265")
    foot = open_footage(p)
    assert foot.info.codec == "hevc"
    frames = list(foot)
    assert len(frames) == 10 and frames[0].image.shape == (H, W, 3)
    np.testing.assert_allclose([f.time for f in frames], np.arange(10) / 30.0, atol=1e-3)


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_variable_frame_rate_times_are_kept(tmp_path, ext):
    tb = Fraction(1, 1000)
    pts = [0, 33, 66, 200, 233, 500, 533, 566, 600, 1000]
    p = make_clip(tmp_path / f"vfr.{ext}", n=10, pts=pts, time_base=tb)
    times = [f.time for f in open_footage(p)]
    np.testing.assert_allclose(times, np.array(pts) / 1000.0, atol=1.5e-3)
    assert np.all(np.diff(times) > 0)


@pytest.mark.parametrize("degrees,hflip,shape,corner", [
    (90, False, (W, H, 3), "bl"),    # counter-clockwise quarter turn: top-left -> bottom-left
    (-90, False, (W, H, 3), "tr"),   # clockwise (a phone held upright): top-left -> top-right
    (180, False, (H, W, 3), "br"),
    (0, True, (H, W, 3), "tr"),      # mirrored
])
def test_rotation_metadata_is_applied(tmp_path, degrees, hflip, shape, corner):
    p = make_clip(tmp_path / "rot.mp4", n=3, rotation=degrees, hflip=hflip)
    foot = open_footage(p)
    assert (foot.info.height, foot.info.width, 3) == shape
    frames = list(foot)
    assert frames[0].image.shape == shape
    assert marker_corner(frames[0].image) == corner
    assert frames[0].image.flags["C_CONTIGUOUS"]


def test_unrotated_marker_stays_top_left(tmp_path):
    p = make_clip(tmp_path / "plain.mp4", n=2)
    assert marker_corner(next(iter(open_footage(p))).image) == "tl"


def test_display_matrix_and_rotate_tag_parsing():
    def matrix(a, b, c, d):
        return [int(a * 65536), int(b * 65536), 0, int(c * 65536), int(d * 65536), 0, 0, 0, 1 << 30]

    assert orientation_from_display_matrix(matrix(1, 0, 0, 1)) == Orientation(0, False)
    assert orientation_from_display_matrix(matrix(0, -1, 1, 0)) == Orientation(1, False)   # PyAV rotation=90
    assert orientation_from_display_matrix(matrix(0, 1, -1, 0)) == Orientation(3, False)   # rotation=-90
    assert orientation_from_display_matrix(matrix(-1, 0, 0, -1)) == Orientation(2, False)
    assert orientation_from_display_matrix(matrix(-1, 0, 0, 1)) == Orientation(0, True)
    # The legacy tag is clockwise: rotate=90 is a -90 (clockwise) turn.
    assert orientation_from_rotate_tag("90") == Orientation(3)
    assert orientation_from_rotate_tag("270") == Orientation(1)
    assert orientation_from_rotate_tag(None) == Orientation(0)
    assert orientation_from_rotate_tag("junk") == Orientation(0)
    assert orientation_from_degrees(-180.0) == Orientation(2)
    img = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(apply_orientation(img, Orientation(1)), np.rot90(img))
    np.testing.assert_array_equal(apply_orientation(img, Orientation(0, True)), img[:, ::-1])
    assert Orientation(1).display_size(640, 360) == (360, 640)


def test_max_side_downscales(tmp_path):
    p = make_clip(tmp_path / "big.mp4", n=3, size=(320, 240))
    foot = open_footage(p, max_side=160)
    assert (foot.info.width, foot.info.height) == (160, 120)
    assert (foot.info.full_width, foot.info.full_height) == (320, 240)
    assert foot.info.scale == pytest.approx(0.5)
    frames = list(foot)
    assert all(f.image.shape == (120, 160, 3) for f in frames)
    assert marker_corner(frames[0].image) == "tl"
    # Rotation and downscaling together: the longer displayed side is the limit.
    p = make_clip(tmp_path / "bigrot.mp4", n=2, size=(320, 240), rotation=90)
    foot = open_footage(p, max_side=160)
    assert (foot.info.width, foot.info.height) == (120, 160)
    assert next(iter(foot)).image.shape == (160, 120, 3)
    assert scaled_size(100, 50, None) == (100, 50) and scaled_size(100, 50, 200) == (100, 50)


def test_sha256_matches_hashlib(tmp_path):
    p = make_clip(tmp_path / "a.mp4", n=5)
    want = hashlib.sha256(open(p, "rb").read()).hexdigest()
    assert sha256_file(p) == want
    assert open_footage(p).sha256() == want


# -- image sequences and photos --------------------------------------------------------------


def write_sequence(folder, names, size=(W, H)):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        img = np.full((size[1], size[0], 3), i * 10 + 5, np.uint8)
        assert cv2.imwrite(str(folder / name), img)


def test_image_sequence_natural_order_and_fps(tmp_path):
    # Written in natural order f1, f2, f10 -> grey levels 5, 15, 25; a plain sort would put f10 second.
    seq = tmp_path / "seq"
    write_sequence(seq, ["f1.png", "f2.png", "f10.png"])
    (seq / "notes.txt").write_text("not an image")
    foot = open_footage(seq, fps=24)
    assert foot.info.kind == "image_sequence" and foot.info.num_frames == 3 and foot.info.fps == 24
    frames = list(foot)
    assert [int(f.image[0, 0, 0]) for f in frames] == [5, 15, 25]
    np.testing.assert_allclose([f.time for f in frames], [0, 1 / 24, 2 / 24])
    assert natural_sort_key("f2.png") < natural_sort_key("f10.png")
    # The sequence digest covers every frame.
    d1 = foot.sha256()
    assert d1 == sha256_files(foot.info.files)
    write_sequence(seq, ["f1.png", "f2.png", "f10.png"][:1])  # rewrite f1 with the same content
    assert open_footage(seq).sha256() == d1
    cv2.imwrite(str(seq / "f10.png"), np.zeros((H, W, 3), np.uint8))
    assert open_footage(seq).sha256() != d1


def test_image_sequence_default_fps_and_size_mismatch(tmp_path):
    seq = tmp_path / "seq"
    write_sequence(seq, ["a_000.jpg", "a_001.jpg"])
    assert open_footage(seq).info.fps == 30.0
    cv2.imwrite(str(seq / "a_002.jpg"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(FaceKeyError) as e:     # when opened: no frame is tracked before the odd one fails
        open_footage(seq)
    assert e.value.code == "video_unreadable" and "a_002.jpg" in str(e.value) and "10x10" in str(e.value)


@pytest.mark.parametrize("ext", [".jpg", ".png", ".ppm", ".bmp", ".webp"])
def test_single_photo(tmp_path, ext):
    p = tmp_path / f"photo{ext}"
    img = drawn(0, 80, 60)
    assert cv2.imwrite(str(p), img[:, :, ::-1])
    foot = open_footage(p)
    assert foot.info.kind == "image" and foot.info.num_frames == 1
    frames = list(foot)
    assert len(frames) == 1 and frames[0].time == 0.0 and frames[0].image.shape == (60, 80, 3)
    assert marker_corner(frames[0].image) == "tl"
    assert list(iter_frames(p, max_side=40))[0].image.shape == (30, 40, 3)


def test_photo_exif_orientation(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    im = pil.fromarray(drawn(0, 80, 40))
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    p = tmp_path / "exif.jpg"
    im.save(p, exif=exif.tobytes())
    frame = next(iter(open_footage(p)))
    assert frame.image.shape == (80, 40, 3)
    assert marker_corner(frame.image) == "tr"


def test_rgb_channel_order(tmp_path):
    p = tmp_path / "red.png"
    img = np.zeros((20, 20, 3), np.uint8)
    img[..., 2] = 255  # red in OpenCV's BGR
    cv2.imwrite(str(p), img)
    frame = next(iter(open_footage(p)))
    assert frame.image[0, 0].tolist() == [255, 0, 0]


# -- errors ----------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(FaceKeyError) as e:
        open_footage(tmp_path / "nope.mp4")
    assert e.value.code == "file_missing" and "nope.mp4" in e.value.message


def test_text_file_renamed_mp4(tmp_path):
    p = tmp_path / "notes.mp4"
    p.write_text("this is not a video\n" * 50)
    with pytest.raises(FaceKeyError) as e:
        open_footage(p)
    assert e.value.code == "video_unreadable"
    assert "notes.mp4" in e.value.message and "H.264" in e.value.hint


def test_garbage_bytes(tmp_path):
    p = tmp_path / "noise.mov"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(FaceKeyError) as e:
        open_footage(p)
    assert e.value.code == "video_unreadable"


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.mp4"
    p.write_bytes(b"")
    with pytest.raises(FaceKeyError) as e:
        open_footage(p)
    assert e.value.code == "video_empty" and "0 bytes" in e.value.message


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_container_without_video_frames(tmp_path, ext):
    """An audio-only file, or a video track with no frames, is ``video_empty``."""
    p = str(tmp_path / f"silent.{ext}")
    with av.open(p, "w") as c:
        v = c.add_stream("libx264", rate=30)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        a = c.add_stream("aac", rate=44100)
        fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        fr.sample_rate = 44100
        for pk in a.encode(fr):
            c.mux(pk)
        for pk in a.encode():
            c.mux(pk)
        for pk in v.encode():
            c.mux(pk)
    with pytest.raises(FaceKeyError) as e:
        open_footage(p)
    assert e.value.code == "video_empty"


def test_truncated_mp4_without_index_is_unreadable(tmp_path):
    """An MP4 keeps its index (moov) at the end by default: half a file cannot be opened."""
    p = make_clip(tmp_path / "full.mp4", n=60, frame_fn=noisy)
    cut = tmp_path / "cut.mp4"
    data = open(p, "rb").read()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FaceKeyError) as e:
        open_footage(cut)
    assert e.value.code == "video_unreadable" and "cut.mp4" in e.value.message


@pytest.mark.parametrize("ext,faststart", [("mp4", True), ("mkv", False)])
def test_truncated_clip_yields_decodable_frames(tmp_path, caplog, ext, faststart):
    """With the index up front (faststart MP4, MKV), a cut file yields its first frames and warns."""
    p = make_clip(tmp_path / f"full.{ext}", n=60, faststart=faststart, frame_fn=noisy)
    cut = tmp_path / f"cut.{ext}"
    data = open(p, "rb").read()
    cut.write_bytes(data[: len(data) // 2])
    foot = open_footage(cut)
    with caplog.at_level(logging.WARNING, logger="backend.footage"):
        frames = list(foot)
    assert 5 <= len(frames) < 60
    assert foot.truncated and foot.warnings
    assert any("cut short" in r.getMessage() for r in caplog.records)
    assert np.all(np.diff([f.time for f in frames]) > 0)


def test_damaged_middle_is_skipped(tmp_path, caplog):
    """Garbage in the middle of an MP4: the bad packets are skipped, the rest decodes."""
    p = make_clip(tmp_path / "src.mp4", n=60, frame_fn=noisy)
    data = bytearray(open(p, "rb").read())
    n = len(data)
    data[n // 3:n // 3 + 3000] = np.random.default_rng(3).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    foot = open_footage(bad)
    with caplog.at_level(logging.WARNING, logger="backend.footage"):
        frames = list(foot)
    assert 40 <= len(frames) < 60 and foot.truncated
    assert any("undecodable" in w for w in foot.warnings)
    assert frames[-1].time > 1.5  # frames after the damage were decoded
    assert np.all(np.diff([f.time for f in frames]) > 0)


def noisy(i, w, h):
    """Incompressible frames, so that half of the file holds about half of the frames."""
    return np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_empty_folder(tmp_path):
    (tmp_path / "frames").mkdir()
    with pytest.raises(FaceKeyError) as e:
        open_footage(tmp_path / "frames")
    assert e.value.code == "video_empty"


def test_folder_of_clips_is_listed_and_not_opened_as_one_footage(tmp_path):
    """A folder holding videos and no images is a folder of clips: ``clip_files`` lists them in natural
    order (hidden files left out), and ``open_footage`` refuses it, naming the clips and both fixes."""
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("take10.mp4", "take2.MOV", ".take3.mp4"):
        make_clip(clips / name, n=2)
    (clips / "notes.txt").write_text("shot list")
    assert clip_files(clips) == [str(clips / "take2.MOV"), str(clips / "take10.mp4")]
    with pytest.raises(FaceKeyError) as e:
        open_footage(clips)
    assert e.value.code == "bad_argument"
    assert "2 video clip(s) (take2.MOV, take10.mp4)" in e.value.message
    assert "Pick one clip" in e.value.hint and f"facekey capture {clips} -o takes/" in e.value.hint
    # images beside the videos make it an image sequence again; a file or an empty folder is no clip folder
    cv2.imwrite(str(clips / "frame_0001.png"), np.zeros((8, 8, 3), np.uint8))
    assert clip_files(clips) is None and open_footage(clips).info.kind == "image_sequence"
    (tmp_path / "empty").mkdir()
    assert clip_files(tmp_path / "empty") is None and clip_files(clips / "take2.MOV") is None


def test_undecodable_photo(tmp_path):
    p = tmp_path / "broken.jpg"
    p.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(FaceKeyError) as e:
        open_footage(p)
    assert e.value.code == "video_unreadable" and "broken.jpg" in e.value.message


@pytest.mark.parametrize("kw", [{"max_side": 0}, {"max_side": 12.5}, {"fps": 0}, {"fps": float("nan")}])
def test_bad_arguments(tmp_path, kw):
    p = make_clip(tmp_path / "a.mp4", n=2)
    with pytest.raises(FaceKeyError) as e:
        open_footage(p, **kw)
    assert e.value.code == "bad_argument"


# -- memory ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """240 frames of 640x480: about 220 MB if every decoded frame were kept."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 640, 480, "yuv420p"
        s.options = {"preset": "ultrafast"}
        for i in range(240):
            for pk in s.encode(av.VideoFrame.from_ndarray(drawn(i, 640, 480), format="rgb24")):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return str(path)


MEMORY_PROBE = r"""
import gc, json, os, sys, tracemalloc, weakref
from backend.footage import open_footage

def rss():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None

foot = open_footage(sys.argv[1])
refs, rss0 = [], rss()
rss_peak = rss0 or 0
tracemalloc.start()
for frame in foot:
    refs.append(weakref.ref(frame.image))
    if frame.index % 10 == 0 and rss0 is not None:
        rss_peak = max(rss_peak, rss())
_, py_peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
del frame
gc.collect()
out = {"frames": len(refs), "alive": sum(r() is not None for r in refs), "py_peak": py_peak,
       "grew": None if rss0 is None else rss_peak - rss0}
if rss0 is not None:
    held = [f.image for _, f in zip(range(60), foot)]
    out["held_grew"] = rss() - rss0
print(json.dumps(out))
"""


def test_decoding_does_not_accumulate_frames(long_clip):
    """The generator keeps no earlier frame alive and memory stays flat while streaming.

    Runs in a fresh interpreter so resident memory is not blurred by earlier tests.
    Decoded pictures live in FFmpeg buffers that tracemalloc cannot see, so this
    checks (1) with weak references that every yielded image is freed once the
    consumer drops it, (2) with tracemalloc that Python-side allocations stay
    small, and (3) on Linux that resident memory grows by far less than the
    decoded clip (a control that holds 60 frames shows the measure works).
    """
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", MEMORY_PROBE, long_clip], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    frame_bytes = 640 * 480 * 3
    assert m["frames"] == 240
    assert m["alive"] == 0, "decoded frames are kept alive after they were yielded"
    assert m["py_peak"] < 4 * frame_bytes, f"Python allocations peaked at {m['py_peak'] / 1e6:.1f} MB"
    if m["grew"] is not None:
        assert m["grew"] < 40 * frame_bytes, f"RSS grew {m['grew'] / 1e6:.0f} MB while streaming a 221 MB clip"
        assert m["held_grew"] > 40 * frame_bytes, "RSS does not reflect held frames; the check is void"


def test_sequence_patterns(tmp_path):
    seq = tmp_path / "shots"
    write_sequence(seq, ["frame_0001.png", "frame_0002.png", "frame_0010.png", "other_0003.png"])
    printf = open_footage(seq / "frame_%04d.png", fps=25)
    assert printf.info.kind == "image_sequence" and printf.info.num_frames == 3
    assert [int(f.image[0, 0, 0]) for f in printf] == [5, 15, 25]
    glob_foot = open_footage(seq / "frame_*.png")
    assert [os.path.basename(p) for p in glob_foot.info.files] == ["frame_0001.png", "frame_0002.png",
                                                                   "frame_0010.png"]
    with pytest.raises(FaceKeyError) as e:
        open_footage(seq / "nothing_*.png")
    assert e.value.code == "file_missing"
    with pytest.raises(FaceKeyError) as e:
        open_footage(seq / "clip[1].mp4")  # not a pattern: a missing video
    assert e.value.code == "file_missing" and "not found" in e.value.message


def test_nominal_fps_of_a_clip_with_dropped_frames(tmp_path):
    """Recorded at 30 fps with frames missing: fps stays 30, times keep the gaps."""
    tb = Fraction(1, 30)
    pts = [0, 1, 3, 4, 5, 8, 9, 10]
    p = make_clip(tmp_path / "drops.mp4", n=len(pts), pts=pts, time_base=tb, fps=30)
    foot = open_footage(p)
    assert foot.info.fps == pytest.approx(30.0)
    np.testing.assert_allclose([f.time for f in foot], np.array(pts) / 30.0, atol=1e-3)


# -- timing and geometry that containers get wrong (joined files, AVI, anamorphic, size changes) ---------------


def test_joined_files_whose_timestamps_restart_continue_one_frame_on(tmp_path):
    """Two camcorder .ts files joined: the second half's times restart at 0; they go on after the first."""
    a = make_clip(tmp_path / "a.ts", n=30)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(open(a, "rb").read() * 2)
    foot = open_footage(joined)
    times = [f.time for f in foot]
    assert len(times) == 60
    np.testing.assert_allclose(times, np.arange(60) / 30.0, atol=2e-3)
    assert any("restart" in w for w in foot.warnings)


def test_avi_with_b_frames_is_timed_by_its_decode_order(tmp_path):
    """AVI keeps no presentation times: the decoded frames' pts run 1, 4, 3, 5, 2 ...; the frames are 1/30 s
    apart in display order (their grey levels say which frame each is)."""
    p = str(tmp_path / "b.avi")
    with av.open(p, "w", format="avi") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        for i in range(20):
            for pk in s.encode(av.VideoFrame.from_ndarray(drawn(i), format="rgb24")):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    with av.open(p) as c:
        pts = [f.pts for f in c.decode(video=0)]
    assert any(b <= a for a, b in zip(pts, pts[1:])), "the clip lost its out-of-order pts; the test is void"
    foot = open_footage(p)
    frames = list(foot)
    assert foot.info.clock == "dts"
    np.testing.assert_allclose([f.time for f in frames], np.arange(20) / 30.0, atol=1e-3)
    levels = [int(np.median(f.image[H // 2:, W // 2:, 0])) for f in frames]
    np.testing.assert_allclose(levels, [(i * 20) % 200 + 20 for i in range(20)], atol=3)
    assert not foot.warnings
    assert open_footage(make_clip(tmp_path / "b.mp4", n=20)).info.clock == "pts"


def test_anamorphic_pixels_are_shown_at_their_display_width(tmp_path):
    """A 96x72 clip with 4:3 pixels displays at 128x72 (16:9): a stored 20x20 square is 27 wide."""
    p = str(tmp_path / "sar.mp4")
    with av.open(p, "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 96, 72, "yuv420p"
        s.codec_context.sample_aspect_ratio = Fraction(4, 3)
        for _ in range(3):
            img = np.zeros((72, 96, 3), np.uint8)
            img[26:46, 38:58] = 255
            for pk in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    foot = open_footage(p)
    assert (foot.info.full_width, foot.info.full_height) == (128, 72) and foot.info.pixel_aspect == pytest.approx(4 / 3)
    img = next(iter(foot)).image
    assert img.shape == (72, 128, 3)
    ys, xs = np.nonzero(img[..., 0] > 128)
    assert xs.max() - xs.min() + 1 == pytest.approx(26.7, abs=1.5) and ys.max() - ys.min() + 1 == 20
    assert next(iter(open_footage(p, max_side=64))).image.shape == (36, 64, 3)


def test_a_picture_size_change_is_resized_to_the_first_size(tmp_path):
    """A 64x48 .ts joined to a 96x128 one: every frame comes out 64x48 (the tracker's grid), with a warning."""
    a = make_clip(tmp_path / "a.ts", n=5, size=(64, 48))
    b = make_clip(tmp_path / "b.ts", n=5, size=(96, 128))
    joined = tmp_path / "ab.ts"
    joined.write_bytes(open(a, "rb").read() + open(b, "rb").read())
    foot = open_footage(joined)
    assert {f.image.shape for f in foot} == {(48, 64, 3)}
    assert any("picture size changes" in w for w in foot.warnings)
    assert {f.image.shape for f in open_footage(joined, max_side=32)} == {(24, 32, 3)}


@pytest.mark.parametrize("ext", ["mkv", "webm"])
def test_variable_rate_clip_without_a_frame_count_is_not_called_truncated(tmp_path, ext):
    """MKV / WebM store no frame count: the guess duration x fps (31 here) is not held against the 10 frames."""
    tb = Fraction(1, 1000)
    pts = [0, 33, 66, 200, 233, 500, 533, 566, 600, 1000]
    codec = "libvpx" if ext == "webm" else "libx264"
    foot = open_footage(make_clip(tmp_path / f"vfr.{ext}", n=10, codec=codec, pts=pts, time_base=tb))
    assert foot.info.num_frames_estimated
    assert len(list(foot)) == 10 and not foot.truncated and not foot.warnings


def test_cut_mkv_without_a_frame_count_is_still_called_truncated(tmp_path):
    p = make_clip(tmp_path / "long.mkv", n=90, frame_fn=noisy)
    data = open(p, "rb").read()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    foot = open_footage(cut)
    n = len(list(foot))
    assert foot.info.num_frames_estimated and 0 < n < 80
    assert foot.truncated and any("cut short" in w for w in foot.warnings)


@pytest.mark.parametrize("tag", range(1, 9))
@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".tiff"])
def test_photo_exif_orientation_every_format_and_value(tmp_path, ext, tag):
    """What the photo shows, as Pillow's exif_transpose displays it, for every EXIF orientation value."""
    pil = pytest.importorskip("PIL.Image")
    ops = pytest.importorskip("PIL.ImageOps")
    im = pil.fromarray(drawn(0, 80, 40))
    exif = im.getexif()
    exif[0x0112] = tag
    p = tmp_path / f"exif{ext}"
    im.save(p, exif=exif.tobytes(), **({"lossless": True} if ext == ".webp" else {}))
    shown = np.asarray(ops.exif_transpose(pil.open(p)).convert("RGB"))
    frame = next(iter(open_footage(p))).image
    assert frame.shape == shown.shape
    assert marker_corner(frame) == marker_corner(shown)


def test_sequence_in_a_folder_with_brackets_in_its_name(tmp_path):
    seq = tmp_path / "take [1]"
    write_sequence(seq, ["f_1.png", "f_2.png", "f_3.png"])
    assert open_footage(seq / "*.png").info.num_frames == 3
    assert open_footage(seq / "f_%d.png").info.num_frames == 3


def test_a_frame_or_two_out_of_order_is_not_a_restart(tmp_path):
    """Two frames stored in swapped order: only the late one is nudged, the frames after keep their times
    (a restart rule that fired here would push every later frame back)."""
    tb = Fraction(1, 30)
    pts = list(range(12)) + [13, 12] + list(range(14, 30))
    p = str(tmp_path / "swap.mkv")
    with av.open(p, "w") as c:
        s = c.add_stream("mjpeg", rate=30)
        s.width, s.height, s.pix_fmt, s.time_base = W, H, "yuvj420p", tb
        for i in range(30):
            for pk in s.encode(av.VideoFrame.from_ndarray(drawn(i), format="rgb24")):
                pk.pts, pk.dts, pk.time_base = pts[i], i - 1, tb
                c.mux(pk)
    foot = open_footage(p)
    times = np.array([f.time for f in foot]) * 30
    np.testing.assert_allclose(times[14:], np.arange(14, 30), atol=0.02)     # MKV keeps milliseconds
    assert not any("restart" in w for w in foot.warnings)


def test_opening_a_png_sequence_reads_headers_only(tmp_path, monkeypatch):
    """Pillow decodes a whole PNG when asked for EXIF it has not seen: the size check at open and the
    per-frame orientation must not ask (it made a 150-frame 1080p sequence take 6 s to open)."""
    png = pytest.importorskip("PIL.PngImagePlugin")
    write_sequence(tmp_path / "seq", [f"f_{k}.png" for k in range(5)])

    def no_decode(self):
        raise AssertionError("a PNG was decoded by Pillow")

    monkeypatch.setattr(png.PngImageFile, "load", no_decode)
    foot = open_footage(tmp_path / "seq")
    assert foot.info.num_frames == 5 and len(list(foot)) == 5
