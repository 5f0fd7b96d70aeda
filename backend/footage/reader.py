"""Streaming footage decoding: videos (PyAV), image sequences and photos (OpenCV).

Every source is read as a generator of :class:`Frame` (one RGB image at a
time, never the whole clip in memory), in display orientation, with real
presentation timestamps.

* Videos: anything FFmpeg reads (H.264, HEVC, ... in MP4/MOV/MKV/...).
  Timestamps are ``pts * time_base`` of each decoded frame relative to the
  first one, so variable frame rate is kept as recorded; where a container
  stores no real presentation times (AVI with B-frames: the decoded frames'
  pts run out of order) the decode times are used, as FFmpeg's own
  best-effort timestamp does (:class:`_Clock`).  Timestamps that restart
  (joined camcorder ``.ts`` / ``.mts`` files) continue one frame after the
  previous frame.  Rotation metadata (the display matrix, or the legacy
  ``rotate`` tag) and a non-square pixel aspect ratio (anamorphic HDV, DV)
  are applied, and a frame whose stored size differs from the first one's
  is resized to it, so every frame has the display size.  A file cut short
  yields the frames that decode and then stops with a logged warning.
* Image sequences: a folder of images, sorted naturally (``f2`` before
  ``f10``), or a pattern (``frames/*.png``, ``frames/frame_%04d.png``), at
  ``fps`` frames per second (default 30); all images must share one size
  (checked when the sequence is opened, from the files' headers).
* Photos: one image file (see :data:`IMAGE_EXTENSIONS`), EXIF orientation
  applied (JPEG, PNG, WebP, TIFF), a single frame at time 0.
* A folder of video files and no images is not one footage but a folder of
  clips (``backend.protocol.clipfolder``): callers capture each clip
  (``facekey capture FOLDER -o takes/``), and ``open_footage`` refuses it
  with an error that names them.

``max_side`` downscales frames (area averaging) so that the longer side is at
most that many pixels; :attr:`FootageInfo.scale` says by how much.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import math
import os
import re
import struct
from fractions import Fraction
from typing import Iterator, Optional

import numpy as np

from backend.protocol.clipfolder import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, clip_files, folder_files, natural_sort_key
from backend.protocol.errors import FaceKeyError

from .hashing import sha256_file, sha256_files
from .orientation import (Orientation, apply_orientation, orientation_from_degrees,
                          orientation_from_display_matrix, orientation_from_exif, orientation_from_rotate_tag)

__all__ = ["Frame", "FootageInfo", "Footage", "open_footage", "iter_frames", "IMAGE_EXTENSIONS",
           "VIDEO_EXTENSIONS", "clip_files", "natural_sort_key", "scaled_size"]

log = logging.getLogger(__name__)

#: Consecutive undecodable packets after which a damaged video is given up on.
MAX_CONSECUTIVE_DECODE_ERRORS = 25
#: Frames decoded when a video is opened to choose its clock (:class:`_Clock`): AVI's out-of-order pts
#: show within the first few frames.
PROBE_FRAMES = 8
#: A presentation time that goes back this many seconds, or to within half a frame of the first frame's,
#: is a restart of the timestamps (joined files): the frames from there on continue one frame after the
#: previous one.  A smaller step back (a frame or two out of order) is nudged forward alone.
RESTART_SECONDS = 1.0

_HINT_REEXPORT = ("Re-export the clip as an H.264 MP4, e.g. "
                  "`ffmpeg -i INPUT -c:v libx264 -pix_fmt yuv420p OUTPUT.mp4`.")


@dataclasses.dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes:
        index: 0-based position in presentation order.
        time: seconds from the first frame (presentation time; 0.0 for it).
        image: (H, W, 3) uint8 RGB in display orientation (after ``max_side``).
    """

    index: int
    time: float
    image: np.ndarray


