"""Benchmarks behind `facekey bench`: each reports ratios measured side by side in one run.

* ``capture_speed``: decode only, decode + landmarks, decode + landmarks +
  hands (``TrackSettings.hands``), full capture (landmarks + solver) on one
  clip; fps of each, full/landmark and hands/landmark ratios, real-time factor;
  and (``hand_search_speed``) the hand mask with the palm detector on every
  frame vs every other frame while no hand is in view.
* ``bake_speed``: runs ``benchmarks/bench_bake.py`` in Blender (bpy module):
  bulk ``foreach_set`` bake vs a ``keyframe_insert`` loop.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from .protocol.errors import FaceKeyError

__all__ = ["capture_speed", "hand_search_speed", "bake_speed", "default_clip"]

REPO = Path(__file__).resolve().parents[1]
DEMO_CLIP = Path(__file__).resolve().parent / "assets" / "demo" / "pexels_wolfgang_langer_emotions.mp4"


def default_clip() -> Path:
    """The full Pexels clip from ../shared/realdata when present, else the bundled 6.5 s cut of it."""
    shared = REPO.parent / "shared" / "realdata" / "videos" / "pyfeat_WolfgangLanger_Pexels_emotions.mp4"
    return shared if shared.is_file() else DEMO_CLIP


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def capture_speed(path: Optional[str | os.PathLike] = None, *, max_side: Optional[int] = None) -> dict:
    """Measure the three capture stages on one clip in one run.

    Returns a dict: clip, frames, clip_fps, cores, torch_threads, and for each of
    ``decode``, ``landmarks`` (decode + tracking), ``hands`` (decode + tracking
    with hands), ``capture`` (decode + tracking + solver) the seconds and frames
    per second; ``capture_vs_landmarks`` = capture fps / landmark fps (goal >= 0.8),
    ``hands_vs_landmarks`` = hands fps / landmark fps (the cost of turning hands
    on), ``realtime_factor`` = capture fps / clip fps (goal > 1 on 2 cores) and
    ``hand_search`` (:func:`hand_search_speed`).
    """
    import torch

    from .capture import CaptureSettings, capture
    from .footage import open_footage
    from .tracking import track_footage

    clip = Path(path) if path else default_clip()
    footage = open_footage(clip, max_side=max_side)
    frames, t_decode = _timed(lambda: sum(1 for _ in footage.frames()))
    track, t_track = _timed(lambda: track_footage(open_footage(clip, max_side=max_side)))
    with_hands, t_hands = _timed(lambda: track_footage(open_footage(clip, max_side=max_side), hands=True))
    take, t_capture = _timed(lambda: capture(clip, CaptureSettings(max_side=max_side)))
    search = hand_search_speed(clip, track, max_side)
    clip_fps = float(footage.info.fps)
    seconds = {"decode": t_decode, "landmarks": t_track, "hands": t_hands, "capture": t_capture}
    fps = {name: frames / t for name, t in seconds.items()}
    return {
        "clip": str(clip), "frames": frames, "valid_frames": int(take.valid.sum()), "clip_fps": clip_fps,
        "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "seconds": seconds, "fps": fps,
        "frames_with_face_covered": int(with_hands.occluded.any(1).sum()),
        "capture_vs_landmarks": fps["capture"] / fps["landmarks"],
        "hands_vs_landmarks": fps["hands"] / fps["landmarks"],
        "realtime_factor": fps["capture"] / clip_fps,
        "hand_search": search,
    }


def hand_search_speed(clip, track, max_side: Optional[int] = None) -> dict:
    """The hand mask with the palm detector on every frame vs on every other frame while no hand is in
    view (``HandOcclusion``'s default), on the same decoded frames and ``track``'s face landmarks.

    Returns a dict: ``seconds`` ({"every_frame", "skip_while_none"}), ``speedup`` (every-frame seconds
    / skipping seconds, decoding included in both), ``frames_with_face_covered`` (the same two keys)
    and ``mask_iou`` (covered landmarks of the two, intersection over union; 1 when neither covers any).
    """
    import numpy as np

    from .footage import open_footage
    from .tracking.hands import HandOcclusion

    seconds, masks = {}, {}
    for name, skip in (("every_frame", False), ("skip_while_none", True)):
        hands = HandOcclusion(skip_while_none=skip)
        out = []
        t0 = time.perf_counter()
        try:
            for frame, lm, ok in zip(open_footage(clip, max_side=max_side).frames(), track.landmarks, track.valid):
                scale = frame.image.shape[1] / track.image_size[0]
                out += hands.push(frame.image, lm[:, :2] * scale if ok else None)
            out += hands.flush()
        finally:
            hands.close()
        seconds[name] = time.perf_counter() - t0
        masks[name] = np.array([np.zeros(track.landmarks.shape[1], bool) if m is None else m for m in out])
    a, b = masks["every_frame"], masks["skip_while_none"]
    union = int((a | b).sum())
    return {"seconds": seconds, "speedup": seconds["every_frame"] / seconds["skip_while_none"],
            "frames_with_face_covered": {k: int(m.any(1).sum()) for k, m in masks.items()},
            "mask_iou": float((a & b).sum() / union) if union else 1.0}


def bake_speed(frames: int = 10_000, keys: int = 52, slow_frames: int = 2_000) -> dict:
    """Run the bake benchmark in a Blender (bpy module) subprocess and return its JSON report."""
    script = REPO / "benchmarks" / "bench_bake.py"
    if not script.is_file():
        raise FaceKeyError("file_missing", f"{script} not found",
                           "Run `facekey bench bake` from a FaceKey source checkout (benchmarks/ is not installed).")
    cmd = [sys.executable, str(script), "--json", "--frames", str(frames), "--keys", str(keys),
           "--slow-frames", str(slow_frames)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise FaceKeyError("blender_failed", f"bake benchmark failed: {proc.stderr[-2000:]}",
                           "Install the Blender module: pip install 'facekey[blender]'.")
    return json.loads(proc.stdout.strip().splitlines()[-1])