@dataclasses.dataclass(frozen=True)
class FootageInfo:
    """What is known about a source before decoding all of it.

    Attributes:
        path: the file or folder.
        kind: ``"video"``, ``"image_sequence"`` or ``"image"``.
        width, height: size in pixels of the frames yielded (display
            orientation, after ``max_side``).
        full_width, full_height: display size at the source's own resolution.
        fps: nominal frame rate (for videos FFmpeg's guess: the stream's
            nominal rate, or its average rate when the nominal one is
            implausible; the ``fps`` argument for sequences and photos).
            Frame times come from the timestamps, never from this.
        num_frames: best estimate of the frame count (exact for sequences and
            photos; from the container for videos, 0 when unknown).
        duration: seconds, if known.
        orientation: the turn applied for display.
        codec: codec name (``"h264"``, ``"hevc"``, ``"image"``).
        decoder: ``"pyav"`` or ``"opencv"``.
        files: the image files of a sequence, in order (empty otherwise).
        num_frames_estimated: True when a video's container gives no frame
            count and ``num_frames`` is duration x fps (a variable-rate MKV
            or WebM): a file is then judged cut short by its last frame's time.
        clock: a video's frame times: ``"pts"`` (presentation times) or
            ``"dts"`` (decode times, where the pts run out of order).
        pixel_aspect: a video's sample aspect ratio (width of a stored pixel
            over its height; 1.0 for square pixels), applied to the width.
    """

    path: str
    kind: str
    width: int
    height: int
    full_width: int
    full_height: int
    fps: float
    num_frames: int
    duration: Optional[float]
    orientation: Orientation
    codec: str
    decoder: str
    files: tuple[str, ...] = ()
    num_frames_estimated: bool = False
    clock: str = "pts"
    pixel_aspect: float = 1.0

    @property
    def scale(self) -> float:
        """Yielded size / full size (1.0 without ``max_side`` downscaling)."""
        return self.width / self.full_width if self.full_width else 1.0

    def to_dict(self) -> dict:
        """JSON-able summary (for Take headers and FaceTrack.info)."""
        return {
            "path": self.path, "kind": self.kind, "size": [self.width, self.height],
            "full_size": [self.full_width, self.full_height], "scale": self.scale,
            "fps": self.fps, "num_frames": self.num_frames, "duration": self.duration,
            "rotation_ccw_deg": self.orientation.degrees, "hflip": self.orientation.hflip,
            "codec": self.codec, "decoder": self.decoder, "num_files": len(self.files),
            "num_frames_estimated": self.num_frames_estimated, "clock": self.clock, "pixel_aspect": self.pixel_aspect,
        }


def scaled_size(width: int, height: int, max_side: Optional[int]) -> tuple[int, int]:
    """(width, height) shrunk so the longer side is at most ``max_side`` (never enlarged)."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    s = max_side / max(width, height)
    return max(1, int(round(width * s))), max(1, int(round(height * s)))


def _resize_area(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    if (image.shape[1], image.shape[0]) == size:
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _odd_size(path: str, size: tuple[int, int], first: tuple[int, int]) -> FaceKeyError:
    return FaceKeyError("video_unreadable", f"Image {path} is {size[0]}x{size[1]} but the sequence's first image is "
                        f"{first[0]}x{first[1]}.",
                        "All images of a sequence must have the same size; remove or resize the odd one.")


def _is_image_file(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS)


def _header_orientation(im) -> Orientation:
    """The EXIF orientation of an opened Pillow image, from its header: Pillow decodes a whole PNG to look
    for an EXIF chunk after the pixels, so a PNG without one before them is upright (150 1080p frames:
    6 s to open a sequence instead of 0.05 s)."""
    if im.format == "PNG" and "exif" not in im.info:
        return Orientation()
    return orientation_from_exif(im.getexif().get(0x0112))


def _image_header(source) -> Optional[tuple[Orientation, tuple[int, int]]]:
    """``(EXIF orientation, stored (width, height))`` of an image file or its bytes, from the header (read by
    Pillow, which knows the orientation in JPEG, PNG, WebP and TIFF; OpenCV applies it to JPEG only);
    None when Pillow cannot read it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as im:
            return _header_orientation(im), im.size
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return None


def _image_display_size(path: str) -> Optional[tuple[int, int]]:
    """(width, height) an image file displays at, from its header (no decoding); None if Pillow cannot read it."""
    header = _image_header(path)
    return None if header is None else header[0].display_size(*header[1])


def _read_image(path: str) -> np.ndarray:
    """Decode one image file to (H, W, 3) uint8 RGB, EXIF orientation applied."""
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)  # works with any path encoding, unlike imread
    except OSError as e:
        raise FaceKeyError("video_unreadable", f"Could not read image {path}: {e}",
                           "Check that the file is readable.") from e
    if data.size == 0:
        raise FaceKeyError("video_empty", f"Image file {path} is empty (0 bytes).",
                           "The file was not written completely; save or copy it again.")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)  # 3 channels, 8 bit, as stored
    if img is None:
        raise FaceKeyError("video_unreadable", f"Could not decode image {path}.",
                           "Save it again as a PNG or JPEG.")
    # OpenCV's TIFF reader turns the image itself, whatever the flag says
    header = None if path.lower().endswith((".tif", ".tiff")) else _image_header(io.BytesIO(data.tobytes()))
    turn = Orientation() if header is None else header[0]
    return np.ascontiguousarray(apply_orientation(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), turn))


class Footage:
    """An opened footage source.  Use :func:`open_footage` to make one.

    Iterating (or calling :meth:`frames`) decodes from the start each time and
    yields :class:`Frame` objects one by one; only the current frame is held.
    After a pass, :attr:`frames_decoded` is the number of frames yielded and
    :attr:`warnings` lists problems met (e.g. a truncated file).
    """

    def __init__(self, info: FootageInfo, *, max_side: Optional[int] = None):
        self.info = info
        self.max_side = max_side
        self.frames_decoded = 0
        self.truncated = False
        self.warnings: list[str] = []
        self._sha256: Optional[str] = None

    # -- public -----------------------------------------------------------------
    def frames(self) -> Iterator[Frame]:
        """Decode from the start, yielding one :class:`Frame` at a time."""
        self.frames_decoded = 0
        self.truncated = False
        self.warnings = []
        if self.info.kind == "video":
            gen = self._video_frames()
        elif self.info.kind == "image_sequence":
            gen = self._sequence_frames()
        else:
            gen = self._image_frames()
        for frame in gen:
            self.frames_decoded += 1
            yield frame

    __iter__ = frames

    def sha256(self) -> str:
        """Hex sha256 of the footage file (or of a sequence's files, in order); cached."""
        if self._sha256 is None:
            if self.info.kind == "image_sequence":
                self._sha256 = sha256_files(self.info.files)
            else:
                self._sha256 = sha256_file(self.info.path)
        return self._sha256

    def close(self) -> None:
        """Nothing stays open between passes; kept for ``with`` blocks."""

    def __enter__(self) -> "Footage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self.info
        return f"Footage({i.path!r}, {i.kind}, {i.width}x{i.height}, {i.fps:.3f} fps, ~{i.num_frames} frames)"

    # -- photos and sequences ----------------------------------------------------
    def _image_frames(self) -> Iterator[Frame]:
        img = _read_image(self.info.path)
        yield Frame(0, 0.0, _resize_area(img, (self.info.width, self.info.height)))

    def _sequence_frames(self) -> Iterator[Frame]:
        full = (self.info.full_width, self.info.full_height)
        for i, path in enumerate(self.info.files):
            img = _read_image(path)
            if (img.shape[1], img.shape[0]) != full:     # a file its header did not describe (Pillow could not read it)
                raise _odd_size(path, (img.shape[1], img.shape[0]), full)
            yield Frame(i, i / self.info.fps, _resize_area(img, (self.info.width, self.info.height)))

    # -- videos ------------------------------------------------------------------
    def _warn(self, msg: str) -> None:
        log.warning(msg)
        self.warnings.append(msg)

    def _video_frames(self) -> Iterator[Frame]:
        import av

        info = self.info
        container = _open_container(info.path)
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            # Stored (pre-rotation) size of the yielded frames: the display size (pixel aspect applied).
            out_w, out_h = (info.height, info.width) if info.orientation.swaps_axes else (info.width, info.height)
            clock = _Clock(info.clock)
            first_time: Optional[float] = None
            first_size: Optional[tuple[int, int]] = None
            prev_t = -math.inf
            offset = 0.0            # added to every time after a restart of the timestamps
            index = 0
            bad_run = 0
            bad_total = 0
            dup_warned = restart_warned = size_warned = False
            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.FFmpegError as e:
                    self.truncated = True
                    self._warn(f"{info.path}: stopped reading after {index} frames ({e}); the file is damaged "
                               "or cut short, later frames are missing.")
                    packet = None
                try:
                    decoded = stream.decode(packet)
                    bad_run = 0
                except av.FFmpegError as e:
                    bad_run += 1
                    bad_total += 1
                    self.truncated = True
                    if bad_total <= 5:
                        self._warn(f"{info.path}: skipped undecodable data after frame {index} ({e}).")
                    if bad_run >= MAX_CONSECUTIVE_DECODE_ERRORS:
                        self._warn(f"{info.path}: gave up after {bad_run} undecodable packets in a row.")
                        break
                    decoded = []
                for fr in decoded:
                    t = clock.seconds(fr)
                    if t is None:  # no timestamp: one nominal frame after the previous one
                        t = first_time + prev_t - offset + 1.0 / info.fps if first_time is not None else 0.0
                    if first_time is None:
                        first_time = t
                    rel = t - first_time + offset
                    if rel <= prev_t and (rel < prev_t - RESTART_SECONDS or rel - offset < 0.5 / info.fps):
                        if not restart_warned:
                            self._warn(f"{info.path}: the timestamps restart at frame {index} ({rel:.3f} s after "
                                       f"{prev_t:.3f} s; joined files?); the frames from there on continue one "
                                       "frame after the previous one.")
                            restart_warned = True
                        offset += prev_t + 1.0 / info.fps - rel
                        rel = prev_t + 1.0 / info.fps
                    elif rel <= prev_t:
                        if not dup_warned:
                            self._warn(f"{info.path}: frame {index} has a presentation time ({rel:.6f} s) not after "
                                       f"the previous one ({prev_t:.6f} s); nudged forward to keep times increasing.")
                            dup_warned = True
                        rel = prev_t + 1e-6
                    prev_t = rel
                    if first_size is None:
                        first_size = (fr.width, fr.height)
                    elif (fr.width, fr.height) != first_size and not size_warned:
                        self._warn(f"{info.path}: the picture size changes at frame {index} ({first_size[0]}x"
                                   f"{first_size[1]} -> {fr.width}x{fr.height}); later frames are resized to the "
                                   "first size.")
                        size_warned = True
                    if (fr.width, fr.height) != (out_w, out_h):
                        img = fr.reformat(width=out_w, height=out_h, format="rgb24",
                                          interpolation="AREA").to_ndarray()
                    else:
                        img = fr.to_ndarray(format="rgb24")
                    img = apply_orientation(img, info.orientation)
                    yield Frame(index, rel, img)
                    index += 1
                if packet is None:
                    break
        finally:
            container.close()
        if index == 0:
            raise FaceKeyError("video_empty", f"{info.path} has no decodable video frames.", _HINT_REEXPORT)
        if bad_total > 5:
            self._warn(f"{info.path}: {bad_total} undecodable packets in all.")
        # The demuxer often just ends early on a cut file, without any error: compare with the container's
        # frame count, or where it has none (a variable-rate MKV / WebM) the last frame's time with its duration.
        if info.num_frames and not info.num_frames_estimated and index < info.num_frames * 0.98 - 1:
            self.truncated = True
            self._warn(f"{info.path}: decoded {index} frames but the container announces about "
                       f"{info.num_frames}; the file is probably cut short or damaged (the frames read are kept).")
        elif info.num_frames_estimated and info.duration and prev_t + 2.0 / info.fps < info.duration * 0.98:
            self.truncated = True
            self._warn(f"{info.path}: the last frame decoded is at {prev_t:.2f} s but the container lasts "
                       f"{info.duration:.2f} s; the file is probably cut short or damaged (the frames read are kept).")


class _Clock:
    """A decoded frame's time in seconds, from its pts, or from its dts where the pts are not trusted.

    FFmpeg's best-effort timestamp (``guess_correct_pts``): each kind of timestamp that fails to increase
    from one frame to the next counts a fault, and the pts are used while they have no more faults than
    the dts.  ``prefer`` ("pts" or "dts") is what the first :data:`PROBE_FRAMES` frames showed when the
    video was opened (:func:`_probe_clock`), so the first frames of a video whose pts run out of order
    (AVI with B-frames) are timed right too.
    """

    def __init__(self, prefer: str = "pts"):
        self.faulty = {"pts": 0, "dts": 0}
        if prefer == "dts":
            self.faulty["pts"] = 1
        self.last: dict[str, Optional[int]] = {"pts": None, "dts": None}

    @property
    def kind(self) -> str:
        """The timestamps trusted now: ``"dts"`` when the pts have failed to increase more often."""
        return "dts" if self.faulty["pts"] > self.faulty["dts"] else "pts"

    def observe(self, pts: Optional[int], dts: Optional[int]) -> None:
        """Count a frame's timestamps that do not increase from the last ones seen."""
        for kind, value in (("pts", pts), ("dts", dts)):
            if value is not None:
                if self.last[kind] is not None and value <= self.last[kind]:
                    self.faulty[kind] += 1
                self.last[kind] = value

    def seconds(self, fr) -> Optional[float]:
        dts = getattr(fr, "dts", None)
        self.observe(fr.pts, dts)
        # a frame without the trusted kind (flushed at the end) is one nominal frame after the previous one
        value = dts if self.kind == "dts" else fr.pts
        return float(value * fr.time_base) if value is not None and fr.time_base is not None else None


def _open_container(path: str):
    import av

    try:
        container = av.open(path, mode="r")
    except FileNotFoundError as e:
        raise FaceKeyError("file_missing", f"Footage file not found: {path}",
                           "Check the path (it may have been moved or renamed).") from e
    except (av.FFmpegError, UnicodeDecodeError, OSError) as e:
        raise FaceKeyError("video_unreadable", f"Could not read {path} as a video ({e}).",
                           "The file is damaged or not a video. " + _HINT_REEXPORT) from e
    if not container.streams.video:
        container.close()
        raise FaceKeyError("video_empty", f"{path} has no video stream (audio or data only).",
                           "Choose the video file itself, or re-export it with its picture track.")
    return container


def _display_orientation(frame, stream) -> Orientation:
    """Orientation from a decoded frame's display matrix, else the stream's ``rotate`` tag."""
    try:
        for sd in frame.side_data:
            if "DISPLAYMATRIX" in str(getattr(sd, "type", "")):
                raw = bytes(sd)
                if len(raw) >= 36:
                    return orientation_from_display_matrix(struct.unpack("<9i", raw[:36]))
    except (AttributeError, TypeError, ValueError, struct.error) as e:  # older PyAV: no frame.side_data
        log.debug("no display matrix side data: %s", e)
    rot = getattr(frame, "rotation", None)
    if rot:
        return orientation_from_degrees(float(rot))
    return orientation_from_rotate_tag(stream.metadata.get("rotate"))


def _probe_video(path: str, max_side: Optional[int]) -> FootageInfo:
    """Open a video, decode its first frame (checks it is readable), describe it."""
    import av

    container = _open_container(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        first = None
        stamps: list[tuple[Optional[int], Optional[int]]] = []     # (pts, dts) of the first decoded frames
        errors: list[str] = []
        try:
            for packet in container.demux(stream):
                try:
                    frames = stream.decode(packet)
                except av.FFmpegError as e:
                    if first is not None:
                        break
                    errors.append(str(e))
                    if len(errors) >= MAX_CONSECUTIVE_DECODE_ERRORS:
                        break
                    continue
                first = first or (frames[0] if frames else None)
                stamps += [(f.pts, getattr(f, "dts", None)) for f in frames]
                if len(stamps) >= PROBE_FRAMES:
                    break
        except av.FFmpegError as e:
            if first is None:
                raise FaceKeyError("video_unreadable", f"Could not decode {path} ({e}).",
                                   "The file is damaged or cut short. " + _HINT_REEXPORT) from e
        if first is None and errors:
            raise FaceKeyError("video_unreadable", f"Could not decode any frame of {path} ({errors[0]}).",
                               "The file is damaged or uses an unsupported codec. " + _HINT_REEXPORT)
        if first is None:
            raise FaceKeyError("video_empty", f"{path} has no decodable video frames.", _HINT_REEXPORT)
        if errors:
            log.warning("%s: %d undecodable packet(s) before the first frame", path, len(errors))
        orient = _display_orientation(first, stream)
        sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
        aspect = float(sar) if sar and 0.1 < float(sar) < 10 else 1.0
        full_w, full_h = orient.display_size(max(1, int(round(first.width * aspect))), first.height)
        # FFmpeg's av_guess_frame_rate: the container's nominal (r_frame_rate) unless that is
        # implausible (> 210 with an average < 70), then the average.  A phone clip recorded at
        # 30 fps that dropped frames stays 30 (its timestamps keep the real spacing).
        rate = stream.guessed_rate or stream.average_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000.0
        num = int(stream.frames or 0)
        if not (math.isfinite(fps) and 0 < fps < 1000):
            fps = num / duration if (num and duration) else 30.0
        estimated = num <= 0 and bool(duration)
        if estimated:
            num = int(round(duration * fps))
        w, h = scaled_size(full_w, full_h, max_side)
        return FootageInfo(path=path, kind="video", width=w, height=h, full_width=full_w, full_height=full_h,
                           fps=fps, num_frames=num, duration=duration, orientation=orient,
                           codec=stream.codec_context.name, decoder="pyav", num_frames_estimated=estimated,
                           clock=_probe_clock(stamps), pixel_aspect=aspect)
    finally:
        container.close()


def _probe_clock(stamps: list[tuple[Optional[int], Optional[int]]]) -> str:
    """``"dts"`` when the first frames' pts (in display order) fail to increase more often than their dts
    (AVI stores no presentation times), else ``"pts"`` (also when a frame has no dts); see :class:`_Clock`."""
    if any(dts is None for _, dts in stamps):
        return "pts"
    clock = _Clock()
    for pts, dts in stamps:
        clock.observe(pts, dts)
    return clock.kind


_PRINTF = re.compile(r"%(0?\d*)d")


def _expand_pattern(path: str) -> Optional[list[str]]:
    """Files of an image-sequence pattern, in order; None if ``path`` is not a pattern.

    Two forms: a glob (``frames/*.png``, ``shot_??.jpg``; natural order) and
    FFmpeg's printf form (``frames/frame_%04d.png``; numeric order).
    """
    folder, name = os.path.split(path)
    folder = folder or "."
    if not (_is_image_file(name) or name.endswith("*")):
        return None  # e.g. a missing video whose name happens to hold '[' or '%d'
    if _PRINTF.search(name):
        # re.escape leaves '%' and digits alone, so the printf spec survives escaping.
        rx = re.compile("^" + _PRINTF.sub(lambda m: r"(\d+)", re.escape(name), count=1) + "$")
        if not os.path.isdir(folder):
            return []
        found = []
        for e in os.scandir(folder):
            m = rx.match(e.name)
            if m and e.is_file() and _is_image_file(e.name):
                found.append((int(m.group(1)), e.path))
        return [p for _, p in sorted(found)]
    if any(ch in name for ch in "*?["):
        import glob

        # the folder is a literal path ('[' in a folder name is not a glob class), the name the pattern
        files = [p for p in glob.glob(os.path.join(glob.escape(folder), name))
                 if os.path.isfile(p) and _is_image_file(p)]
        return sorted(files, key=lambda p: natural_sort_key(os.path.basename(p)))
    return None


def _sequence(path: str, files: list[str], max_side: Optional[int], fps: float) -> "Footage":
    first = _read_image(files[0])
    full_h, full_w = first.shape[:2]
    for f in files[1:]:      # headers only: an odd image fails here, not after tracking the frames before it
        size = _image_display_size(f)
        if size is not None and size != (full_w, full_h):
            raise _odd_size(f, size, (full_w, full_h))
    w, h = scaled_size(full_w, full_h, max_side)
    info = FootageInfo(path=path, kind="image_sequence", width=w, height=h, full_width=full_w,
                       full_height=full_h, fps=fps, num_frames=len(files), duration=len(files) / fps,
                       orientation=Orientation(), codec="image", decoder="opencv", files=tuple(files))
    return Footage(info, max_side=max_side)


def open_footage(path: str | os.PathLike, *, max_side: Optional[int] = None, fps: float = 30.0) -> Footage:
    """Open a video file, an image-sequence folder or a photo.

    Args:
        path: video file, folder of images, image-sequence pattern
            (``frames/*.png`` or ``frames/frame_%04d.png``), or one image file.
        max_side: if given, frames are downscaled (area averaging) so their
            longer side is at most this many pixels.
        fps: frame rate of image sequences (and the nominal rate of a photo).

    Returns:
        A :class:`Footage`; the first frame has already been decoded once, so
        unreadable files fail here, not in the middle of a job.

    Raises:
        FaceKeyError: ``file_missing``, ``video_unreadable`` (naming the file),
            ``video_empty`` (0-byte file, no video stream, no frames, empty
            folder) or ``bad_argument`` (``max_side`` / ``fps`` out of range).
    """
    path = os.fspath(path)
    if max_side is not None and (not isinstance(max_side, int) or max_side < 16):
        raise FaceKeyError("bad_argument", f"max_side must be an integer >= 16 or None, got {max_side!r}",
                           "Use e.g. 640 to track faster on large footage, or leave it unset.")
    if not (isinstance(fps, (int, float, Fraction)) and math.isfinite(float(fps)) and float(fps) > 0):
        raise FaceKeyError("bad_argument", f"fps must be a positive number, got {fps!r}",
                           "Give the frame rate the image sequence was recorded at, e.g. 30.")
    fps = float(fps)
    if not os.path.exists(path):
        files = _expand_pattern(path)
        if files is None:
            raise FaceKeyError("file_missing", f"Footage file not found: {path}",
                               "Check the path (it may have been moved or renamed).")
        if not files:
            raise FaceKeyError("file_missing", f"No image files match the pattern {path}",
                               "Check the folder and the pattern (e.g. frames/*.png or frames/frame_%04d.png).")
        return _sequence(path, files, max_side, fps)
    if os.path.isdir(path):
        files = folder_files(path, IMAGE_EXTENSIONS)
        clips = [] if files else folder_files(path, VIDEO_EXTENSIONS)     # a folder of clips (clip_files)
        if clips:
            names = ", ".join(os.path.basename(c) for c in clips[:3]) + (", ..." if len(clips) > 3 else "")
            raise FaceKeyError("bad_argument", f"Folder {path} holds {len(clips)} video clip(s) ({names}), not the "
                               "frames of one image sequence.",
                               "Pick one clip as the footage, or capture every clip of the folder into its own take "
                               f"with `facekey capture {path} -o takes/` (then `facekey batch takes/ ...`).")
        if not files:
            raise FaceKeyError("video_empty", f"Folder {path} holds no image files ({', '.join(IMAGE_EXTENSIONS)}).",
                               "Pick a folder of numbered frames (e.g. frame_0001.png ...) or a video file.")
        return _sequence(path, files, max_side, fps)
    if os.path.getsize(path) == 0:
        raise FaceKeyError("video_empty", f"{path} is empty (0 bytes).",
                           "The file was not written completely; export or copy it again.")
    if _is_image_file(path):
        first = _read_image(path)
        full_h, full_w = first.shape[:2]
        w, h = scaled_size(full_w, full_h, max_side)
        info = FootageInfo(path=path, kind="image", width=w, height=h, full_width=full_w, full_height=full_h,
                           fps=fps, num_frames=1, duration=None, orientation=Orientation(), codec="image",
                           decoder="opencv")
        return Footage(info, max_side=max_side)
    return Footage(_probe_video(path, max_side), max_side=max_side)


def iter_frames(path: str | os.PathLike, *, max_side: Optional[int] = None, fps: float = 30.0) -> Iterator[Frame]:
    """Shorthand: ``yield from open_footage(path, ...).frames()``."""
    yield from open_footage(path, max_side=max_side, fps=fps).frames()
